"""The packed-weight CONV_2D / FULLY_CONNECTED kernels: layout, the choice of the fast
requantisation, and the block edges (pixel counts not a multiple of the block, odd channel
counts, K not a multiple of 4, the one-pixel kxk variant, the generic requantisation) against
TFLM on the host, and on the Cortex-M7 (portable and DSP) for a few of them."""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu
from engine.host import HostModel, have_compiler
from engine.tflm import TflmModel
from tests.test_kernels_conv import (ConvCase, _conv_options, _conv_tensors, _inputs, _rng)
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.codegen.ops._conv_common import pack_weight_rows, requant_table

pytestmark = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")


def test_pack_weight_rows_layout():
    rows = np.arange(5 * 6, dtype=np.int8).reshape(5, 6)  # 5 channels, K = 6 -> K4 = 8
    packed = pack_weight_rows(rows, 2)
    assert packed.size == 5 * 8
    # block of rows 0, 1: group 0 of row 0, group 0 of row 1, group 1 of row 0 (zero padded)...
    assert list(packed[:8]) == [0, 1, 2, 3, 6, 7, 8, 9]
    assert list(packed[8:16]) == [4, 5, 0, 0, 10, 11, 0, 0]
    # the leftover row 4 alone: its two groups
    assert list(packed[32:]) == [24, 25, 26, 27, 28, 29, 0, 0]


class _Ctx:
    def __init__(self):
        self.arrays = {}

    def const_array(self, hint, values, c_type=None):
        self.arrays[hint] = np.asarray(values)
        return hint


class _Op:
    index = 7


def test_requant_table_fast_only_when_exact():
    w = np.ones((2, 16), dtype=np.int8)
    bias = np.array([10, -10], dtype=np.int64)
    mult = np.array([1 << 30, 1 << 30])
    ctx = _Ctx()
    name, fast = requant_table(ctx, _Op(), bias, w, mult, np.array([-3, -4]), 5)
    assert fast == 1 and list(ctx.arrays[name][:, 2]) == [3, 4]
    # a left shift (or no shift) needs the generic arithmetic; the table keeps TFLite's shift
    name, fast = requant_table(ctx, _Op(), bias, w, mult, np.array([-3, 1]), 5)
    assert fast == 0 and list(ctx.arrays[name][:, 2]) == [-3, 1]
    # accumulators that could reach 2^30 too
    name, fast = requant_table(ctx, _Op(), np.array([1 << 30, 0]), w, mult, np.array([-3, -4]), 5)
    assert fast == 0


def _check_conv(case: ConvCase, tmp_path) -> str:
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, False, rng)
    model = build_single_op_model("CONV_2D", [x, w, b], [y], _conv_options(case, False))
    convert_model(model, tmp_path / "m", name="m")
    ours, ref = HostModel(str(tmp_path / "m"), "m"), TflmModel(model, arena_size=1 << 20)
    for sample in _inputs(rng, case.in_shape):
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])
    return (tmp_path / "m" / "m.c").read_text()


CASES = [
    ConvCase("pw_4_pixels_overlap", (1, 2, 2, 6), 7, kernel=(1, 1)),  # block 3 + overlap
    ConvCase("pw_2_pixels", (1, 1, 2, 5), 3, kernel=(1, 1), zp_in=-128, activation="RELU"),
    ConvCase("pw_k_not_4", (1, 5, 5, 11), 9, kernel=(1, 1), stride=(2, 2)),
    ConvCase("pw_generic_rq", (1, 4, 5, 8), 6, kernel=(1, 1), out_scale=1e-4),
    ConvCase("k3_one_pixel_block", (1, 4, 4, 24), 5),  # K = 216 on a 4x4 image
    ConvCase("k3_7_pixels", (1, 3, 7, 3), 4, kernel=(3, 3), stride=(1, 3), padding="VALID"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_conv_block_edges_match_tflm(case: ConvCase, tmp_path):
    src = _check_conv(case, tmp_path)
    if case.name == "pw_generic_rq":
        assert "_rq, 0, " in src  # the generic requantisation was chosen
    if case.name == "k3_one_pixel_block":
        assert "mcu_conv2d_px1_s8(" in src  # one pixel per block


@pytest.mark.parametrize("units,depth", [(5, 13), (6, 8), (7, 3), (4, 1)])
def test_fully_connected_row_blocks_match_tflm(units, depth, tmp_path):
    rng = np.random.default_rng(units * 100 + depth)
    w = rng.integers(-127, 128, (units, depth)).astype(np.int8)
    bias = rng.integers(-3000, 3000, units).astype(np.int32)
    model = build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec((2, depth), scale=0.05, zero_point=3),
         TensorSpec((units, depth), scale=0.01, zero_point=0, data=w),
         TensorSpec((units,), "int32", scale=0.0005, zero_point=0, data=bias)],
        [TensorSpec((2, units), scale=0.05 * 0.01 * 4 * np.sqrt(depth), zero_point=-2)],
        {"activation": "NONE", "keep_num_dims": False})
    convert_model(model, tmp_path / "m", name="m")
    ours, ref = HostModel(str(tmp_path / "m"), "m"), TflmModel(model)
    for sample in _inputs(rng, (2, depth)):
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])


@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi / qemu not installed")
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3], CASES[4]], ids=lambda c: c.name)
def test_conv_block_edges_on_cortex_m7(case: ConvCase, tmp_path):
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, False, rng)
    model = build_single_op_model("CONV_2D", [x, w, b], [y], _conv_options(case, False))
    convert_model(model, tmp_path / "m", name="m")
    samples = _inputs(rng, case.in_shape, 2)
    want = [TflmModel(model, arena_size=1 << 20).run(s)[0] for s in samples]
    for dsp in (False, True):
        got = qemu.run_on_qemu(tmp_path / "m", "m", samples, dsp=dsp).outputs
        assert all(np.array_equal(g[0], e) for g, e in zip(got, want)), f"dsp={dsp}"
