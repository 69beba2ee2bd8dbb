"""Small tf_keras models with the op patterns that PyTorch exporters (ai-edge-torch,
onnx2tf) and the ST / Edge Impulse / OpenMV model zoos put into int8 TFLite (issue 18), and
their int8 export.

The exporters themselves are not installed: each pattern rebuilds, in Keras, the idiom the
exporter writes (a PyTorch model converted NCHW -> NHWC keeps TRANSPOSE at its input and
output and before a torch-style flatten; `padding=1` becomes an explicit PAD and a VALID
convolution; `AdaptiveAvgPool2d(1)` a MEAN over H and W; hardswish / hardsigmoid / ReLU6 /
GELU come as chains of MUL, ADD, MINIMUM, MAXIMUM, TANH; a BatchNorm that follows no
convolution stays a per-channel MUL and ADD; `torch.cat(dim=1)` a channel CONCATENATION;
ShuffleNet's `chunk` a STRIDED_SLICE or SPLIT and its shuffle RESHAPE-TRANSPOSE-RESHAPE;
a `nn.Linear` on (N, T, C) a FULLY_CONNECTED on a 3-D input and `torch.matmul` of two
activations a BATCH_MATMUL). Model-zoo idioms: Edge Impulse's 1-D convolution over a
flattened spectrogram (RESHAPE, EXPAND_DIMS, CONV_2D, MAX_POOL_2D, SOFTMAX), ST's uint8
input and float32 output (QUANTIZE uint8 -> int8, DEQUANTIZE at the end), OpenMV's
depthwise-separable ReLU6 classifier.

Each pattern names the TFLite operators its export must contain, so a TensorFlow release
that exports it differently fails the test instead of silently testing something else.
Like tests/keras_patterns.py, the export imports TensorFlow and runs in a child process:

    python -m tests.exporter_patterns OUT_DIR   # writes OUT_DIR/<name>.tflite for each
"""
from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import Any, Callable, Optional

import numpy as np

CALIBRATION_SAMPLES = 6
IMAGE = (6, 6, 3)  # NHWC image of most patterns
NCHW_IMAGE = (3, 6, 6)  # what a PyTorch exporter's model takes


@dataclasses.dataclass(frozen=True)
class Pattern:
    # (keras, tf, the input tensor) -> the output tensor
    build: Callable[[Any, Any, Any], Any]
    ops: frozenset[str]  # TFLite operators the int8 export must contain
    input_shape: tuple[int, ...] = IMAGE  # without the batch (always 1, as the exporters write)
    # the converter must refuse the export with this (a regex naming op, index and reason),
    # because TFLM does not run it either (`tflm_refuses`, a regex of TFLM's own error)
    refused: Optional[str] = None
    tflm_refuses: Optional[str] = None
    # TFLM runs it but the converter refuses it (`refused`): not built yet, the reason why
    gap: Optional[str] = None
    uint8_input_float_output: bool = False  # ST model zoo I/O: uint8 in, float32 out
    qemu: bool = False  # also compared with TFLM on the emulated Cortex-M7


# ---------------------------------------------------------------------------------------------
# PyTorch exporters (ai-edge-torch, onnx2tf)


def _nchw_io(keras: Any, tf: Any, x: Any) -> Any:
    """ai-edge-torch's default NCHW model: TRANSPOSE(0,2,3,1) at the input, the body in
    NHWC, TRANSPOSE(0,3,1,2) back to NCHW at the output."""
    x = keras.layers.Permute((2, 3, 1))(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(5, 1)(x)
    return keras.layers.Permute((3, 1, 2))(x)


def _torch_flatten(keras: Any, tf: Any, x: Any) -> Any:
    """`torch.flatten(x, 1)` after convolutions: the exporter first puts the NHWC tensor back
    into NCHW order (TRANSPOSE), then reshapes, so the classifier's weights keep PyTorch's
    (C, H, W) order."""
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.Permute((3, 1, 2))(x)
    x = keras.layers.Reshape((4 * 3 * 3,))(x)
    return keras.layers.Dense(6)(x)


def _explicit_pad_conv(keras: Any, tf: Any, x: Any) -> Any:
    """`nn.Conv2d(padding=1)` and a strided depthwise one: explicit PAD, then VALID
    convolutions (symmetric padding, not TF's SAME), and a max-pool over an explicit PAD."""
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.Conv2D(6, 3, padding="valid", activation="relu")(x)
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid")(x)
    x = keras.layers.ZeroPadding2D(((1, 0), (0, 1)))(x)
    return keras.layers.MaxPooling2D(2, strides=1)(x)


def _adaptive_avg_pool(keras: Any, tf: Any, x: Any) -> Any:
    """`AdaptiveAvgPool2d(1)` as MEAN over H and W, kept 4-D (then a 1x1 convolution, as
    torchvision's SqueezeNet head) and reduced (`x.mean((2, 3))` then a linear layer)."""
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    keep = keras.layers.Lambda(lambda t: tf.reduce_mean(t, axis=[1, 2], keepdims=True))(x)
    keep = keras.layers.Conv2D(4, 1)(keep)
    keep = keras.layers.Reshape((4,))(keep)
    flat = keras.layers.Lambda(lambda t: tf.reduce_mean(t, axis=[1, 2]))(x)
    flat = keras.layers.Dense(4)(flat)
    return keras.layers.Concatenate()([keep, flat])


def _hard_swish_chain(keras: Any, tf: Any, x: Any) -> Any:
    """MobileNetV3 as the exporters spell `nn.Hardswish` and `nn.Hardsigmoid` out:
    x * relu6(x + 3) / 6 (TF's converter fuses it into HARD_SWISH) and a squeeze-excite gate
    relu6(mean + 3) / 6 times the features, which stays ADD (with a fused RELU6) and MUL (no
    HARD_SIGMOID op exists)."""
    x = keras.layers.Conv2D(6, 3, padding="same")(x)
    x = keras.layers.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) * (1.0 / 6.0))(x)
    s = keras.layers.Lambda(lambda t: tf.reduce_mean(t, axis=[1, 2], keepdims=True))(x)
    s = keras.layers.Lambda(lambda t: tf.nn.relu6(t + 3.0) * (1.0 / 6.0))(s)
    return keras.layers.Multiply()([x, s])


def _divide(keras: Any, tf: Any, x: Any) -> Any:
    """Softsign-style x / (1 + |x|): an int8 DIV of two activations (TF's quantization of
    it keeps TFLM's shifts defined for every input pair)."""
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    return keras.layers.Lambda(lambda t: t / (1.0 + tf.abs(t)))(x)


def _clip_min_max(keras: Any, tf: Any, x: Any) -> Any:
    """`torch.clamp` / `nn.Hardtanh` / ReLU6 written as MAXIMUM then MINIMUM by constants
    (onnx2tf's Clip), at bounds no fused activation has."""
    x = keras.layers.Conv2D(6, 3, padding="same")(x)
    x = keras.layers.Lambda(lambda t: tf.minimum(tf.maximum(t, -0.4), 0.9))(x)
    return keras.layers.Conv2D(3, 1)(x)


def _batchnorm_mul_add(keras: Any, tf: Any, x: Any) -> Any:
    """A BatchNorm with no convolution before it (on the input, after an addition), as the
    exporters leave it: MUL and ADD by per-channel constants."""
    c = x.shape[-1]
    gamma = np.linspace(0.5, 1.5, c).astype(np.float32)
    beta = np.linspace(-0.2, 0.3, c).astype(np.float32)
    x = keras.layers.Lambda(lambda t: t * gamma + beta)(x)
    y = keras.layers.Conv2D(c, 3, padding="same")(x)
    y = keras.layers.Add()([x, y])
    g2 = np.linspace(1.2, 0.4, c).astype(np.float32)
    b2 = np.linspace(0.1, -0.1, c).astype(np.float32)
    return keras.layers.Lambda(lambda t: t * g2 + b2)(y)


def _channel_concat(keras: Any, tf: Any, x: Any) -> Any:
    """`torch.cat(dim=1)` of two branches (Inception / DenseNet) after the NCHW -> NHWC
    rewrite: CONCATENATION along the last axis, of tensors with different quantization."""
    a = keras.layers.Conv2D(3, 1, activation="relu")(x)
    b = keras.layers.Conv2D(5, 3, padding="same")(x)
    y = keras.layers.Concatenate(axis=-1)([a, b, x])
    return keras.layers.Conv2D(4, 1)(y)


def _gelu_tanh(keras: Any, tf: Any, x: Any) -> Any:
    """GELU's tanh approximation spelt out by an exporter that has no GELU op:
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), i.e. MUL, ADD and TANH."""
    x = keras.layers.Conv2D(6, 3, padding="same")(x)
    k = float(np.sqrt(2.0 / np.pi))
    x = keras.layers.Lambda(
        lambda t: 0.5 * t * (1.0 + tf.tanh(k * (t + 0.044715 * t * t * t))))(x)
    return keras.layers.Conv2D(3, 1)(x)


def _gelu_sigmoid(keras: Any, tf: Any, x: Any) -> Any:
    """GELU's sigmoid approximation x * sigmoid(1.702 x) (quick GELU): MUL and LOGISTIC."""
    x = keras.layers.Conv2D(6, 3, padding="same")(x)
    x = keras.layers.Lambda(lambda t: t * tf.sigmoid(1.702 * t))(x)
    return keras.layers.Conv2D(3, 1)(x)


def _gelu_builtin(keras: Any, tf: Any, x: Any) -> Any:
    """Keras GELU, which TF's converter writes as the GELU builtin (ai-edge-torch does too).
    TFLM has no GELU kernel, so the converter refuses it."""
    x = keras.layers.Conv2D(6, 3, padding="same")(x)
    x = keras.layers.Activation("gelu")(x)
    return keras.layers.Conv2D(3, 1)(x)


def _linear_3d(keras: Any, tf: Any, x: Any) -> Any:
    """`nn.Linear` on a (N, T, C) sequence (a transformer / audio block): FULLY_CONNECTED on a
    3-D input, keeping its dimensions."""
    x = keras.layers.Reshape((6, 18))(x)
    x = keras.layers.Dense(8, activation="relu")(x)
    return keras.layers.Dense(4)(x)


def _batch_matmul(keras: Any, tf: Any, x: Any) -> Any:
    """`torch.matmul` of two activations (attention scores q @ k^T): BATCH_MATMUL."""
    x = keras.layers.Reshape((6, 18))(x)
    q = keras.layers.Dense(8)(x)
    k = keras.layers.Dense(8)(x)
    return keras.layers.Lambda(lambda t: tf.matmul(t[0], t[1], transpose_b=True))([q, k])


def _shufflenet_split(keras: Any, tf: Any, x: Any) -> Any:
    """ShuffleNetV2's unit: `x.chunk(2, dim=1)` (STRIDED_SLICE of the channels), one half
    through a 1x1-depthwise-1x1 branch, CONCATENATION, then the channel shuffle
    RESHAPE -> TRANSPOSE -> RESHAPE with two groups."""
    x = keras.layers.Conv2D(8, 1, activation="relu")(x)
    left = keras.layers.Lambda(lambda t: t[:, :, :, :4])(x)
    right = keras.layers.Lambda(lambda t: t[:, :, :, 4:])(x)
    right = keras.layers.Conv2D(4, 1, activation="relu")(right)
    right = keras.layers.DepthwiseConv2D(3, padding="same")(right)
    right = keras.layers.Conv2D(4, 1, activation="relu")(right)
    y = keras.layers.Concatenate()([left, right])
    y = keras.layers.Reshape((6, 6, 2, 4))(y)
    y = keras.layers.Permute((1, 2, 4, 3))(y)
    return keras.layers.Reshape((6, 6, 8))(y)


# ---------------------------------------------------------------------------------------------
# Model zoos (Edge Impulse, ST, OpenMV)


def _edge_impulse_conv1d(keras: Any, tf: Any, x: Any) -> Any:
    """Edge Impulse's keyword-spotting block: the flattened MFCC features reshaped to
    (frames, coefficients), Conv1D + MaxPool1D twice, flatten, Dense, Softmax."""
    x = keras.layers.Reshape((16, 5))(x)
    x = keras.layers.Conv1D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling1D(2, padding="same")(x)
    x = keras.layers.Conv1D(6, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling1D(2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(4)(x)
    return keras.layers.Softmax()(x)


def _st_uint8_io(keras: Any, tf: Any, x: Any) -> Any:
    """An ST model zoo classifier: uint8 image in, float32 scores out (QUANTIZE uint8 ->
    int8 at the input, DEQUANTIZE after the softmax)."""
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5)(x)
    return keras.layers.Softmax()(x)


def _openmv_dsconv(keras: Any, tf: Any, x: Any) -> Any:
    """OpenMV's MobileNet-style person / object classifier: depthwise-separable blocks with
    ReLU6, global average pooling, Dense and Softmax."""
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.Conv2D(12, 1)(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(3)(x)
    return keras.layers.Softmax()(x)


PATTERNS: dict[str, Pattern] = {
    "nchw_io": Pattern(_nchw_io, frozenset({"TRANSPOSE", "CONV_2D"}), input_shape=NCHW_IMAGE,
                       qemu=True),
    "torch_flatten": Pattern(_torch_flatten, frozenset({"TRANSPOSE", "RESHAPE", "FULLY_CONNECTED"})),
    "explicit_pad_conv": Pattern(_explicit_pad_conv,
                                 frozenset({"PAD", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D"}),
                                 qemu=True),
    "adaptive_avg_pool": Pattern(_adaptive_avg_pool, frozenset({"MEAN", "CONCATENATION"})),
    "hard_swish_chain": Pattern(_hard_swish_chain,
                                frozenset({"HARD_SWISH", "MEAN", "ADD", "MUL"})),
    "divide": Pattern(_divide, frozenset({"DIV"}), qemu=True),
    "clip_min_max": Pattern(_clip_min_max, frozenset({"MAXIMUM", "MINIMUM"})),
    "batchnorm_mul_add": Pattern(_batchnorm_mul_add, frozenset({"MUL", "ADD"})),
    "channel_concat": Pattern(_channel_concat, frozenset({"CONCATENATION"})),
    "gelu_tanh": Pattern(_gelu_tanh, frozenset({"MUL", "ADD", "TANH"}), qemu=True),
    "gelu_sigmoid": Pattern(_gelu_sigmoid, frozenset({"MUL", "LOGISTIC"})),
    "gelu_builtin": Pattern(_gelu_builtin, frozenset({"GELU"}), refused=r"op 1 GELU: not supported",
                            tflm_refuses=r"GELU|Didn't find op"),
    "linear_3d": Pattern(_linear_3d, frozenset({"FULLY_CONNECTED"})),
    "batch_matmul": Pattern(_batch_matmul, frozenset({"BATCH_MATMUL"}), qemu=True),
    "shufflenet_split": Pattern(_shufflenet_split,
                                frozenset({"STRIDED_SLICE", "CONCATENATION", "TRANSPOSE"})),
    "edge_impulse_conv1d": Pattern(_edge_impulse_conv1d,
                                   frozenset({"RESHAPE", "CONV_2D", "MAX_POOL_2D", "SOFTMAX"}),
                                   input_shape=(80,), qemu=True),
    "st_uint8_io": Pattern(_st_uint8_io, frozenset({"QUANTIZE", "DEQUANTIZE", "MEAN"}),
                           uint8_input_float_output=True),
    "openmv_dsconv": Pattern(_openmv_dsconv,
                             frozenset({"DEPTHWISE_CONV_2D", "MEAN", "SOFTMAX"})),
}


def _export(model: Any, data: np.ndarray, pattern: Pattern, path: pathlib.Path) -> None:
    """Full-integer export (mcunet_tf.export), or for the ST I/O idiom the same with a uint8
    input and a float32 output."""
    from mcunet_tf.export import export_int8_tflite
    from mcunet_tf.tf_env import tf

    if not pattern.uint8_input_float_output:
        export_int8_tflite(model, lambda: iter(data), path)
        return

    def samples():
        for d in data:
            yield [d]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.float32
    path.write_bytes(bytes(converter.convert()))


def export_all(out_dir: pathlib.Path, names: Optional[list[str]] = None) -> None:
    from mcunet_tf.tf_env import keras, tf

    out_dir.mkdir(parents=True, exist_ok=True)
    for k, (name, pattern) in enumerate(sorted(PATTERNS.items())):
        if names and name not in names:
            continue
        keras.backend.clear_session()
        keras.utils.set_random_seed(k)
        inp = keras.Input(pattern.input_shape, batch_size=1)
        model = keras.Model(inp, pattern.build(keras, tf, inp))
        rng = np.random.default_rng(k)
        lo = 0.0 if pattern.uint8_input_float_output else -1.0
        data = rng.uniform(lo, 1, (CALIBRATION_SAMPLES, 1) + pattern.input_shape).astype(np.float32)
        _export(model, data, pattern, out_dir / f"{name}.tflite")


if __name__ == "__main__":
    export_all(pathlib.Path(sys.argv[1]), sys.argv[2:] or None)
