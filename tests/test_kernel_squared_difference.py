"""SQUARED_DIFFERENCE int8 (engine/kernels/squared_difference.c) against TFLite Micro: the
generation-time parameters and numpy reference (engine/quant_ops.py) on every int8 input pair
for several quantizations, then the generated C with broadcasting on the host and the emulated
Cortex-M7; the refusal of a broadcast TFLM cannot run."""
from __future__ import annotations

import numpy as np
import pytest

from engine import quant_ops
from engine.tflm import TflmModel
from tests import kernel_harness as kh
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.errors import ConversionError
from tflite_converter.reader import read_tflite

OP = "SQUARED_DIFFERENCE"
_GRID_X, _GRID_Y = (g.astype(np.int8) for g in np.meshgrid(np.arange(-128, 128),
                                                            np.arange(-128, 128)))
_SAME = (1, 256, 256, 1)
# (s1, s2, s_out): round decimals (ties), equal input scales, a tiny output scale (saturation)
QUANTS = [(0.05, 0.02, 0.06), (0.05, 0.05, 0.0001), (0.1, 0.003, 0.4), (0.007, 0.2, 2.5)]


def _model(shapes, seed: str) -> bytes:
    rng = kh.seeded_rng(seed)
    a, b = (kh.random_qspec(rng, s) for s in shapes)
    o = kh.random_qspec(rng, np.broadcast_shapes(*shapes))
    return build_single_op_model(OP, [a, b], [o])


@pytest.mark.parametrize("quant", QUANTS, ids=str)
def test_reference_matches_tflm_on_every_pair(quant):
    s1, s2, so = quant
    z1, z2, zo = 3, -70, -128 + len(str(quant))
    model = build_single_op_model(OP, [TensorSpec(_SAME, scale=s1, zero_point=z1),
                                       TensorSpec(_SAME, scale=s2, zero_point=z2)],
                                  [TensorSpec(_SAME, scale=so, zero_point=zo)])
    want = TflmModel(model, arena_size=1 << 20).run([_GRID_X.reshape(_SAME),
                                                     _GRID_Y.reshape(_SAME)])[0]
    p = quant_ops.squared_difference_params(s1, z1, s2, z2, so, zo)
    got = quant_ops.squared_difference_reference(p, _GRID_X, _GRID_Y)
    assert np.array_equal(want.reshape(256, 256), got)


@kh.needs_host_compiler
@pytest.mark.parametrize("shapes", kh.BINARY_BROADCAST_SHAPES, ids=kh.binary_shapes_id)
def test_generated_matches_tflm(shapes, tmp_path):
    model = _model(shapes, f"{OP} {shapes}")
    kh.assert_host_matches_tflm_on_random_inputs(model, tmp_path)
    assert "mcu_squared_difference_s8(" in kh.generated_source(tmp_path / "gen")


@kh.needs_cortex_m7
def test_on_cortex_m7(tmp_path):
    shapes = kh.BINARY_BROADCAST_SHAPES[1]
    model = _model(shapes, OP)
    rng = kh.seeded_rng("m7")
    samples = [[kh.random_int8_samples(rng, s, n=1)[0][0] for s in shapes] for _ in range(2)]
    kh.assert_cortex_m7_matches(kh.convert(model, tmp_path), "m", samples,
                                kh.tflm_outputs(model, samples))


def test_refuses_broadcast_beyond_4d():
    model = _model(((1, 2, 3, 4, 5), (5,)), "5d")
    with pytest.raises(ConversionError, match=f"op 0 {OP}.*beyond 4 dimensions"):
        read_tflite(model)
