"""Keras builder agrees with the profile; int8 export runs identically in LiteRT and TFLM.

Exported models are cached (``$MCUNET_MODEL_CACHE`` or ``build/models``): the first run
exports three networks (~15 s each), later runs reuse them.
"""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from tflite_micro.python.tflite_micro import runtime as tflm  # noqa: E402

from mcunet_tf.arch import SearchSpace
from mcunet_tf.export import (
    build_reference_model,
    calibration_data,
    export_int8_tflite,
    randomize_weights,
    reference_model_path,
)
from mcunet_tf.keras_builder import build_keras_model, keras_layer_macs, keras_trainable_params
from mcunet_tf.mcunet_configs import published_spec
from mcunet_tf.profile import profile
from mcunet_tf.tf_env import keras

NETWORKS = ["mcunet-in0", "mcunet-in1", "mbv2-w0.35"]
TFLM_ARENA_BYTES = 2 * 1024 * 1024


@pytest.mark.parametrize("name", NETWORKS)
def test_keras_model_matches_profile(name: str) -> None:
    spec = published_spec(name)
    model = build_keras_model(spec)
    prof = profile(spec)
    per_layer = {layer.name: layer.macs for layer in prof.per_layer}
    assert keras_layer_macs(model) == per_layer
    assert sum(per_layer.values()) == prof.macs
    assert keras_trainable_params(model) == prof.params
    assert model.input.shape[1:] == (spec.resolution, spec.resolution, 3)
    assert model.output.shape[-1] == 1000
    names = {layer.name for layer in model.layers}
    assert {"stem", "block0_dw", "block1_expand", "block1_project_bn", "classifier"} <= names


def test_random_arch_config_matches_profile() -> None:
    spec = SearchSpace(width_mult=0.35, resolution=40, num_classes=10).sample(
        np.random.default_rng(11)).to_network()
    model = build_keras_model(spec)
    prof = profile(spec)
    assert sum(keras_layer_macs(model).values()) == prof.macs
    assert keras_trainable_params(model) == prof.params
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert len(adds) == sum(b.residual for b in spec.blocks)


def test_export_is_deterministic_and_int8(tmp_path) -> None:
    spec = SearchSpace(width_mult=0.25, resolution=32, num_classes=10).smallest().to_network()

    def export() -> bytes:
        keras.backend.clear_session()
        model = build_keras_model(spec)
        data = calibration_data(spec, seed=3, num_samples=4)
        randomize_weights(model, data, seed=3)
        return export_int8_tflite(model, lambda: iter(data), tmp_path / "m.tflite")

    first = export()
    assert export() == first
    assert (tmp_path / "m.tflite").read_bytes() == first
    interp = Interpreter(model_content=first)
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    for detail in interp.get_tensor_details():
        if detail["name"].endswith("Conv2D") or "depthwise" in detail["name"].lower():
            assert detail["dtype"] in (np.int8, np.int32)


def _run_both(model: bytes, x: np.ndarray) -> tuple[list[dict], list[np.ndarray]]:
    """Run one input in LiteRT (BUILTIN_REF) and TFLM, keeping every intermediate tensor.

    Returns the op list and, per op, (litert output, tflm output) pairs.
    """
    ref = Interpreter(model_content=model,
                      experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                      experimental_preserve_all_tensors=True)
    ref.allocate_tensors()
    ref.set_tensor(ref.get_input_details()[0]["index"], x)
    ref.invoke()
    micro = tflm.Interpreter.from_bytes(model, arena_size=TFLM_ARENA_BYTES,
                                        intrepreter_config=tflm.InterpreterConfig.kPreserveAllTensors)
    micro.set_input(x, 0)
    micro.invoke()
    ops = ref._get_ops_details()
    pairs = []
    for op in ops:
        (out,) = op["outputs"]
        a = ref.get_tensor(out)
        b = np.asarray(micro.GetTensor(int(out), 0)["tensor_data"]).reshape(a.shape)
        pairs.append((a, b))
    final = ref.get_tensor(ref.get_output_details()[0]["index"])
    np.testing.assert_array_equal(micro.get_output(0), pairs[-1][1])
    np.testing.assert_array_equal(final, pairs[-1][0])
    return ops, pairs


@pytest.mark.parametrize("name", NETWORKS)
def test_reference_model_runs_in_litert_and_tflm(name: str) -> None:
    """Every tensor is bit-identical in both interpreters, except FULLY_CONNECTED outputs.

    Measured with ai-edge-litert 2.3.0 and tflite-micro 0.dev20261023: the classifier's
    requantization rounds differently (LiteRT's reference kernel matches a single rounding
    of acc * multiplier, TFLM the two-step gemmlowp rounding), so a few of its 1000 outputs
    differ by exactly 1. Every other op (conv, depthwise, add, mean) agrees bit for bit.
    """
    model = reference_model_path(name).read_bytes()
    spec = published_spec(name)
    rng = np.random.default_rng(42)
    fc_mismatches = 0
    finals = []
    for _ in range(3):
        x = rng.integers(-128, 128, size=(1, spec.resolution, spec.resolution, 3),
                         dtype=np.int8)
        ops, pairs = _run_both(model, x)
        assert ops[-1]["op_name"] == "FULLY_CONNECTED"
        for op, (a, b) in zip(ops, pairs):
            assert a.dtype == np.int8
            if op["op_name"] == "FULLY_CONNECTED":
                assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
                fc_mismatches += int((a != b).sum())
            else:
                np.testing.assert_array_equal(a, b, err_msg=f"op {op['index']} {op['op_name']}")
        finals.append(pairs[-1][0])
    assert fc_mismatches <= 3 * 1000 // 100, fc_mismatches  # rare ties, not a wrong kernel
    # Not degenerate: outputs spread over the int8 range and differ between inputs.
    assert all(final.shape == (1, 1000) and np.unique(final).size > 20 for final in finals)
    assert not np.array_equal(finals[0], finals[1])


def test_reference_model_cache_is_reused() -> None:
    path = reference_model_path("mcunet-in0")
    mtime = path.stat().st_mtime_ns
    assert reference_model_path("mcunet-in0") == path
    assert path.stat().st_mtime_ns == mtime
    # The reference float model really is the architecture of mcunet-in0.
    model, _ = build_reference_model("mcunet-in0")
    assert keras_trainable_params(model) == profile(published_spec("mcunet-in0")).params
