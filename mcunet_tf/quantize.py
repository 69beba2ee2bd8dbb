"""Quantization of exported sub-networks: QAT with TF-MOT, PTQ, int8 export, accuracies.

Two gaps between TF-MOT's default 8-bit QAT and what the TFLite converter deploys, fixed here:

* **BatchNorm folding.** TFLite folds each BN into the preceding convolution (scaled
  weights, a bias) and *then* quantizes the weights per channel. TF-MOT's Conv->BN->ReLU6
  patterns fake-quantize the *unfolded* kernel, so training sees different weight rounding
  than deployment. :func:`fold_batchnorm` folds BN into Conv2D / DepthwiseConv2D (a bias is
  added) before QAT, so the fake-quantized weights are exactly the deployed ones; the
  activation patterns left are Conv->ReLU6 and Conv (linear), which TF-MOT handles natively.
* **Depthwise per-channel weights.** TF-MOT quantizes weights "per axis" along the last axis;
  a depthwise kernel is ``[k, k, C, 1]``, so that is per *tensor*, while TFLite quantizes
  depthwise weights per output channel. :class:`DepthwisePerChannelWeightsQuantizer`
  quantizes along the channel axis ``C * multiplier``.

:func:`qat_finetune` returns the QAT model; :func:`int8_from_qat` / :func:`int8_from_ptq`
give the int8 ``.tflite`` (through :func:`mcunet_tf.export.export_int8_tflite`);
:func:`tflite_accuracy` runs one in ``ai_edge_litert``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from mcunet_tf.data import Augmentation, ImageDataset, make_pipeline, to_float
from mcunet_tf.export import export_int8_tflite
from mcunet_tf.tf_env import keras, tf

_CONV_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


# ------------------------------------------------------------------------ BN folding
def _fold_into(conv: keras.layers.Layer, bn: keras.layers.BatchNormalization) -> tuple[
        dict[str, Any], list[np.ndarray]]:
    """Config and weights of ``conv`` with ``bn`` folded in (a conv with bias)."""
    gamma, beta, mean, var = [np.asarray(w, np.float64) for w in bn.get_weights()]
    scale = gamma / np.sqrt(var + bn.epsilon)
    weights = conv.get_weights()
    kernel = np.asarray(weights[0], np.float64)
    bias = np.asarray(weights[1], np.float64) if conv.use_bias else np.zeros_like(mean)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        # [k, k, C, m]: output channel c*m + j -> scale index c*m + j.
        k0, k1, c, m = kernel.shape
        kernel = kernel * scale.reshape(1, 1, c, m)
    else:
        kernel = kernel * scale  # output channels on the last axis
    new_bias = (bias - mean) * scale + beta
    config = conv.get_config()
    config["use_bias"] = True
    config["bias_initializer"] = keras.initializers.serialize(keras.initializers.Zeros())
    return config, [kernel.astype(np.float32), new_bias.astype(np.float32)]


class FoldedConv2D(keras.layers.Conv2D):
    """A Conv2D that carries a folded BatchNorm (kernel scaled, bias added).

    A distinct class only so that TF-MOT's layout transforms do not recognise it: its
    Conv->ReLU transform (meant for Add->ReLU) would give a ``Conv2D`` a no-op quantize
    config, i.e. no weight fake-quantization at all. Computes exactly what Conv2D computes.
    """


class FoldedDepthwiseConv2D(keras.layers.DepthwiseConv2D):
    """A DepthwiseConv2D carrying a folded BatchNorm; see :class:`FoldedConv2D`."""


_FOLDED_CLASS: dict[type, Any] = {keras.layers.Conv2D: FoldedConv2D,
                 keras.layers.DepthwiseConv2D: FoldedDepthwiseConv2D}
CUSTOM_OBJECTS = {"FoldedConv2D": FoldedConv2D, "FoldedDepthwiseConv2D": FoldedDepthwiseConv2D}


def fold_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of a Functional ``model`` with every Conv->BN pair folded into one conv.

    A BN is folded when its only input is a Conv2D / DepthwiseConv2D whose only consumer it
    is; the folded conv (:class:`FoldedConv2D` / :class:`FoldedDepthwiseConv2D`) keeps the
    conv's name. Other layers are copied with their weights.
    Layers must have a single input tensor except merge layers (Add, ...), which is all
    the Keras builder produces.
    """
    consumers: dict[str, int] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for inbound in node.inbound_layers if isinstance(node.inbound_layers, list) \
                    else [node.inbound_layers]:
                consumers[inbound.name] = consumers.get(inbound.name, 0) + 1

    def producer(layer: keras.layers.Layer) -> keras.layers.Layer | None:
        inbound = layer._inbound_nodes[0].inbound_layers
        return inbound if not isinstance(inbound, list) else None

    folded_convs: dict[str, tuple[dict[str, Any], list[np.ndarray]]] = {}
    skipped: set[str] = set()  # BN / ReLU layers absorbed into their conv
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            conv = producer(layer)
            if isinstance(conv, _CONV_TYPES) and consumers.get(conv.name) == 1 and \
                    conv.get_config().get("activation") in ("linear", None):
                folded_convs[conv.name] = _fold_into(conv, layer)
                skipped.add(layer.name)

    tensors: dict[int, Any] = {}
    new_inputs = []
    for tensor in model.inputs:
        new = keras.Input(tensor=None, shape=tensor.shape[1:], batch_size=tensor.shape[0],
                          name=tensor.name.split(":")[0], dtype=tensor.dtype)
        tensors[id(tensor)] = new
        new_inputs.append(new)
    to_set: list[tuple[keras.layers.Layer, list[np.ndarray]]] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        inputs = layer.input
        args = [tensors[id(t)] for t in inputs] if isinstance(inputs, list) \
            else tensors[id(inputs)]
        if layer.name in skipped:
            out = args  # its conv already applies it
        elif layer.name in folded_convs:
            config, weights = folded_convs[layer.name]
            new_layer = _FOLDED_CLASS[type(layer)].from_config(config)
            out = new_layer(args)
            to_set.append((new_layer, weights))
        else:
            new_layer = type(layer).from_config(layer.get_config())
            out = new_layer(args)
            to_set.append((new_layer, layer.get_weights()))
        tensors[id(layer.output)] = out
    outputs = [tensors[id(t)] for t in model.outputs]
    folded = keras.Model(new_inputs, outputs if len(outputs) > 1 else outputs[0],
                         name=f"{model.name}_folded")
    for layer, weights in to_set:
        layer.set_weights(weights)
    return folded


# ------------------------------------------------------------------------ TF-MOT configs
def _tfmot() -> Any:
    import tensorflow_model_optimization as tfmot

    return tfmot


def _depthwise_config_classes() -> tuple[type, type]:
    """The quantizer / QuantizeConfig classes (defined lazily: TF-MOT imports are slow)."""
    tfmot = _tfmot()
    quantizers: Any = tfmot.quantization.keras.quantizers
    QuantizeConfig: Any = tfmot.quantization.keras.QuantizeConfig

    class DepthwisePerChannelWeightsQuantizer(quantizers.LastValueQuantizer):
        """Symmetric narrow-range int8 per output channel of a ``[k, k, C, m]`` kernel."""

        def __init__(self) -> None:
            super().__init__(num_bits=8, per_axis=True, symmetric=True, narrow_range=True)

        def build(self, tensor_shape: Any, name: str, layer: Any) -> dict[str, Any]:
            channels = int(tensor_shape[-2]) * int(tensor_shape[-1])
            min_var = layer.add_weight(name + "_min", shape=(channels,),
                                       initializer=keras.initializers.Constant(-6.0),
                                       trainable=False)
            max_var = layer.add_weight(name + "_max", shape=(channels,),
                                       initializer=keras.initializers.Constant(6.0),
                                       trainable=False)
            return {"min_var": min_var, "max_var": max_var}

        def __call__(self, inputs: Any, training: Any, weights: Any, **kwargs: Any) -> Any:
            shape = tf.shape(inputs)
            # Output channels on the last axis, as the per-axis fake-quant op expects.
            flat = tf.reshape(inputs, [shape[0], shape[1], 1, shape[2] * shape[3]])
            out = super().__call__(flat, training, weights, **kwargs)
            return tf.reshape(out, shape)

        def get_config(self) -> dict[str, Any]:
            return {}

        @classmethod
        def from_config(cls, config: Mapping[str, Any]) -> Any:
            return cls()

    class FoldedConvQuantizeConfig(QuantizeConfig):
        """A folded conv: int8 weights per output channel (as TFLite), optional output.

        ``quantize_output`` is off when a ReLU / ReLU6 follows (TFLite fuses it; the ReLU
        layer quantizes the fused output) and on otherwise (the linear projection).
        """

        def __init__(self, quantize_output: bool = False) -> None:
            self.quantize_output = bool(quantize_output)

        @staticmethod
        def _weight_attr(layer: Any) -> str:
            return "depthwise_kernel" if isinstance(layer, keras.layers.DepthwiseConv2D) \
                else "kernel"

        def get_weights_and_quantizers(self, layer: Any) -> list[tuple[Any, Any]]:
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                quantizer = DepthwisePerChannelWeightsQuantizer()
            else:
                quantizer = _default_conv_weights_quantizer()
            return [(getattr(layer, self._weight_attr(layer)), quantizer)]

        def get_activations_and_quantizers(self, layer: Any) -> list[tuple[Any, Any]]:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list[Any]) -> None:
            setattr(layer, self._weight_attr(layer), quantize_weights[0])

        def set_quantize_activations(self, layer: Any, quantize_activations: list[Any]) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list[Any]:
            if not self.quantize_output:
                return []
            return [quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self) -> dict[str, Any]:
            return {"quantize_output": self.quantize_output}

    return DepthwisePerChannelWeightsQuantizer, FoldedConvQuantizeConfig


def _default_conv_weights_quantizer() -> Any:
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import default_8bit_quantizers

    return default_8bit_quantizers.Default8BitConvWeightsQuantizer()


def quantize_model(model: keras.Model, calibration_images: np.ndarray | None = None) -> keras.Model:
    """The TF-MOT QAT model of ``model``: BN folded, depthwise weights per channel; with
    ``calibration_images``, every activation range starts at the range those images give
    (:func:`calibrate_activation_ranges`) instead of TF-MOT's [-6, 6]."""
    tfmot = _tfmot()
    qk = tfmot.quantization.keras
    quantizer_cls, config_cls = _depthwise_config_classes()
    folded = fold_batchnorm(model)
    followed_by_relu = {
        layer._inbound_nodes[0].inbound_layers.name
        for layer in folded.layers if isinstance(layer, keras.layers.ReLU)
        and not isinstance(layer._inbound_nodes[0].inbound_layers, list)}

    def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, (FoldedConv2D, FoldedDepthwiseConv2D)):
            return qk.quantize_annotate_layer(
                layer, config_cls(quantize_output=layer.name not in followed_by_relu))
        if isinstance(layer, keras.layers.InputLayer):
            return layer
        return qk.quantize_annotate_layer(layer)

    scope = {config_cls.__name__: config_cls, quantizer_cls.__name__: quantizer_cls,
             **CUSTOM_OBJECTS}
    with qk.quantize_scope(scope):
        annotated = keras.models.clone_model(folded, clone_function=annotate)
        annotated.set_weights(folded.get_weights())
        qat = qk.quantize_apply(annotated)
    if calibration_images is not None:
        calibrate_activation_ranges(qat, folded, calibration_images)
    return qat


_RANGE_VARIABLES = ("output", "post_activation")  # TF-MOT's names of activation ranges


def calibrate_activation_ranges(qat: keras.Model, folded: keras.Model, images: np.ndarray,
                                batch_size: int = 128) -> int:
    """Start each activation quantizer of ``qat`` at the float range of its layer's output on
    ``images`` (widened to include 0, as TFLite's ranges do); the number of ranges set.

    TF-MOT starts every moving-average range at [-6, 6] and moves it by an exponential
    average (decay 0.999): after a short QAT a ReLU6 output still spans about [-5, 6]
    (measured: zero point -10 instead of -128 after 150 steps), so the int8 code wastes
    almost half its levels, and the activation clamp is not the full int8 range, which the
    engine's fastest kernels need. Starting from the data's range is what PTQ's calibration
    does; the moving average then only refines it."""
    targets = []
    for wrapper in qat.layers:
        inner = getattr(wrapper, "layer", None)
        if inner is None:
            continue
        pairs = []
        for prefix in _RANGE_VARIABLES:
            mins = [v for v in wrapper.weights if v.name.endswith(f"/{prefix}_min:0")]
            maxs = [v for v in wrapper.weights if v.name.endswith(f"/{prefix}_max:0")]
            if mins and maxs:
                pairs.append((mins[0], maxs[0]))
        if pairs:
            try:
                targets.append((folded.get_layer(inner.name).output, pairs))
            except ValueError:
                continue
    if not targets:
        return 0
    probe = keras.Model(folded.inputs, [t for t, _ in targets])
    outputs = probe.predict(images, batch_size=batch_size, verbose=0)
    if len(targets) == 1:
        outputs = [outputs]
    for (_, pairs), values in zip(targets, outputs):
        lo, hi = min(0.0, float(np.min(values))), max(0.0, float(np.max(values)))
        if hi - lo <= 0.0:
            continue
        for lo_var, hi_var in pairs:
            lo_var.assign(lo)
            hi_var.assign(hi)
    return len(targets)


# ------------------------------------------------------------------------ fine-tuning
@dataclass(frozen=True)
class QATConfig:
    steps: int = 200
    batch_size: int = 64
    learning_rate: float = 1e-3
    momentum: float = 0.9
    seed: int = 0

    def get_config(self) -> dict[str, Any]:
        return {"steps": self.steps, "batch_size": self.batch_size,
                "learning_rate": self.learning_rate, "momentum": self.momentum,
                "seed": self.seed}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "QATConfig":
        return cls(**dict(config))


CALIBRATION_IMAGES = 256  # training images that set the activation ranges before QAT


def qat_finetune(model: keras.Model, train: ImageDataset, config: QATConfig = QATConfig(),
                 augmentation: Augmentation | None = None, verbose: int = 0) -> keras.Model:
    """Quantization-aware fine-tuning of a float model on prepared ``train`` images; the
    activation ranges start from ``calibration_images`` of them (the first 256)."""
    qat = quantize_model(model, to_float(train.images[:CALIBRATION_IMAGES]))
    if config.steps <= 0:
        return qat
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
    qat.compile(optimizer=keras.optimizers.SGD(schedule, momentum=config.momentum),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
    ds = make_pipeline(train, config.batch_size, training=True, seed=config.seed,
                       augmentation=augmentation)
    qat.fit(ds, steps_per_epoch=config.steps, epochs=1, verbose=verbose)
    return qat


def int8_from_qat(qat_model: keras.Model, representative: np.ndarray) -> bytes:
    return export_int8_tflite(qat_model, lambda: iter(representative))


def int8_from_ptq(float_model: keras.Model, representative: np.ndarray) -> bytes:
    """Post-training quantization: the cheaper option, calibration only."""
    return export_int8_tflite(float_model, lambda: iter(representative))


# ------------------------------------------------------------------------ accuracies
def keras_accuracy(model: keras.Model, dataset: ImageDataset, batch_size: int = 256) -> float:
    logits = model.predict(to_float(dataset.images), batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == dataset.labels))


def tflite_predict(flatbuffer: bytes, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
    """Dequantized outputs of an int8 ``.tflite`` on float ``images`` (ai_edge_litert)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    results = []
    current = None
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if current != len(batch):
            interpreter.resize_tensor_input(inp["index"], [len(batch), *batch.shape[1:]])
            interpreter.allocate_tensors()
            current = len(batch)
        q = np.clip(np.round(batch / in_scale + in_zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q)
        interpreter.invoke()
        raw = interpreter.get_tensor(out["index"]).astype(np.float32)
        results.append((raw - out_zero) * out_scale)
    return np.concatenate(results)


def tflite_accuracy(flatbuffer: bytes, dataset: ImageDataset) -> float:
    logits = tflite_predict(flatbuffer, to_float(dataset.images))
    return float(np.mean(np.argmax(logits, axis=-1) == dataset.labels))
