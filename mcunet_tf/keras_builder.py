"""Build a static tf_keras Functional model from a :class:`NetworkSpec`.

Only layers TF-MOT's default 8-bit scheme can quantize and the TFLite converter folds into
int8 kernels: Conv2D (no bias) / DepthwiseConv2D (no bias) / BatchNormalization /
ReLU(max_value=6) / Add / GlobalAveragePooling2D / Dense.

Layer names are deterministic and follow :func:`mcunet_tf.network.conv_layer_name`:
``stem``, ``stem_bn``, ``stem_act``, ``block{i}_expand``, ``block{i}_expand_bn``,
``block{i}_expand_act``, ``block{i}_dw``, ``block{i}_dw_bn``, ``block{i}_dw_act``,
``block{i}_project``, ``block{i}_project_bn``, ``block{i}_add``, ``feature_mix``,
``feature_mix_bn``, ``feature_mix_act``, ``global_pool``, ``classifier``. Weights can be
copied between models (e.g. from the supernet) by these names.

Padding: MCUNet pads k//2 on every side; Keras ``'same'`` pads (k-1)//2 before and the rest
after at stride 2, i.e. the window is shifted by one pixel compared with PyTorch weights. Both
give the output size ceil(H / stride), which is what the profile and the MCU memory figures
depend on, and ``'same'`` maps 1:1 onto TFLite's SAME padding with no extra Pad op. We use
``'same'``.
"""

from __future__ import annotations

from typing import Callable

from mcunet_tf.network import Activation, BlockSpec, ConvSpec, LayerRole, NetworkSpec, conv_layer_name
from mcunet_tf.tf_env import keras

# MCUNet trains with PyTorch BN momentum 0.1 (Keras 0.9) and eps 1e-5.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def _relu6(name: str) -> keras.layers.Layer:
    return keras.layers.ReLU(max_value=6.0, name=name)


def _relu(name: str) -> keras.layers.Layer:
    return keras.layers.ReLU(name=name)


# Activation -> layer factory; NONE has no layer.
_ACTIVATION_LAYERS: dict[Activation, Callable[[str], keras.layers.Layer] | None] = {
    Activation.RELU6: _relu6,
    Activation.RELU: _relu,
    Activation.NONE: None,
}


def _bn_act(x, name: str, act: Activation):
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                        name=f"{name}_bn")(x)
    factory = _ACTIVATION_LAYERS[act]
    return x if factory is None else factory(f"{name}_act")(x)


def _conv_bn_act(x, name: str, out_channels: int, kernel: int, stride: int,
                 act: Activation):
    x = keras.layers.Conv2D(out_channels, kernel, strides=stride, padding="same",
                            use_bias=False, name=name)(x)
    return _bn_act(x, name, act)


def _mbconv(x, index: int, block: BlockSpec):
    block_input = x
    if block.has_expansion:
        x = _conv_bn_act(x, conv_layer_name(LayerRole.EXPAND, index), block.mid_channels,
                         1, 1, block.act)
    dw_name = conv_layer_name(LayerRole.DEPTHWISE, index)
    x = keras.layers.DepthwiseConv2D(block.kernel_size, strides=block.stride, padding="same",
                                     use_bias=False, name=dw_name)(x)
    x = _bn_act(x, dw_name, block.act)
    # The projection is linear (no activation), as in every MobileNetV2-style block.
    x = _conv_bn_act(x, conv_layer_name(LayerRole.PROJECT, index), block.out_channels,
                     1, 1, Activation.NONE)
    if block.residual:
        x = keras.layers.Add(name=f"block{index}_add")([block_input, x])
    return x


def build_keras_model(spec: NetworkSpec, *, name: str | None = None,
                      batch_size: int | None = None,
                      dropout_rate: float = 0.0) -> keras.Model:
    """The Functional model of ``spec`` with static input shape (R, R, in_channels).

    ``batch_size`` fixes the batch dimension (None leaves it dynamic); ``dropout_rate`` > 0
    inserts a Dropout before the classifier (training only; it has no MACs or parameters).
    """
    inputs = keras.Input(shape=(spec.resolution, spec.resolution, spec.in_channels),
                         batch_size=batch_size, name="input")
    first: ConvSpec = spec.first_conv
    x = _conv_bn_act(inputs, conv_layer_name(LayerRole.FIRST_CONV), first.out_channels,
                     first.kernel, first.stride, first.act)
    for index, block in enumerate(spec.blocks):
        x = _mbconv(x, index, block)
    if spec.feature_mix is not None:
        fmix = spec.feature_mix
        x = _conv_bn_act(x, conv_layer_name(LayerRole.FEATURE_MIX), fmix.out_channels,
                         fmix.kernel, fmix.stride, fmix.act)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    if dropout_rate > 0:
        x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    outputs = keras.layers.Dense(spec.num_classes, name=conv_layer_name(LayerRole.CLASSIFIER))(x)
    model_name = name or spec.name or "mcunet"
    # Keras model names must be valid scope names: no dots.
    return keras.Model(inputs, outputs, name=model_name.replace(".", "_"))


def keras_layer_macs(model: keras.Model) -> dict[str, int]:
    """MACs of each Conv2D / DepthwiseConv2D / Dense layer, counted from the built layers.

    Same rule as :mod:`mcunet_tf.profile` (output elements x input channels per group x
    k^2), so the two can be compared layer by layer.
    """
    macs: dict[str, int] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # subclass of Conv2D: test first
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            macs[layer.name] = h * w * c * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, c = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1] // layer.groups
            macs[layer.name] = h * w * c * c_in * kh * kw
        elif isinstance(layer, keras.layers.Dense):
            macs[layer.name] = int(layer.input.shape[-1]) * layer.units
    return macs


def keras_trainable_params(model: keras.Model) -> int:
    """Trainable parameter count (BN moving statistics excluded, as in the profile)."""
    return int(sum(int(w.shape.num_elements()) for w in model.trainable_weights))
