"""CONV_2D (engine/kernels/conv2d.c, mcu_matmul_s8.h) against TFLite Micro, byte for byte.

Single-op models with random weights, scales and zero points (tests/kernel_harness.py) cover
the emitter's kernel choices: the 1x1 kernels (the matrix core, the register-record kernels at
8, 16, 24 and 32 input channels, strided), the kxk im2col gather (RGB stems, KWS's 10x4 first
layer, dilation), the one-pixel wide kernel, the block edges (pixel counts not a multiple of
the block, odd channel counts, K not a multiple of 4) and the requantisation modes, on the host
(portable C) and on the Cortex-M7 under QEMU (portable and DSP builds). The generation-time
layouts (packed weight rows, the requantisation table, register records) and the SMMLAR
requantisation's identity with TFLite's arithmetic are checked in numpy. A CONV_2D ->
DEPTHWISE_CONV_2D -> FULLY_CONNECTED chain runs on the Cortex-M7 and under the sanitizers.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine import quantization
from engine.host import HostModel
from engine.tflm import TflmModel
from tests.kernel_harness import (
    ConvCase,
    FakeOp,
    RecordingContext,
    assert_cortex_m7_matches,
    assert_host_matches_tflm,
    assert_host_sanitizer_clean,
    conv_model,
    conv_output_hw,
    convert,
    generated_source,
    needs_cortex_m7,
    needs_host_compiler,
    random_int8_samples,
    random_scales,
    seeded_rng,
    smmlar_requantize,
    tflm_outputs,
)
from tests.tflite_builder import ModelBuilder, TensorSpec, build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.codegen.ops._conv_common import (
    CONV_RQ_STRIDE,
    ConvRequantMode,
    conv1x1_register_records,
    conv_requant_table,
    conv_requant_values,
    pack_weight_rows,
    pack_wide_weight_rows,
)

REG_KERNEL = "mcu_conv2d_1x1_reg_s8("
REG_STRIDED_KERNEL = "mcu_conv2d_1x1_reg_strided_s8("
PX1_KERNEL = "mcu_conv2d_px1_s8("
ARENA = 1 << 20


def _assert_cortex_m7_matches_tflm(case: ConvCase, tmp_path, kernel: str = "") -> None:
    """The case's model on the Cortex-M7 (portable and DSP) on two random samples and the
    extremes; `kernel`, if given, must be in the generated source."""
    rng = seeded_rng(case.name)
    model = conv_model(case, False, rng)
    d = convert(model, tmp_path)
    if kernel:
        assert kernel in generated_source(d)
    samples = random_int8_samples(rng, case.in_shape, 2)
    assert_cortex_m7_matches(d, "m", samples, tflm_outputs(model, samples, ARENA))


# ---------------------------------------------------------------------------------------------
# Every padding, stride, dilation, activation and quantization kind

CONV_CASES = [
    ConvCase("pointwise", (1, 6, 5, 16), 24, kernel=(1, 1)),
    ConvCase("pointwise_odd", (1, 3, 3, 7), 5, kernel=(1, 1), zp_in=17, activation="RELU"),
    ConvCase("pointwise_stride2", (1, 7, 7, 9), 6, kernel=(1, 1), stride=(2, 2)),
    ConvCase("pointwise_per_tensor", (1, 4, 4, 12), 8, kernel=(1, 1), per_channel=False),
    ConvCase("first_layer_rgb_s2", (1, 13, 11, 3), 8, stride=(2, 2), activation="RELU6"),
    ConvCase("k3_valid", (1, 8, 9, 5), 7, padding="VALID", zp_in=-128),
    ConvCase("k3_same_asym_s2", (1, 10, 10, 6), 4, stride=(2, 2)),
    ConvCase("k5_dilated", (1, 12, 11, 4), 6, kernel=(5, 5), dilation=(2, 2)),
    ConvCase("k3x1_anisotropic", (1, 9, 6, 10), 3, kernel=(3, 1), stride=(1, 2),
             activation="RELU_N1_TO_1"),
    ConvCase("k3_no_bias", (1, 5, 5, 8), 9, bias=False, zp_in=0),
    ConvCase("one_by_one_input", (1, 1, 1, 13), 11),
    ConvCase("k1_padded_same", (1, 4, 4, 4), 4, kernel=(1, 1), stride=(2, 2)),
    ConvCase("batch2", (2, 5, 4, 4), 6, stride=(2, 1), zp_out=-20),
    ConvCase("saturating", (1, 6, 6, 8), 8, out_scale=1e-4),
]


@needs_host_compiler
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.name)
def test_conv2d_matches_tflm(case: ConvCase, tmp_path):
    """TFLM's bytes, and the 1x1 kernels run exactly the unpadded 1x1 layers."""
    rng = seeded_rng(case.name)
    src = assert_host_matches_tflm(conv_model(case, False, rng), tmp_path, rng, case.in_shape)
    pointwise = case.kernel == (1, 1) and conv_output_hw(case) == (
        (case.in_shape[1] - 1) // case.stride[0] + 1, (case.in_shape[2] - 1) // case.stride[1] + 1)
    assert ("mcu_conv2d_1x1_" in src) == pointwise


def test_grouped_convolution_is_refused_with_op_name(tmp_path):
    from tflite_converter.errors import ConversionError

    rng = seeded_rng("grouped")
    model = build_single_op_model(
        "CONV_2D",
        [TensorSpec((1, 4, 4, 8), scale=0.1, zero_point=0),
         TensorSpec((4, 3, 3, 4), scale=0.01, zero_point=0, data=rng.integers(-9, 9, (4, 3, 3, 4))),
         None],
        [TensorSpec((1, 4, 4, 4), scale=0.1, zero_point=0)], {"padding": "SAME"})
    with pytest.raises(ConversionError) as e:
        convert_model(model, tmp_path / "g", name="g")
    assert "CONV_2D" in str(e.value) and "op 0" in str(e.value)


# ---------------------------------------------------------------------------------------------
# Packed weights and block edges


def test_pack_weight_rows_layout():
    rows = np.arange(5 * 6, dtype=np.int8).reshape(5, 6)  # 5 channels, K = 6 -> K4 = 8
    packed = pack_weight_rows(rows, 2)
    assert packed.size == 5 * 8
    # block of rows 0, 1: group 0 of row 0, group 0 of row 1, group 1 of row 0 (zero padded)...
    assert list(packed[:8]) == [0, 1, 2, 3, 6, 7, 8, 9]
    assert list(packed[8:16]) == [4, 5, 0, 0, 10, 11, 0, 0]
    # the leftover row 4 alone: its two groups
    assert list(packed[32:]) == [24, 25, 26, 27, 28, 29, 0, 0]


def test_pack_wide_weight_rows_layout():
    rows = np.arange(5 * 6, dtype=np.int8).reshape(5, 6)  # K = 6 -> K4 = 8, blocks of 4 + 1
    wide = pack_wide_weight_rows(rows)
    assert wide.dtype == np.int16 and wide.size == 5 * 8
    # group 0 of rows 0..3 in tap order (0, 2, 1, 3), then group 1 (taps 4, 5 and padding)
    assert list(wide[:8]) == [0, 2, 1, 3, 6, 8, 7, 9]
    assert list(wide[16:20]) == [4, 0, 5, 0]
    assert list(wide[32:]) == [24, 26, 25, 27, 28, 0, 29, 0]


BLOCK_EDGE_CASES = [
    ConvCase("pw_4_pixels_overlap", (1, 2, 2, 6), 7, kernel=(1, 1)),  # block 3 + overlap
    ConvCase("pw_2_pixels", (1, 1, 2, 5), 3, kernel=(1, 1), zp_in=-128, activation="RELU"),
    ConvCase("pw_k_not_4", (1, 5, 5, 11), 9, kernel=(1, 1), stride=(2, 2)),
    ConvCase("pw_generic_rq", (1, 4, 5, 8), 6, kernel=(1, 1), out_scale=1e-4),
    ConvCase("k3_one_pixel_block", (1, 4, 4, 24), 5),  # K = 216 on a 4x4 image
    ConvCase("k3_7_pixels", (1, 3, 7, 3), 4, kernel=(3, 3), stride=(1, 3), padding="VALID"),
]


@needs_host_compiler
@pytest.mark.parametrize("case", BLOCK_EDGE_CASES, ids=lambda c: c.name)
def test_conv2d_block_edges_match_tflm(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    src = assert_host_matches_tflm(conv_model(case, False, rng), tmp_path, rng, case.in_shape,
                                   arena_size=ARENA)
    if case.name == "pw_generic_rq":
        assert "_rq, 0, " in src  # the generic requantisation was chosen
    if case.name == "k3_one_pixel_block":
        assert PX1_KERNEL in src  # one pixel per block


@needs_cortex_m7
@pytest.mark.parametrize("case", [BLOCK_EDGE_CASES[0], BLOCK_EDGE_CASES[2], BLOCK_EDGE_CASES[3],
                                  BLOCK_EDGE_CASES[4]], ids=lambda c: c.name)
def test_conv2d_block_edges_on_cortex_m7(case: ConvCase, tmp_path):
    _assert_cortex_m7_matches_tflm(case, tmp_path)


# kxk layers on images so small that the plan grants one pixel's columns only: the widened
# one-pixel kernel; K = 225 (57 groups, odd: the unpaired group) and 6 channels (a block of 4
# and 2 leftover rows), and K = 216 (even) with 5 channels
PX1_CASES = [
    ConvCase("px1_odd_groups", (1, 4, 4, 25), 6, zp_in=7),
    ConvCase("px1_relu", (1, 4, 4, 24), 5, activation="RELU"),
]


@needs_host_compiler
@needs_cortex_m7
@pytest.mark.parametrize("case", PX1_CASES, ids=lambda c: c.name)
def test_one_pixel_wide_kernel_matches_tflm_on_host_and_cortex_m7(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    model = conv_model(case, False, rng)
    d = convert(model, tmp_path)
    assert PX1_KERNEL in generated_source(d)
    samples = random_int8_samples(rng, case.in_shape, 2)
    want = tflm_outputs(model, samples, ARENA)
    host = HostModel(str(d), "m")
    assert all(np.array_equal(host.run(s)[0], e[0]) for s, e in zip(samples, want))
    assert_cortex_m7_matches(d, "m", samples, want)


# The DSP loops take 4 groups of taps per iteration after a prefix of G % 4 groups (G & 1,
# then G & 2): every residue of G = K4 / 4 and G < 4, in the 3-pixel core (mcu_mm_rows3x2_asm)
# and the one-pixel wide core (mcu_mm_wide_rows1x4). The kxk cases also take the direct path
# that widens an in-image window straight from its rows (rows of k_w * C bytes, a multiple of
# 4: mcu_col_put_window), with the gather at the borders; the dilated-rows case steps rows by
# 2 * W * C.
GROUP_RESIDUE_CASES = [
    ConvCase("g9_c4", (1, 10, 11, 4), 16),  # K = 36: G = 9, 1 mod 4
    ConvCase("g18_c8", (1, 9, 10, 8), 16, zp_in=-128, activation="RELU"),  # G = 18, 2 mod 4
    ConvCase("g27_c12", (1, 14, 14, 12), 24),  # G = 27, 3 mod 4
    ConvCase("g36_c16", (1, 16, 12, 16), 24, stride=(2, 1)),  # G = 36, 0 mod 4
    ConvCase("g3_k1x3", (1, 8, 9, 4), 12, kernel=(1, 3)),  # G = 3 < 4
    ConvCase("g9_dilated_rows", (1, 11, 9, 4), 16, dilation=(2, 1)),
]
PX1_RESIDUE_CASES = [
    ConvCase("px1_g63", (1, 4, 4, 28), 5),  # K = 252: G = 63, 3 mod 4
    ConvCase("px1_g72", (1, 4, 4, 32), 6, zp_in=-128),  # G = 72, 0 mod 4
]


@needs_host_compiler
@needs_cortex_m7
@pytest.mark.parametrize("case", GROUP_RESIDUE_CASES + PX1_RESIDUE_CASES, ids=lambda c: c.name)
def test_group_residues_and_direct_windows_match_tflm_on_host_and_cortex_m7(case, tmp_path):
    rng = seeded_rng(case.name)
    model = conv_model(case, False, rng)
    d = convert(model, tmp_path)
    src = generated_source(d)
    assert (PX1_KERNEL in src) == (case in PX1_RESIDUE_CASES)
    samples = random_int8_samples(rng, case.in_shape, 2)
    want = tflm_outputs(model, samples, ARENA)
    host = HostModel(str(d), "m")
    assert all(np.array_equal(host.run(s)[0], e[0]) for s, e in zip(samples, want))
    assert_cortex_m7_matches(d, "m", samples, want)


# ---------------------------------------------------------------------------------------------
# Requantisation: the one-pass SMMLAR form, dead channels, the modes


def test_fast_requantisation_formula_is_tflites():
    rng = np.random.default_rng(0)
    for rs in (1, 2, 5, 12, 20):
        for mult in (1 << 30, (1 << 30) + 1, int(rng.integers(1 << 30, 1 << 31)), 0):
            zp = int(rng.integers(-128, 128))
            rnd = (1 << (rs - 1)) + zp * (1 << rs)
            acc = np.concatenate([rng.integers(-(1 << 29), 1 << 29, 4000),
                                  np.arange(-3000, 3000),
                                  # exact ties of RoundingDivideByPOT when mult = 2^30
                                  (np.arange(-50, 50) * 2 + 1) << max(rs - 1, 0)])
            want = quantization.multiply_by_quantized_multiplier(acc, mult, -rs).astype(np.int64) + zp
            assert np.array_equal(smmlar_requantize(acc, mult, rnd, rs), want), (rs, mult)


def test_requant_table_modes_and_layout():
    w = np.ones((2, 16), dtype=np.int8)
    bias = np.array([10, -10], dtype=np.int64)
    mult = np.array([1 << 30, 1 << 30])
    ctx = RecordingContext()
    rq = conv_requant_table(ctx, FakeOp(3), bias, w, mult, np.array([-3, -4]), 5, -128, 127)
    t = ctx.arrays[rq.table]
    assert rq.mode is ConvRequantMode.FAST_FULL and t.shape == (2, CONV_RQ_STRIDE)
    assert list(t[:, 3]) == [3, 4] and list(t[:, 2]) == [4 + 5 * 8, 8 + 5 * 16]
    rq = conv_requant_table(ctx, FakeOp(3), bias, w, mult, np.array([-3, -4]), 5, -128, 100)
    assert rq.mode is ConvRequantMode.FAST  # a clamp narrower than int8
    # a left shift on a live channel: generic, TFLite's shift kept
    rq = conv_requant_table(ctx, FakeOp(3), bias, w, mult, np.array([-3, 1]), 5, -128, 127)
    assert rq.mode is ConvRequantMode.GENERIC and list(ctx.arrays[rq.table][:, 2]) == [-3, 1]


def test_requant_values_mode():
    w = np.ones((2, 8), dtype=np.int8)
    table, mode = conv_requant_values(np.array([10, -10]), w, np.array([1 << 30, 1 << 30]),
                                      np.array([-3, -4]), 5, -128, 127)
    assert mode is ConvRequantMode.FAST_FULL and table.shape == (2, 4)
    _, mode = conv_requant_values(np.array([10, -10]), w, np.array([1 << 30, 1 << 30]),
                                  np.array([-3, -4]), 5, 0, 127)
    assert mode is ConvRequantMode.FAST


def test_dead_channels_become_constant_entries():
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (4, 24)).astype(np.int8)
    # channel 1: a bias of 2^30 dominates every accumulator; channel 2: multiplier 0 with
    # shift 0 (both seen in mlperf vww_96); channel 3: live but with a huge right shift
    bias = np.array([100, 1 << 30, 5, -7], dtype=np.int64)
    mult = np.array([1 << 30, 1 << 30, 0, 1 << 30])
    shift = np.array([-8, -9, 0, -31])
    ctx = RecordingContext()
    rq = conv_requant_table(ctx, FakeOp(3), bias, w, mult, shift, -128, -128, 127)
    t = ctx.arrays[rq.table].astype(np.int64)
    assert rq.mode is ConvRequantMode.FAST_FULL
    assert list(t[1, :2]) == [0, 0] and list(t[2, :2]) == [0, 0]
    # every channel, over accumulators across its whole reachable range, gives TFLite's byte
    acc = rng.integers(-128, 128, (3000, 24)) @ w.astype(np.int64).T  # (3000, 4)
    for c in range(4):
        a = acc[:, c] + bias[c]
        want = quantization.requantize(a, mult[c], shift[c], -128)
        model_acc = acc[:, c] + t[c, 0]
        got = np.clip(smmlar_requantize(model_acc, int(t[c, 1]), int(t[c, 2]), int(t[c, 3])),
                      -128, 127)
        assert np.array_equal(got.astype(np.int8), want), c


# the kxk gather's in-image receptive-field copy and the requantisation modes
GATHER_CASES = [
    # RGB stems: 3x3x3 stride 2, SAME (pads on the far side only) and explicit both-side pads
    ConvCase("rgb_stem_same", (1, 12, 10, 3), 8, stride=(2, 2), zp_in=-128, zp_out=-128,
             activation="RELU"),
    ConvCase("rgb_stem_odd", (1, 9, 11, 3), 5, stride=(2, 2), activation="RELU6"),
    # KWS-like first layer: 10x4 kernel over a 1-channel spectrogram
    ConvCase("kws_10x4", (1, 14, 6, 1), 6, kernel=(10, 4), stride=(2, 2), zp_in=83),
    # cifar10-like 5x5 over 32 channels (rows of 160 bytes) and a dilated kernel
    ConvCase("k5_c32", (1, 7, 7, 32), 4, kernel=(5, 5), stride=(2, 2)),
    ConvCase("k3_dilated", (1, 9, 9, 5), 3, dilation=(2, 2)),
    ConvCase("pw_k8_relu6", (1, 5, 7, 8), 16, kernel=(1, 1), activation="RELU6"),
]


@needs_host_compiler
@pytest.mark.parametrize("case", GATHER_CASES, ids=lambda c: c.name)
def test_kxk_gather_and_requant_modes_match_tflm_on_host(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    src = assert_host_matches_tflm(conv_model(case, False, rng), tmp_path, rng, case.in_shape,
                                   arena_size=ARENA)
    if case.activation == "RELU6":
        assert f"_rq, {int(ConvRequantMode.FAST)}, " in src
    elif case.activation == "RELU" and case.zp_out == -128:
        assert f"_rq, {int(ConvRequantMode.FAST_FULL)}, " in src


@needs_cortex_m7
@pytest.mark.parametrize("case", [GATHER_CASES[0], GATHER_CASES[2], GATHER_CASES[5]],
                         ids=lambda c: c.name)
def test_kxk_gather_and_requant_modes_on_cortex_m7(case: ConvCase, tmp_path):
    _assert_cortex_m7_matches_tflm(case, tmp_path)


# ---------------------------------------------------------------------------------------------
# The register-record pointwise kernels (mcu_conv2d_1x1_reg_s8, _reg_strided_s8)


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


def test_register_records_k24_layout():
    rng = np.random.default_rng(24)
    rows = rng.integers(-128, 128, (2, 24)).astype(np.int8)
    table = np.array([[5, 1 << 30, 7, 3], [-9, 99, -1, 1]], dtype=np.int32)
    rec = conv1x1_register_records(rows, table)
    assert rec.shape == (2, 16)
    u = rec[:, 1:13].astype(np.int64) & 0xFFFFFFFF
    lo = ((u & 0xFFFF) ^ 0x8000) - 0x8000
    hi = ((u >> 16) ^ 0x8000) - 0x8000
    for j in range(12):
        g, b = divmod(j, 2)
        assert list(lo[:, j]) == list(2 * rows[:, 4 * g + b].astype(np.int64))
        assert list(hi[:, j]) == list(2 * rows[:, 4 * g + 2 + b].astype(np.int64))
    assert list(rec[:, 0]) == [10, -18] and list(rec[1, 13:]) == [99, -1, 1]


def test_register_records_refuse_other_depths():
    with pytest.raises(ValueError, match="K in"):
        conv1x1_register_records(np.zeros((2, 12), np.int8), np.zeros((2, 4), np.int32))


# 8 or 16 input channels, stride 1, FAST_FULL requantisation
REG_CASES = [
    ConvCase("reg8_48", (1, 5, 7, 8), 48, kernel=(1, 1)),
    ConvCase("reg8_1_channel", (1, 3, 3, 8), 1, kernel=(1, 1), zp_in=-128),
    ConvCase("reg16_odd_out", (1, 4, 3, 16), 7, kernel=(1, 1), zp_in=11),
    ConvCase("reg16_batch2", (2, 2, 3, 16), 24, kernel=(1, 1), bias=False),
    ConvCase("reg8_per_tensor", (1, 6, 1, 8), 5, kernel=(1, 1), per_channel=False, zp_out=-100),
]
# where the register kernel must not be chosen: clamp of a fused RELU (FAST mode), stride 2,
# another depth
REG_OTHER = [
    ConvCase("relu_is_fast_mode", (1, 3, 3, 8), 6, kernel=(1, 1), activation="RELU"),
    ConvCase("stride2", (1, 5, 5, 16), 6, kernel=(1, 1), stride=(2, 2)),
    ConvCase("depth12", (1, 3, 3, 12), 6, kernel=(1, 1)),
]


@needs_host_compiler
@pytest.mark.parametrize("case", REG_CASES + REG_OTHER, ids=lambda c: c.name)
def test_register_pointwise_8_16_channels_matches_tflm_on_host(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    src = assert_host_matches_tflm(conv_model(case, False, rng), tmp_path, rng, case.in_shape,
                                   arena_size=ARENA)
    assert (REG_KERNEL in src) == (case in REG_CASES)


@needs_cortex_m7
@pytest.mark.parametrize("case", [REG_CASES[0], REG_CASES[2], REG_CASES[3]], ids=lambda c: c.name)
def test_register_pointwise_8_16_channels_on_cortex_m7(case: ConvCase, tmp_path):
    _assert_cortex_m7_matches_tflm(case, tmp_path, kernel=REG_KERNEL)


# strides above 1 (ic_resnet's ops 6 and 10) and 24 and 32 input channels (mcu_1x1_rec2_c24 /
# _c32: widened inputs on the stack, two output channels per loop, the odd last channel in C;
# as person_detect's ops 6 and 8)
REG_WIDE_CASES = [
    ConvCase("reg24_32", (1, 4, 5, 24), 32, kernel=(1, 1), zp_in=-128),
    ConvCase("reg24_odd_out_batch2", (2, 3, 2, 24), 7, kernel=(1, 1), zp_in=9, bias=False),
    ConvCase("reg32_64", (1, 3, 4, 32), 64, kernel=(1, 1), zp_in=-128),
    ConvCase("reg32_odd_out", (1, 2, 3, 32), 9, kernel=(1, 1), zp_in=3),
    ConvCase("reg32_one_channel", (1, 2, 2, 32), 1, kernel=(1, 1)),
    ConvCase("reg16_stride2", (1, 5, 5, 16), 6, kernel=(1, 1), stride=(2, 2)),
    ConvCase("reg32_stride2_odd_map", (1, 7, 5, 32), 64, kernel=(1, 1), stride=(2, 2)),
    ConvCase("reg24_stride_2x1", (1, 4, 3, 24), 5, kernel=(1, 1), stride=(2, 1), zp_in=-5),
    ConvCase("reg8_stride_1x2_batch2", (2, 3, 6, 8), 4, kernel=(1, 1), stride=(1, 2)),
    ConvCase("reg24_per_tensor", (1, 2, 3, 24), 5, kernel=(1, 1), per_channel=False,
             zp_out=-100),
]
# not the register kernel: fused RELU clamp (FAST mode), another depth
REG_WIDE_OTHER = [
    ConvCase("reg24_relu", (1, 3, 3, 24), 6, kernel=(1, 1), activation="RELU"),
    ConvCase("depth40", (1, 3, 3, 40), 6, kernel=(1, 1)),
]


@needs_host_compiler
@pytest.mark.parametrize("case", REG_WIDE_CASES + REG_WIDE_OTHER, ids=lambda c: c.name)
def test_register_pointwise_24_32_channels_and_strided_matches_tflm_on_host(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    src = assert_host_matches_tflm(conv_model(case, False, rng), tmp_path, rng, case.in_shape,
                                   arena_size=ARENA)
    strided = case.stride != (1, 1)
    assert (REG_KERNEL in src) == (case in REG_WIDE_CASES and not strided)
    assert (REG_STRIDED_KERNEL in src) == (case in REG_WIDE_CASES and strided)


@needs_cortex_m7
@pytest.mark.parametrize("case", REG_WIDE_CASES, ids=lambda c: c.name)
def test_register_pointwise_24_32_channels_and_strided_on_cortex_m7(case: ConvCase, tmp_path):
    _assert_cortex_m7_matches_tflm(case, tmp_path)


# ---------------------------------------------------------------------------------------------
# A CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED chain: Cortex-M7 builds and sanitizers


def _chain_model(rng: np.random.Generator) -> tuple[bytes, tuple[int, ...]]:
    """RGB 3x3/2 conv -> dw 3x3 (in place) -> 1x1 conv (odd channels) -> dw 5x5/2 ->
    3x3 conv (VALID) -> RESHAPE -> FULLY_CONNECTED: every kernel path of the three ops."""
    mb = ModelBuilder()

    def act(shape, scale, zp):
        return mb.add_tensor(TensorSpec(shape, scale=scale, zero_point=zp))

    def const(shape, scales, axis, dtype="int8"):
        lo, hi = (-127, 128) if dtype == "int8" else (-2000, 2000)
        return mb.add_tensor(TensorSpec(shape, dtype, scale=scales, zero_point=[0] * len(scales),
                                        axis=axis, data=rng.integers(lo, hi, shape)))

    x = act((1, 18, 17, 3), 0.04, -10)
    t1 = act((1, 9, 9, 10), 0.05, -20)
    mb.add_op("CONV_2D", [x, const((10, 3, 3, 3), random_scales(rng, 10, True), 0), -1], [t1],
              {"padding": "SAME", "stride_h": 2, "stride_w": 2, "activation": "RELU6"})
    t2 = act((1, 9, 9, 10), 0.05, 5)
    mb.add_op("DEPTHWISE_CONV_2D", [t1, const((1, 3, 3, 10), random_scales(rng, 10, True), 3),
                                    const((10,), [1e-4] * 10, 0, "int32")], [t2],
              {"padding": "SAME", "depth_multiplier": 1})
    t3 = act((1, 9, 9, 13), 0.1, 0)
    mb.add_op("CONV_2D", [t2, const((13, 1, 1, 10), random_scales(rng, 13, True), 0), -1], [t3],
              {"padding": "VALID"})
    t4 = act((1, 5, 5, 13), 0.1, 1)
    mb.add_op("DEPTHWISE_CONV_2D", [t3, const((1, 5, 5, 13), random_scales(rng, 13, True), 3)],
              [t4], {"padding": "SAME", "stride_h": 2, "stride_w": 2, "depth_multiplier": 1})
    t5 = act((1, 3, 3, 6), 0.2, -3)
    mb.add_op("CONV_2D", [t4, const((6, 3, 3, 13), random_scales(rng, 6, True), 0), -1], [t5],
              {"padding": "VALID", "activation": "RELU"})
    t6 = act((1, 54), 0.2, -3)
    mb.add_op("RESHAPE", [t5], [t6], None)
    y = act((1, 7), 0.3, 2)
    mb.add_op("FULLY_CONNECTED", [t6, const((7, 54), [0.01], None), -1], [y], None)
    return mb.build([x], [y]), (1, 18, 17, 3)


@needs_host_compiler
@needs_cortex_m7
def test_conv_depthwise_fc_chain_on_cortex_m7_portable_and_dsp(tmp_path):
    rng = seeded_rng("chain")
    model, shape = _chain_model(rng)
    d = convert(model, tmp_path, "chain")
    ref = TflmModel(model)
    samples = random_int8_samples(rng, shape, n=3)
    want = [ref.run(s) for s in samples]
    host = HostModel(d, "chain")
    counts = assert_cortex_m7_matches(d, "chain", samples, want)
    for s, w in zip(samples, want):
        assert np.array_equal(host.run(s)[0], w[0])
    # the dual-MAC paths must pay for themselves even on this small model
    assert counts[True] < counts[False]


@needs_host_compiler
def test_chain_and_direct_depthwise_are_sanitizer_clean(tmp_path):
    """-fsanitize=address,undefined on every kernel path: the chain (im2col, 1x1, in-place
    depthwise, FC) and a dilated, strided direct depthwise whose taps leave the image."""
    rng = seeded_rng("sanitize")
    model, shape = _chain_model(rng)
    case = ConvCase("san_dw", (1, 7, 6, 5), 10, kernel=(3, 3), stride=(2, 1), dilation=(2, 2))
    dw_model = conv_model(case, True, rng)
    assert_host_sanitizer_clean(model, tmp_path, rng, shape, "chain")
    assert_host_sanitizer_clean(dw_model, tmp_path, rng, case.in_shape, "dw")
