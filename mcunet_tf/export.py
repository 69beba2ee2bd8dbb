"""int8 TFLite export, and the published MCUNet architectures as int8 test material.

:func:`export_int8_tflite` turns a Keras model (trained, QAT-wrapped or random) into a
full-integer ``.tflite``: int8 weights (per-channel for convolutions), int8 activations,
int8 input and output, calibrated on a representative dataset. :func:`export_int4_tflite`
does the same with int4 filters (MCUNet's 4-bit weights), which it packs itself.

:func:`export_mcunet_reference_models` builds the published networks (``mcunet-in0`` ..
``mcunet-in4``, ``mbv2-w0.35``, ``proxyless-w0.3``, ``mbv2-w0.3-r64``) with seeded random
weights and writes ``<name>.tflite``; :func:`reference_model_path` does so once and caches the
file (``$MCUNET_MODEL_CACHE`` or ``<repo>/build/models``) for tests and benchmarks.

Random weights would give degenerate activations (all clipped by ReLU6 or all zero) after a
few layers, and then the int8 model is mostly constant -- useless for checking kernels. So
BatchNorm scale/offset are drawn at random and the BN moving statistics are set to the real
batch statistics of the calibration data: every BN output is then distributed roughly as
N(offset, scale^2), which keeps ReLU6 inputs in its interesting range at every depth.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, Union

import numpy as np

from mcunet_tf.keras_builder import build_keras_model
from mcunet_tf.mcunet_configs import PUBLISHED, published_network, published_spec
from mcunet_tf.network import NetworkSpec
from mcunet_tf.tf_env import keras, tf

MODEL_CACHE_ENV = "MCUNET_MODEL_CACHE"
# Bump when the way reference models are made changes, so cached files are rebuilt.
REFERENCE_EXPORT_VERSION = 3
DEFAULT_REFERENCE_MODELS: tuple[str, ...] = tuple(entry.name for entry in PUBLISHED)
DEFAULT_CALIBRATION_SAMPLES = 8

RepresentativeData = Union[Iterable[np.ndarray], Callable[[], Iterable[np.ndarray]]]


# --------------------------------------------------------------------------- int8 export
def _representative_batches(model: keras.Model,
                            data: RepresentativeData) -> Callable[[], Iterator[list]]:
    """A generator factory yielding ``[batch]`` lists as TFLiteConverter expects."""
    input_shape = tuple(model.inputs[0].shape)  # (batch, H, W, C), batch maybe None

    def gen() -> Iterator[list]:
        items = data() if callable(data) else data
        count = 0
        for item in items:
            array = np.asarray(item, dtype=np.float32)
            if array.ndim == len(input_shape) - 1:  # one sample without the batch axis
                array = array[None]
            if array.shape[1:] != input_shape[1:]:
                raise ValueError(
                    f"representative sample {count} has shape {array.shape}, the model "
                    f"expects (batch,) + {input_shape[1:]}")
            # The converter calibrates one sample at a time most reliably (static batch 1).
            for sample in array:
                count += 1
                yield [sample[None]]
        if count == 0:
            raise ValueError("the representative dataset is empty")

    return gen


def export_int8_tflite(model: keras.Model, representative_data: RepresentativeData,
                       path: str | os.PathLike[str] | None = None) -> bytes:
    """Full-integer int8 ``.tflite`` of ``model``; also written to ``path`` when given.

    Weights are quantized per output channel (convolutions and, as TF 2.21 does by default,
    the dense layer), activations per tensor.

    ``representative_data``: an iterable of float arrays (single samples (H, W, C) or batches
    (N, H, W, C)) in the model's input scale, or a callable returning such an iterable (use a
    callable for a one-shot generator: the converter may iterate more than once).
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"export_int8_tflite: model {model.name!r} has "
                         f"{len(model.inputs)} inputs and {len(model.outputs)} outputs; only "
                         "single-input single-output models are supported")
    if not callable(representative_data) and iter(representative_data) is representative_data:
        # A one-shot iterator would be exhausted after the first pass: materialise it.
        representative_data = list(representative_data)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_batches(model, representative_data)
    # Int8-only builtins: conversion fails (rather than silently keeping float ops) if some
    # op has no int8 kernel.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    flatbuffer = bytes(converter.convert())
    if path is not None:
        _atomic_write(Path(path), flatbuffer)
    return flatbuffer


def export_int4_tflite(model: keras.Model, representative_data: RepresentativeData,
                       path: str | os.PathLike[str] | None = None) -> bytes:
    """:func:`export_int8_tflite`, then every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED
    filter rewritten as TFLite int4 (two values a byte) by
    :func:`tflite_converter.int4.int4_filters_tflite`; also written to ``path`` when given.

    TF's converter cannot emit int4 filters, so they are packed here with the TFLite schema
    binding. What happens to the scales: per output channel the new scale is
    ``s * max|q| / 7`` (the channel's largest int8 weight becomes +-7), the weights are the
    int8 ones requantized to ``round(7 q / max|q|)`` in [-7, 7], and the int32 bias is rescaled
    by the ratio of the old to the new scale (its scale stays input scale x filter scale).
    FULLY_CONNECTED filters, which TFLM runs int4 per tensor only, get one scale, the largest
    channel's ``s * max|q| / 7``. Activations, their scales and every other op are the int8
    export's.
    """
    from tflite_converter.int4 import int4_filters_tflite

    flatbuffer = int4_filters_tflite(export_int8_tflite(model, representative_data))
    if path is not None:
        _atomic_write(Path(path), flatbuffer)
    return flatbuffer


def int4_reference_model_path(name: str, cache_dir: str | os.PathLike[str] | None = None,
                              seed: int = 0) -> Path:
    """``<cache>/int4/<name>.tflite``: the cached int8 reference model
    (:func:`reference_model_path`) with its filters rewritten as int4 (as
    :func:`export_int4_tflite` does), remade whenever the int8 file is newer. A folder of its
    own, so the benchmarks that walk ``<cache>/*.tflite`` see the int8 files only."""
    from tflite_converter.int4 import int4_filters_tflite

    src = reference_model_path(name, cache_dir, seed)
    path = src.parent / "int4" / src.name
    if not path.is_file() or path.stat().st_mtime < src.stat().st_mtime:
        _atomic_write(path, int4_filters_tflite(src.read_bytes()))
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file + rename, so parallel test workers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- random weights
def calibration_data(spec: NetworkSpec, seed: int = 0,
                     num_samples: int = DEFAULT_CALIBRATION_SAMPLES) -> np.ndarray:
    """Seeded random images in [-1, 1], shape (num_samples, R, R, C), float32."""
    rng = np.random.default_rng([seed, 1])
    shape = (num_samples, spec.resolution, spec.resolution, spec.in_channels)
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


def randomize_weights(model: keras.Model, data: np.ndarray, seed: int = 0) -> None:
    """Give ``model`` seeded random weights with non-degenerate activations on ``data``.

    Convolution / dense weights: He-normal from NumPy (not TF's RNG, so the result depends
    on the seed only). BatchNorm: random scale in [0.5, 1.5] and offset in [-0.5, 1.0], then
    moving statistics set to the batch statistics of ``data`` (see the module docstring).
    """
    rng = np.random.default_rng([seed, 2])
    batch_norms = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kernel = layer.depthwise_kernel
            fan_in = int(np.prod(kernel.shape[:2]))
            kernel.assign(rng.normal(0, np.sqrt(2.0 / fan_in), kernel.shape).astype(np.float32))
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            kernel = layer.kernel
            fan_in = int(np.prod(kernel.shape[:-1]))
            kernel.assign(rng.normal(0, np.sqrt(2.0 / fan_in), kernel.shape).astype(np.float32))
            if layer.use_bias:
                layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape).astype(np.float32))
        elif isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape
            layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype(np.float32))
            layer.beta.assign(rng.uniform(-0.5, 1.0, channels).astype(np.float32))
            batch_norms.append(layer)
    # One forward pass in training mode with momentum 0 sets every BN's moving statistics to
    # the statistics of its own input batch; downstream BNs see inputs normalised the same way
    # as at inference, so the whole stack is consistent after one pass.
    saved = [bn.momentum for bn in batch_norms]
    try:
        for bn in batch_norms:
            bn.momentum = 0.0
        model(tf.constant(data), training=True)
    finally:
        for bn, momentum in zip(batch_norms, saved):
            bn.momentum = momentum


def build_reference_model(name: str, seed: int = 0,
                          configs_dir: str | os.PathLike[str] | None = None
                          ) -> tuple[keras.Model, np.ndarray]:
    """A published network with random weights, and its calibration data."""
    spec = published_spec(name, configs_dir)
    keras.backend.clear_session()
    model = build_keras_model(spec, name=published_network(name).name)
    data = calibration_data(spec, seed)
    randomize_weights(model, data, seed)
    return model, data


def export_reference_model(name: str, path: str | os.PathLike[str], seed: int = 0,
                           configs_dir: str | os.PathLike[str] | None = None) -> bytes:
    model, data = build_reference_model(name, seed, configs_dir)
    return export_int8_tflite(model, data, path)


def export_mcunet_reference_models(out_dir: str | os.PathLike[str],
                                   names: Sequence[str] = DEFAULT_REFERENCE_MODELS,
                                   seed: int = 0,
                                   configs_dir: str | os.PathLike[str] | None = None
                                   ) -> dict[str, Path]:
    """Export each named published network to ``out_dir/<name>.tflite``; name -> path."""
    out = Path(out_dir)
    paths = {}
    for name in names:
        canonical = published_network(name).name
        path = out / f"{canonical}.tflite"
        export_reference_model(canonical, path, seed, configs_dir)
        paths[canonical] = path
    return paths


# --------------------------------------------------------------------------- cache
def default_model_cache() -> Path:
    """``$MCUNET_MODEL_CACHE`` or ``<repo>/build/models``."""
    env = os.environ.get(MODEL_CACHE_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1] / "build" / "models"


def _cache_stamp(name: str, seed: int, configs_dir: str | os.PathLike[str] | None) -> dict:
    spec = published_spec(name, configs_dir)
    return {
        "name": name,
        "seed": seed,
        "version": REFERENCE_EXPORT_VERSION,
        "tensorflow": tf.__version__,
        "spec_sha256": hashlib.sha256(spec.to_json().encode()).hexdigest(),
    }


def reference_model_path(name: str, cache_dir: str | os.PathLike[str] | None = None,
                         seed: int = 0,
                         configs_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of ``<cache>/<name>.tflite`` (seed 0) -- exported on first use, then reused.

    A sidecar ``<name>.json`` records what the file was made from (architecture, seed, TF
    version, export version); any mismatch re-exports. Other seeds get ``<name>-s<seed>``.
    """
    canonical = published_network(name).name
    cache = Path(cache_dir) if cache_dir is not None else default_model_cache()
    stem = canonical if seed == 0 else f"{canonical}-s{seed}"
    path = cache / f"{stem}.tflite"
    stamp_path = cache / f"{stem}.json"
    stamp = _cache_stamp(canonical, seed, configs_dir)
    if path.is_file() and stamp_path.is_file():
        try:
            if json.loads(stamp_path.read_text()) == stamp:
                return path
        except json.JSONDecodeError:
            pass  # a damaged stamp: export again
    export_reference_model(canonical, path, seed, configs_dir)
    _atomic_write(stamp_path, json.dumps(stamp, indent=2).encode())
    return path
