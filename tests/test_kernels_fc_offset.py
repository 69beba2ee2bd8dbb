"""FULLY_CONNECTED's offset-byte kernel (engine/kernels/fully_connected.c mcu_fc_offset_s8)
against TFLite Micro: generation-time layout and start values, every row-block / depth-tail
edge, the lane extremes (inputs of -128 and 127 next to each other), and the fallback to the
plain kernel when the accumulator bound does not hold."""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu
from engine.host import have_compiler, HostModel
from engine.tflm import TflmModel
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.codegen.ops.fully_connected import (
    OFFSET_ACC_LIMIT,
    offset_kernel_exact,
    offset_start_values,
    pack_offset_weights,
)

pytestmark = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")


def test_pack_offset_weights_layout():
    w = np.arange(-6, 6, dtype=np.int8).reshape(2, 6)  # depth 6: padded to 8
    got = pack_offset_weights(w).view(np.uint8).reshape(-1, 4)
    # block of 2 rows, [group][row][4]; group (w0..w3) -> [w1+128, w0, w3+128, w2]
    want = [[-5 + 128, -6 & 0xFF, -3 + 128, -4 & 0xFF],
            [1 + 128, 0, 3 + 128, 2],
            [-1 + 128, -2 & 0xFF, 128, 0],  # padded weights are zero
            [5 + 128, 4, 128, 0]]
    assert got.tolist() == want


def test_start_values_and_bound():
    w = np.array([[1, -2, 3, 4], [100, 0, -100, 7]], dtype=np.int8)
    bias = np.array([10, -20], dtype=np.int32)
    assert offset_start_values(bias, w).tolist() == [256 * (10 + 127 * 4), 256 * (-20 + 0)]
    assert offset_kernel_exact(bias, w)
    big = np.full((1, 600), 127, dtype=np.int8)  # 128 * 127 * 600 > 2^23
    assert 128 * 127 * 600 >= OFFSET_ACC_LIMIT
    assert not offset_kernel_exact(np.zeros(1, np.int32), big)


def _samples(rng: np.random.Generator, shape) -> list[list[np.ndarray]]:
    out = [[rng.integers(-128, 128, shape).astype(np.int8)] for _ in range(3)]
    alt = np.resize(np.array([-128, 127], np.int8), shape)  # P and Q lanes at their limits
    for x in (np.full(shape, 127, np.int8), np.full(shape, -128, np.int8), alt, -1 - alt):
        out.append([x.astype(np.int8)])
    return out


def _fc_model(rng, units, depth, batches, zp_in, activation, extreme_weights=False):
    w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
    if extreme_weights:  # every |w| = 127: 128 * sum|w| reaches the bound sooner
        w = np.where(w < 0, -127, 127).astype(np.int8)
    bias = rng.integers(-3000, 3000, units).astype(np.int32)
    return build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec((batches, depth), scale=0.05, zero_point=zp_in),
         TensorSpec((units, depth), scale=0.01, zero_point=0, data=w),
         TensorSpec((units,), "int32", scale=0.0005, zero_point=0, data=bias)],
        [TensorSpec((batches, units), scale=0.05 * 0.01 * 2 * np.sqrt(depth), zero_point=-2)],
        {"activation": activation, "keep_num_dims": False})


CASES = [  # units, depth, batches, zp_in, activation
    (8, 16, 1, -128, "NONE"),
    (7, 13, 2, 3, "NONE"),     # leftover rows, depth tail
    (4, 3, 1, 127, "RELU"),    # depth below one group
    (9, 40, 3, 0, "RELU6"),
    (13, 130, 1, -5, "NONE"),  # odd group count in the asm loop
]


@pytest.mark.parametrize("units,depth,batches,zp_in,activation", CASES)
def test_offset_kernel_matches_tflm(units, depth, batches, zp_in, activation, tmp_path):
    rng = np.random.default_rng(units * 1000 + depth)
    model = _fc_model(rng, units, depth, batches, zp_in, activation)
    convert_model(model, tmp_path / "m", name="m")
    assert "mcu_fc_offset_s8(" in (tmp_path / "m" / "m.c").read_text()
    ours, ref = HostModel(str(tmp_path / "m"), "m"), TflmModel(model)
    for sample in _samples(rng, (batches, depth)):
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])


def test_plain_kernel_beyond_the_bound(tmp_path):
    rng = np.random.default_rng(5)
    model = _fc_model(rng, 5, 700, 1, 0, "NONE", extreme_weights=True)
    assert 128 * 127 * 700 >= OFFSET_ACC_LIMIT
    convert_model(model, tmp_path / "m", name="m")
    src = (tmp_path / "m" / "m.c").read_text()
    ours, ref = HostModel(str(tmp_path / "m"), "m"), TflmModel(model)
    for sample in _samples(rng, (1, 700)):
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])
    assert "mcu_fully_connected_s8(" in src


@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi / qemu not installed")
@pytest.mark.parametrize("units,depth,batches,zp_in,activation", [CASES[1], CASES[4]])
def test_offset_kernel_on_cortex_m7(units, depth, batches, zp_in, activation, tmp_path):
    rng = np.random.default_rng(units * 1000 + depth)
    model = _fc_model(rng, units, depth, batches, zp_in, activation)
    convert_model(model, tmp_path / "m", name="m")
    samples = _samples(rng, (batches, depth))
    want = [TflmModel(model).run(s)[0] for s in samples]
    for dsp in (False, True):
        got = qemu.run_on_qemu(tmp_path / "m", "m", samples, dsp=dsp).outputs
        assert all(np.array_equal(g[0], e) for g, e in zip(got, want)), f"dsp={dsp}"
