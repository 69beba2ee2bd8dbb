"""FULLY_CONNECTED's whole-block DSP path of mcu_fc_offset_s8 (engine/kernels/fully_connected.c
mcu_fco_blocks4_sat: depth a multiple of 4, fast requantisation into [-128, 127], four groups
per loop iteration after G % 4 leading groups) and the word-at-a-time input term, against
TFLite Micro on the emulated Cortex-M7 (DSP and portable builds) and on the host."""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu
from engine.host import have_compiler, HostModel
from engine.tflm import TflmModel
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.codegen.generate import convert_model


def _model(rng: np.random.Generator, units: int, depth: int, batches: int, zp_in: int,
           activation: str) -> bytes:
    w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
    bias = rng.integers(-3000, 3000, units).astype(np.int32)
    return build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec((batches, depth), scale=0.05, zero_point=zp_in),
         TensorSpec((units, depth), scale=0.01, zero_point=0, data=w),
         TensorSpec((units,), "int32", scale=0.0005, zero_point=0, data=bias)],
        [TensorSpec((batches, units), scale=0.05 * 0.01 * 2 * np.sqrt(depth), zero_point=-2)],
        {"activation": activation, "keep_num_dims": False})


def _samples(rng: np.random.Generator, shape: tuple[int, int]) -> list[list[np.ndarray]]:
    out = [[rng.integers(-128, 128, shape).astype(np.int8)] for _ in range(2)]
    alt = np.resize(np.array([-128, 127], np.int8), shape)  # P and Q lanes at their limits
    for x in (np.full(shape, 127, np.int8), np.full(shape, -128, np.int8), alt):
        out.append([x.astype(np.int8)])
    return out


# units, depth, batches, zp_in, activation. Depth 4 * G with G % 4 = 1, 2, 3, 0 and G < 4
# (no loop iteration); units with and without leftover rows (the generic block after the
# whole-block path); "NONE" takes the fused range, "RELU" (range [-2, 127]) the generic path.
CASES = [
    (8, 4, 1, -128, "NONE"),
    (9, 20, 2, 5, "NONE"),
    (4, 24, 1, 0, "NONE"),
    (6, 44, 3, -7, "NONE"),
    (12, 64, 1, 127, "NONE"),
    (7, 32, 2, 1, "RELU"),
]


@pytest.mark.skipif(not have_compiler(), reason="no host C compiler")
@pytest.mark.parametrize("units,depth,batches,zp_in,activation", CASES)
def test_fc_blocks_on_host(units, depth, batches, zp_in, activation, tmp_path):
    rng = np.random.default_rng(units * 100 + depth)
    model = _model(rng, units, depth, batches, zp_in, activation)
    convert_model(model, tmp_path / "m", name="m")
    assert "mcu_fc_offset_s8(" in (tmp_path / "m" / "m.c").read_text()
    ours, ref = HostModel(str(tmp_path / "m"), "m"), TflmModel(model)
    for sample in _samples(rng, (batches, depth)):
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])


@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi / qemu not installed")
@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[4], CASES[5]])
def test_fc_blocks_on_cortex_m7(case, tmp_path):
    units, depth, batches, zp_in, activation = case
    rng = np.random.default_rng(units * 100 + depth)
    model = _model(rng, units, depth, batches, zp_in, activation)
    convert_model(model, tmp_path / "m", name="m")
    samples = _samples(rng, (batches, depth))
    want = [TflmModel(model).run(s)[0] for s in samples]
    for dsp in (True, False):
        got = qemu.run_on_qemu(tmp_path / "m", "m", samples, dsp=dsp).outputs
        assert all(np.array_equal(g[0], e) for g, e in zip(got, want)), f"dsp={dsp}"
