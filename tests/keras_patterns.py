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
import pathlib
import sys
from typing import Any, Callable

import numpy as np

INPUT_SHAPE = (6, 6, 3)
CALIBRATION_SAMPLES = 8


@dataclasses.dataclass(frozen=True)
class Pattern:
    # (keras, tf, the input tensor) -> the output tensor
    build: Callable[[Any, Any, Any], Any]
    ops: frozenset[str]  # TFLite operators the int8 export must contain


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


PATTERNS: dict[str, Pattern] = {
    "reshape_conv1d": Pattern(_reshape_conv1d, frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"})),
    "reshape_conv2d": Pattern(_reshape_conv2d, frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"})),
    "sub_pixel_upsampling": Pattern(_sub_pixel_upsampling, frozenset({"DEPTH_TO_SPACE"})),
    "space_to_depth_stem": Pattern(_space_to_depth_stem, frozenset({"SPACE_TO_DEPTH"})),
    "global_max_pool": Pattern(_global_max_pool, frozenset({"REDUCE_MAX"})),
    "argmax_head": Pattern(_argmax_head, frozenset({"ARG_MAX"})),
    "channel_gather": Pattern(_channel_gather, frozenset({"GATHER"})),
}


def export_all(out_dir: pathlib.Path) -> None:
    from mcunet_tf.export import export_int8_tflite
    from mcunet_tf.tf_env import keras, tf

    out_dir.mkdir(parents=True, exist_ok=True)
    for k, (name, pattern) in enumerate(sorted(PATTERNS.items())):
        keras.backend.clear_session()
        keras.utils.set_random_seed(k)
        inp = keras.Input(INPUT_SHAPE)
        model = keras.Model(inp, pattern.build(keras, tf, inp))
        rng = np.random.default_rng(k)
        data = rng.uniform(-1, 1, (CALIBRATION_SAMPLES,) + INPUT_SHAPE).astype(np.float32)
        export_int8_tflite(model, lambda data=data: iter(data), out_dir / f"{name}.tflite")


if __name__ == "__main__":
    export_all(pathlib.Path(sys.argv[1]))
