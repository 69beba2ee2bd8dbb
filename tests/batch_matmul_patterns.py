"""Small tf_keras models whose int8 export (TFLiteConverter, full-integer PTQ) has a
BATCH_MATMUL, for tests/test_kernel_batch_matmul.py: attention scores q @ k^T (adj_y),
a transposed LHS (adj_x), both, 4-D heads, broadcast batch dimensions, a constant batched
RHS, odd sizes (1, 3, 17).

Each model names the options its BATCH_MATMULs must have (adj_x, adj_y), so a TensorFlow
release that exports it differently fails the test instead of silently testing something
else. Like tests/exporter_patterns.py the export imports TensorFlow and runs in a child:

    python -m tests.batch_matmul_patterns OUT_DIR   # writes OUT_DIR/<name>.tflite for each
"""
from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import Any, Callable

import numpy as np

CALIBRATION_SAMPLES = 8


@dataclasses.dataclass(frozen=True)
class Pattern:
    build: Callable[[Any, Any, Any], Any]  # (keras, tf, the input tensor) -> the output
    input_shape: tuple[int, ...]  # without the batch (1)
    adj: frozenset[tuple[bool, bool]]  # the (adj_x, adj_y) of its BATCH_MATMULs


def _qk_3d(keras: Any, tf: Any, x: Any) -> Any:
    """Attention scores of one head: (T, C) -> q, k (T, 8) -> q @ k^T (T, T)."""
    q = keras.layers.Dense(8)(x)
    k = keras.layers.Dense(8)(x)
    return keras.layers.Lambda(lambda t: tf.matmul(t[0], t[1], transpose_b=True))([q, k])


def _lhs_transposed(keras: Any, tf: Any, x: Any) -> Any:
    """q^T @ v with odd sizes: (17, 3)^T @ (17, 5) -> (3, 5)."""
    q = keras.layers.Dense(3)(x)
    v = keras.layers.Dense(5, activation="relu")(x)
    return keras.layers.Lambda(lambda t: tf.matmul(t[0], t[1], transpose_a=True))([q, v])


def _both_transposed(keras: Any, tf: Any, x: Any) -> Any:
    """a^T @ b^T: (17, 3)^T @ (1, 17)^T -> (3, 1), N = 1."""
    a = keras.layers.Dense(3)(x)
    b = keras.layers.Dense(17)(keras.layers.Dense(1)(x))
    b = keras.layers.Lambda(lambda t: t[:, :1, :])(b)
    return keras.layers.Lambda(lambda t: tf.matmul(t[0], t[1], transpose_a=True,
                                                   transpose_b=True))([a, b])


def _heads_4d(keras: Any, tf: Any, x: Any) -> Any:
    """Two heads: (T, 2 * 4) -> (2, T, 4) per projection, scores q @ k^T (2, T, T), then
    scores @ v: 4-D, both RHS computed."""
    def heads(t):
        return tf.transpose(tf.reshape(t, (-1, 6, 2, 4)), (0, 2, 1, 3))
    q = keras.layers.Lambda(heads)(keras.layers.Dense(8)(x))
    k = keras.layers.Lambda(heads)(keras.layers.Dense(8)(x))
    v = keras.layers.Lambda(heads)(keras.layers.Dense(8)(x))
    s = keras.layers.Lambda(lambda t: tf.matmul(t[0], t[1], transpose_b=True))([q, k])
    return keras.layers.Lambda(lambda t: tf.matmul(t[0], t[1]))([s, v])


def _broadcast_batch(keras: Any, tf: Any, x: Any) -> Any:
    """(1, 1, 6, 8) @ (1, 3, 8, 1): one LHS matrix broadcast against three RHS ones."""
    a = keras.layers.Lambda(lambda t: tf.reshape(tf.transpose(t, (0, 2, 1)), (-1, 1, 6, 8)))(
        keras.layers.Dense(6)(x))
    b = keras.layers.Lambda(lambda t: tf.reshape(tf.transpose(t, (0, 2, 1)), (-1, 3, 8, 1)))(
        keras.layers.Dense(3)(x))
    return keras.layers.Lambda(lambda t: tf.matmul(t[0], t[1]))([a, b])


def _constant_rhs(keras: Any, tf: Any, x: Any) -> Any:
    """x @ W per batch with a constant batched W (2, 17, 3): (2, 6, 17) @ (2, 17, 3)."""
    w = np.random.default_rng(3).uniform(-1, 1, (2, 17, 3)).astype(np.float32)
    a = keras.layers.Lambda(lambda t: tf.reshape(t, (-1, 2, 6, 17)))(keras.layers.Dense(34)(x))
    return keras.layers.Lambda(lambda t: tf.matmul(t, tf.constant(w)))(a)


PATTERNS: dict[str, Pattern] = {
    "qk_3d": Pattern(_qk_3d, (6, 18), frozenset({(False, True)})),
    "lhs_transposed": Pattern(_lhs_transposed, (17, 4), frozenset({(True, False)})),
    "both_transposed": Pattern(_both_transposed, (17, 4), frozenset({(True, True)})),
    "heads_4d": Pattern(_heads_4d, (6, 5), frozenset({(False, True), (False, False)})),
    "broadcast_batch": Pattern(_broadcast_batch, (8, 5), frozenset({(False, False)})),
    "constant_rhs": Pattern(_constant_rhs, (6, 5), frozenset({(False, False)})),
}


def export_all(out_dir: pathlib.Path) -> None:
    from mcunet_tf.export import export_int8_tflite
    from mcunet_tf.tf_env import keras, tf

    out_dir.mkdir(parents=True, exist_ok=True)
    for k, (name, pattern) in enumerate(sorted(PATTERNS.items())):
        keras.backend.clear_session()
        keras.utils.set_random_seed(k)
        inp = keras.Input(pattern.input_shape, batch_size=1)
        model = keras.Model(inp, pattern.build(keras, tf, inp))
        rng = np.random.default_rng(k)
        data = rng.uniform(-1, 1, (CALIBRATION_SAMPLES, 1) + pattern.input_shape).astype(np.float32)
        export_int8_tflite(model, lambda data=data: iter(data), out_dir / f"{name}.tflite")


if __name__ == "__main__":
    export_all(pathlib.Path(sys.argv[1]))
