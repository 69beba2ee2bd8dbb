"""Small tf_keras models with the exporter patterns the converter must take (issue 18), and
their int8 export.

Each pattern names the TFLite operators its export must contain, so a TensorFlow release
that exports it differently fails the test instead of silently testing something else. The
export imports TensorFlow, so it runs in a child process (the test process never imports it:
the converter and engine tests run without TensorFlow):

    python -m tests.keras_patterns OUT_DIR   # writes OUT_DIR/<name>.tflite for every pattern
"""
from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import subprocess
import sys
from typing import Any, Callable, Optional

import numpy as np

INPUT_SHAPE = (6, 6, 3)
CALIBRATION_SAMPLES = 8


@dataclasses.dataclass(frozen=True)
class Pattern:
    # (keras, tf, the input tensor) -> the output tensor
    build: Callable[[Any, Any, Any], Any]
    ops: frozenset[str]  # TFLite operators the int8 export must contain
    batch_size: Optional[int] = None  # None: the dynamic batch of keras.Input
    refused: Optional[str] = None  # the converter must refuse the export with this (a regex)
    # ops kept in float32 (TF's QuantizationDebugger with these denylisted, float32 model
    # input and output, as selectively quantized models from model zoos come): the float
    # head / tail patterns; each must come out with a float32 output
    float_ops: frozenset[str] = frozenset()


def _reshape_conv1d(keras: Any, tf: Any, x: Any) -> Any:
    """Keras Reshape with a dynamic batch: tf.reshape by (tf.shape(x)[0],) + target shape,
    exported as SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE on int32 tensors."""
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.Reshape((36, 4))(x)
    return keras.layers.Conv1D(3, 3)(x)


def _reshape_conv2d(keras: Any, tf: Any, x: Any) -> Any:
    """The same, back to NHWC of another height and width, then a 2-D convolution."""
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.Reshape((3, 12, 4))(x)
    return keras.layers.Conv2D(2, 3, padding="same")(x)


def _sub_pixel_upsampling(keras: Any, tf: Any, x: Any) -> Any:
    """ESPCN-style upsampling: a convolution to b*b times the channels, then depth to space."""
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(x)
    return keras.layers.Conv2D(2, 3, padding="same")(x)


def _space_to_depth_stem(keras: Any, tf: Any, x: Any) -> Any:
    """A space-to-depth stem (YOLOv5-style Focus) before the first convolution."""
    x = keras.layers.Lambda(lambda t: tf.nn.space_to_depth(t, 2))(x)
    return keras.layers.Conv2D(4, 3, padding="same")(x)


def _global_max_pool(keras: Any, tf: Any, x: Any) -> Any:
    """A classifier head over the spatial maximum (Keras GlobalMaxPooling2D: REDUCE_MAX)."""
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalMaxPooling2D()(x)
    return keras.layers.Dense(5)(x)


def _argmax_head(keras: Any, tf: Any, x: Any) -> Any:
    """A classifier that outputs the class index (int32, as TFLM's ARG_MAX writes)."""
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5)(x)
    return keras.layers.Lambda(lambda t: tf.argmax(t, axis=-1, output_type=tf.int32))(x)


def _channel_gather(keras: Any, tf: Any, x: Any) -> Any:
    """Channels picked by constant indices: reordered, one twice, one dropped."""
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.Lambda(lambda t: tf.gather(t, [3, 1, 0, 0], axis=3))(x)
    return keras.layers.Conv2D(2, 3, padding="same")(x)


def _log_softmax_head(keras: Any, tf: Any, x: Any) -> Any:
    """A classifier emitting log-probabilities (tf.nn.log_softmax: LOG_SOFTMAX)."""
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10)(x)
    return keras.layers.Lambda(lambda t: tf.nn.log_softmax(t))(x)


def _layer_norm(keras: Any, tf: Any, x: Any) -> Any:
    """Keras LayerNormalization over the channels: MEAN, SQUARED_DIFFERENCE, RSQRT."""
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.LayerNormalization(axis=-1)(x)
    return keras.layers.Conv2D(4, 1)(x)


def _dilated_convs(keras: Any, tf: Any, x: Any) -> Any:
    """Dilated (atrous) convolutions, SAME and VALID. With a static batch the converter
    emits CONV_2D / DEPTHWISE_CONV_2D with dilation factors; with the dynamic batch it keeps
    SPACE_TO_BATCH_ND (padded) -> convolution -> BATCH_TO_SPACE_ND with placeholder batch-1
    shapes, which TFLM runs wrongly (it moves one block of the four, and pads with a value
    it never sets), and which the converter refuses."""
    x = keras.layers.Conv2D(6, 3, padding="same", dilation_rate=2)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="valid", dilation_rate=2)(x)
    return keras.layers.Conv2D(3, 1)(x)


def _batch_space(keras: Any, tf: Any, x: Any) -> Any:
    """tf.space_to_batch / tf.batch_to_space (cropped) around a 1x1 convolution and a
    pooling, which the converter cannot turn into a dilated convolution."""
    x = keras.layers.Conv2D(4, 3, padding="same")(x)
    x = keras.layers.Lambda(lambda t: tf.space_to_batch(t, [2, 2], [[0, 0], [0, 0]]))(x)
    x = keras.layers.Conv2D(4, 1, activation="relu")(x)
    x = keras.layers.MaxPooling2D(1)(x)
    return keras.layers.Lambda(lambda t: tf.batch_to_space(t, [2, 2], [[0, 1], [1, 0]]))(x)


def _float_softmax_tail(keras: Any, tf: Any, x: Any) -> Any:
    """A classifier whose SOFTMAX stays float32: DEQUANTIZE -> SOFTMAX at the end."""
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10)(x)
    return keras.layers.Softmax()(x)


def _float_log_softmax_tail(keras: Any, tf: Any, x: Any) -> Any:
    """A float32 LOG_SOFTMAX tail. The input normalisation is denylisted too, but TF folds it
    into the first convolution, so no float head remains (tests/test_float_edges.py builds
    one directly)."""
    x = keras.layers.Lambda(lambda t: (t - 0.25) / 0.5)(x)
    x = keras.layers.Conv2D(6, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(5)(x)
    return keras.layers.Lambda(lambda t: tf.nn.log_softmax(t))(x)


PATTERNS: dict[str, Pattern] = {
    "reshape_conv1d": Pattern(_reshape_conv1d, frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"})),
    "reshape_conv2d": Pattern(_reshape_conv2d, frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"})),
    "sub_pixel_upsampling": Pattern(_sub_pixel_upsampling, frozenset({"DEPTH_TO_SPACE"})),
    "space_to_depth_stem": Pattern(_space_to_depth_stem, frozenset({"SPACE_TO_DEPTH"})),
    "global_max_pool": Pattern(_global_max_pool, frozenset({"REDUCE_MAX"})),
    "argmax_head": Pattern(_argmax_head, frozenset({"ARG_MAX"})),
    "channel_gather": Pattern(_channel_gather, frozenset({"GATHER"})),
    "log_softmax_head": Pattern(_log_softmax_head, frozenset({"LOG_SOFTMAX"})),
    "layer_norm": Pattern(_layer_norm, frozenset({"SQUARED_DIFFERENCE", "RSQRT"}), batch_size=1),
    "dilated_convs": Pattern(_dilated_convs, frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"}),
                             batch_size=1),
    "dilated_convs_dynamic_batch": Pattern(
        _dilated_convs, frozenset({"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"}),
        refused="op 0 SPACE_TO_BATCH_ND: paddings .*uninitialised"),
    "batch_space": Pattern(_batch_space, frozenset({"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"}),
                           batch_size=1),
    "float_softmax_tail": Pattern(_float_softmax_tail, frozenset({"DEQUANTIZE", "SOFTMAX"}),
                                  batch_size=1, float_ops=frozenset({"SOFTMAX"})),
    "float_log_softmax_tail": Pattern(
        _float_log_softmax_tail, frozenset({"QUANTIZE", "DEQUANTIZE", "LOG_SOFTMAX"}),
        batch_size=1, float_ops=frozenset({"SUB", "MUL", "ADD", "LOG_SOFTMAX"})),
}


def _export_with_float_ops(model: Any, data: np.ndarray, float_ops: frozenset[str],
                           path: pathlib.Path) -> None:
    """Selective quantization: the ops of `float_ops` stay float32 (TF's QuantizationDebugger,
    the documented way to keep chosen ops in float), float32 input and output."""
    from mcunet_tf.tf_env import tf

    def samples():
        for d in data:
            yield [d[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=sorted(float_ops))
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=samples, debug_options=options)
    path.write_bytes(bytes(debugger.get_nondebug_quantized_model()))


def export_in_child(module: str, out_dir: pathlib.Path, repo_root: pathlib.Path) -> pathlib.Path:
    """Run `python -m <module> OUT_DIR` (a pattern module's export) in a child process, so
    the test process never imports TensorFlow; pytest.skip without TensorFlow / tf_keras."""
    import pytest

    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
        pytest.skip(f"TensorFlow / tf_keras not installed: cannot export {module}")
    r = subprocess.run([sys.executable, "-m", module, str(out_dir)], capture_output=True,
                       text=True, cwd=repo_root, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"exporting {module} failed:\n{r.stderr[-3000:]}")
    return out_dir


def operators(model: bytes) -> set[str]:
    """The TFLite operator names a model's operator codes list."""
    from tflite_converter import schema

    m = schema.S.ModelT.InitFromPackedBuf(model, 0)
    return {schema.op_name(schema.builtin_code(oc)) for oc in m.operatorCodes}


def exported_model(out_dir: pathlib.Path, name: str, ops: frozenset[str]) -> bytes:
    """The exported <name>.tflite, asserted to contain the pattern's operators `ops` (else
    the pattern is no longer tested)."""
    model = (out_dir / f"{name}.tflite").read_bytes()
    missing = ops - operators(model)
    assert not missing, f"the export no longer has {sorted(missing)}: the pattern is not tested"
    return model


def export_all(out_dir: pathlib.Path) -> None:
    from mcunet_tf.export import export_int8_tflite
    from mcunet_tf.tf_env import keras, tf

    out_dir.mkdir(parents=True, exist_ok=True)
    for k, (name, pattern) in enumerate(sorted(PATTERNS.items())):
        keras.backend.clear_session()
        keras.utils.set_random_seed(k)
        inp = keras.Input(INPUT_SHAPE, batch_size=pattern.batch_size)
        model = keras.Model(inp, pattern.build(keras, tf, inp))
        rng = np.random.default_rng(k)
        data = rng.uniform(-1, 1, (CALIBRATION_SAMPLES,) + INPUT_SHAPE).astype(np.float32)
        if pattern.float_ops:
            _export_with_float_ops(model, data, pattern.float_ops, out_dir / f"{name}.tflite")
        else:
            export_int8_tflite(model, lambda data=data: iter(data), out_dir / f"{name}.tflite")


if __name__ == "__main__":
    export_all(pathlib.Path(sys.argv[1]))
