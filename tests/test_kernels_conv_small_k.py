"""The register-resident pointwise CONV_2D kernel (conv2d.c mcu_conv2d_1x1_reg_s8, 8 or 16
input channels, stride 1, FAST_FULL requantisation): the record layout, when the emitter
picks it, and its outputs against TFLM on the host (portable C) and on the Cortex-M7
(portable and DSP, the assembly loops)."""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu
from engine.host import HostModel, have_compiler
from engine.tflm import TflmModel
from tests.test_kernels_conv import ConvCase, _conv_options, _conv_tensors, _inputs, _rng
from tests.tflite_builder import build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.codegen.ops._conv_common import (ConvRequantMode,
                                                       conv1x1_register_records,
                                                       conv_requant_values,
                                                       pack_wide_weight_rows)

pytestmark = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")

KERNEL = "mcu_conv2d_1x1_reg_s8("


def _lanes(word: int) -> tuple[int, int]:
    u = int(np.int64(word) & 0xFFFFFFFF)
    lo, hi = u & 0xFFFF, u >> 16
    return (lo - 0x10000 if lo & 0x8000 else lo), (hi - 0x10000 if hi & 0x8000 else hi)


@pytest.mark.parametrize("k", [8, 16])
def test_register_records_layout(k):
    rng = np.random.default_rng(k)
    rows = rng.integers(-128, 128, (3, k)).astype(np.int8)
    wide = rows.astype(np.int64)
    table = np.array([[100, 1 << 30, 77, 5], [-7, 12345, -9, 1], [0, 0, 3, 1]], dtype=np.int32)
    rec = conv1x1_register_records(rows, table)
    assert rec.shape == (3, 1 + k // 2 + 3) and rec.dtype == np.int32
    for c in range(3):
        assert rec[c, 0] == 2 * table[c, 0]
        assert list(rec[c, 1 + k // 2:]) == list(table[c, 1:])
        for j in range(k // 2):
            # word j of group g = j // 2 pairs taps 4g + b and 4g + 2 + b, b = j % 2, doubled
            g, b = divmod(j, 2)
            assert _lanes(rec[c, 1 + j]) == (2 * wide[c, 4 * g + b], 2 * wide[c, 4 * g + 2 + b])


def test_register_records_refuse_other_depths():
    with pytest.raises(ValueError, match="K in"):
        conv1x1_register_records(np.zeros((2, 12), np.int8), np.zeros((2, 4), np.int32))


def test_requant_values_mode():
    w = np.ones((2, 8), dtype=np.int8)
    table, mode = conv_requant_values(np.array([10, -10]), w, np.array([1 << 30, 1 << 30]),
                                      np.array([-3, -4]), 5, -128, 127)
    assert mode is ConvRequantMode.FAST_FULL and table.shape == (2, 4)
    _, mode = conv_requant_values(np.array([10, -10]), w, np.array([1 << 30, 1 << 30]),
                                  np.array([-3, -4]), 5, 0, 127)
    assert mode is ConvRequantMode.FAST


def _model(case: ConvCase):
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, False, rng)
    return build_single_op_model("CONV_2D", [x, w, b], [y], _conv_options(case, False)), rng


CASES = [
    ConvCase("reg8_48", (1, 5, 7, 8), 48, kernel=(1, 1)),
    ConvCase("reg8_1_channel", (1, 3, 3, 8), 1, kernel=(1, 1), zp_in=-128),
    ConvCase("reg16_odd_out", (1, 4, 3, 16), 7, kernel=(1, 1), zp_in=11),
    ConvCase("reg16_batch2", (2, 2, 3, 16), 24, kernel=(1, 1), bias=False),
    ConvCase("reg8_per_tensor", (1, 6, 1, 8), 5, kernel=(1, 1), per_channel=False, zp_out=-100),
]
# where the register kernel must not be chosen: clamp of a fused RELU (FAST mode), stride 2,
# another depth
OTHER = [
    ConvCase("relu_is_fast_mode", (1, 3, 3, 8), 6, kernel=(1, 1), activation="RELU"),
    ConvCase("stride2", (1, 5, 5, 16), 6, kernel=(1, 1), stride=(2, 2)),
    ConvCase("depth12", (1, 3, 3, 12), 6, kernel=(1, 1)),
]


@pytest.mark.parametrize("case", CASES + OTHER, ids=lambda c: c.name)
def test_pointwise_matches_tflm_on_host(case: ConvCase, tmp_path):
    model, rng = _model(case)
    convert_model(model, tmp_path / "m", name="m")
    src = (tmp_path / "m" / "m.c").read_text()
    assert (KERNEL in src) == (case in CASES)
    ours, ref = HostModel(str(tmp_path / "m"), "m"), TflmModel(model, arena_size=1 << 20)
    for sample in _inputs(rng, case.in_shape):
        assert np.array_equal(ours.run(sample)[0], ref.run(sample)[0])


@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi / qemu not installed")
@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[3]], ids=lambda c: c.name)
def test_pointwise_on_cortex_m7(case: ConvCase, tmp_path):
    model, rng = _model(case)
    convert_model(model, tmp_path / "m", name="m")
    assert KERNEL in (tmp_path / "m" / "m.c").read_text()
    samples = _inputs(rng, case.in_shape, 2)
    want = [TflmModel(model, arena_size=1 << 20).run(s)[0] for s in samples]
    for dsp in (False, True):
        got = qemu.run_on_qemu(tmp_path / "m", "m", samples, dsp=dsp).outputs
        assert all(np.array_equal(g[0], e) for g, e in zip(got, want)), f"dsp={dsp}"


# kxk layers on images so small that the plan grants one pixel's columns only: the widened
# one-pixel kernel; K = 225 (57 groups, odd: the unpaired group) and 6 channels (a block of 4
# and 2 leftover rows), and K = 216 (even) with 5 channels
PX1_CASES = [
    ConvCase("px1_odd_groups", (1, 4, 4, 25), 6, zp_in=7),
    ConvCase("px1_relu", (1, 4, 4, 24), 5, activation="RELU"),
]


@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi / qemu not installed")
@pytest.mark.parametrize("case", PX1_CASES, ids=lambda c: c.name)
def test_one_pixel_wide_kernel(case: ConvCase, tmp_path):
    model, rng = _model(case)
    convert_model(model, tmp_path / "m", name="m")
    assert "mcu_conv2d_px1_s8(" in (tmp_path / "m" / "m.c").read_text()
    samples = _inputs(rng, case.in_shape, 2)
    ref = TflmModel(model, arena_size=1 << 20)
    want = [ref.run(s)[0] for s in samples]
    host = HostModel(str(tmp_path / "m"), "m")
    assert all(np.array_equal(host.run(s)[0], e) for s, e in zip(samples, want))
    for dsp in (False, True):
        got = qemu.run_on_qemu(tmp_path / "m", "m", samples, dsp=dsp).outputs
        assert all(np.array_equal(g[0], e) for g, e in zip(got, want)), f"dsp={dsp}"


def test_pack_wide_weight_rows_layout():
    rows = np.arange(5 * 6, dtype=np.int8).reshape(5, 6)  # K = 6 -> K4 = 8, blocks of 4 + 1
    wide = pack_wide_weight_rows(rows)
    assert wide.dtype == np.int16 and wide.size == 5 * 8
    # group 0 of rows 0..3 in tap order (0, 2, 1, 3), then group 1 (taps 4, 5 and padding)
    assert list(wide[:8]) == [0, 2, 1, 3, 6, 8, 7, 9]
    assert list(wide[16:20]) == [4, 0, 5, 0]
    assert list(wide[32:]) == [24, 26, 25, 27, 28, 0, 29, 0]
