"""DEPTHWISE_CONV_2D (engine/kernels/depthwise_conv2d.c) against TFLite Micro, byte for byte.

The kernel file picks a loop per layer and channel: in place (after a 1x1 convolution) the
one-channel plane loops (3x3 stride 1 / stride 2 two outputs per iteration, the grouped DSP
loop with taps in fours for any undilated kernel at stride 1 or 2, the plain tap loop) or the
channel-group kernel (mcu_depthwise_conv2d_hwc_s8, valid taps only); out of place the
channel-group kernel for depth multiplier 1, the band kernels for a single input channel
(mcu_depthwise_conv2d_c1_s8, and mcu_depthwise_conv2d_c1g4_s8 for four output channels per band
word: micro_speech's 10x8 / stride 2 / multiplier 8 layer) and the direct kernel otherwise;
a one-step SMMLAR requantisation for channels with a right shift (the short 3x3 DSP loops
when the accumulators are provably small) and TFLite's two-step one for the rest. Each case
steers one of those choices; odd output widths and short last rows exercise the remainders
and the "no read past the plane" guard. The host build covers the portable code, the Cortex-M7
under QEMU the portable and DSP builds; the generation-time layouts, scratch sizes, the
opspec cost model and the short requantisation's identity with TFLite's are checked in numpy.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine.host import HostModel
from engine.tflm import TflmModel
from tests.kernel_harness import (
    ConvCase,
    assert_cortex_m7_matches,
    assert_host_matches_tflm,
    assert_host_sanitizer_clean,
    conv_model,
    conv_options,
    conv_tensors,
    convert,
    generated_source,
    needs_cortex_m7,
    needs_host_compiler,
    random_int8_samples,
    random_scales,
    seeded_rng,
    smmlar_requantize,
)
from tests.tflite_builder import ModelBuilder, TensorSpec
from tflite_converter import depthwise_spec, opspec
from tflite_converter.codegen.ops.depthwise_conv2d import band4_weights, hwc_weights, padded_rows
from tflite_converter.reader import read_tflite

PLANE_KERNEL = "mcu_depthwise_conv2d_s8("
HWC_KERNEL = "mcu_depthwise_conv2d_hwc_s8("
BAND_KERNEL = "mcu_depthwise_conv2d_c1_s8("
BAND4_KERNEL = "mcu_depthwise_conv2d_c1g4_s8("
DIRECT_KERNEL = "mcu_depthwise_conv2d_direct_s8("


def _pointwise_then_depthwise(case: ConvCase, rng: np.random.Generator) -> bytes:
    """x -> 1x1 CONV_2D -> DEPTHWISE_CONV_2D: the depthwise input dies at the depthwise, so
    the planner runs it in place over the pointwise output."""
    n, h, w, cin = case.in_shape
    mb = ModelBuilder()
    x = mb.add_tensor(TensorSpec(case.in_shape, scale=0.05, zero_point=-2))
    pw_w = mb.add_tensor(TensorSpec((cin, 1, 1, cin), scale=0.01, zero_point=0,
                                    data=rng.integers(-127, 128, (cin, 1, 1, cin))))
    mid = mb.add_tensor(TensorSpec(case.in_shape, scale=0.08, zero_point=case.zp_in))
    mb.add_op("CONV_2D", [x, pw_w, -1], [mid], {"padding": "VALID", "stride_h": 1, "stride_w": 1})
    _, dw_w, dw_b, y_spec = conv_tensors(case, True, rng)
    dw = mb.add_tensor(dw_w)
    y = mb.add_tensor(y_spec)
    dw_inputs = [mid, dw] if dw_b is None else [mid, dw, mb.add_tensor(dw_b)]
    mb.add_op("DEPTHWISE_CONV_2D", dw_inputs, [y], conv_options(case, True))
    return mb.build([x], [y])


class _DepthwiseChain:
    """A ModelBuilder for chains of depthwise layers with random weights (scales in
    random_scales' range) and biases (scale 1e-5), keeping every activation's shape."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.mb = ModelBuilder()
        self.shapes: dict[int, tuple[int, ...]] = {}

    def act(self, shape, scale, zp) -> int:
        t = self.mb.add_tensor(TensorSpec(shape, scale=scale, zero_point=zp))
        self.shapes[t] = shape
        return t

    def depthwise(self, x: int, out_hw, stride, scale_out, zp_out, kernel=(3, 3), multiplier=1,
                  padding="SAME", act_fn="NONE", per_channel=True, bias_range=3000) -> int:
        rng = self.rng
        c = self.shapes[x][3] * multiplier
        n_q = c if per_channel else 1
        wt = self.mb.add_tensor(TensorSpec((1, *kernel, c), scale=random_scales(rng, n_q, per_channel),
                                           zero_point=[0] * n_q, axis=3,
                                           data=rng.integers(-127, 128, (1, *kernel, c))))
        bias = self.mb.add_tensor(TensorSpec((c,), "int32", scale=[1e-5] * n_q, zero_point=[0] * n_q,
                                             axis=0, data=rng.integers(-bias_range, bias_range, c)))
        y = self.act((1, *out_hw, c), scale_out, zp_out)
        self.mb.add_op("DEPTHWISE_CONV_2D", [x, wt, bias], [y],
                       {"padding": padding, "stride_h": stride[0], "stride_w": stride[1],
                        "depth_multiplier": multiplier, "activation": act_fn})
        return y


# ---------------------------------------------------------------------------------------------
# Every padding, stride, dilation, multiplier and quantization kind, out of place and in place

DW_CASES = [
    ConvCase("dw3_s1", (1, 9, 8, 8), 8),
    ConvCase("dw3_s2_odd_channels", (1, 11, 10, 5), 5, stride=(2, 2), activation="RELU6"),
    ConvCase("dw3_valid_per_tensor", (1, 7, 7, 6), 6, padding="VALID", per_channel=False),
    ConvCase("dw5_s1", (1, 10, 9, 3), 3, kernel=(5, 5), zp_in=40),
    ConvCase("dw7_s2", (1, 15, 14, 4), 4, kernel=(7, 7), stride=(2, 2)),
    ConvCase("dw3_dilated", (1, 10, 10, 4), 4, dilation=(2, 3)),
    ConvCase("dw_multiplier2", (1, 6, 7, 3), 6, stride=(1, 2)),
    ConvCase("dw_multiplier3_k5", (1, 8, 8, 2), 6, kernel=(5, 5), bias=False),
    ConvCase("dw_1x1_input", (1, 1, 1, 9), 9),
    ConvCase("dw_2x3_kernel", (1, 6, 6, 7), 7, kernel=(2, 3), stride=(2, 1)),
    ConvCase("dw_batch2", (2, 5, 5, 4), 4),
    ConvCase("dw_saturating", (1, 5, 5, 4), 4, out_scale=1e-4, activation="RELU"),
]


@needs_host_compiler
@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: c.name)
def test_depthwise_matches_tflm(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    assert_host_matches_tflm(conv_model(case, True, rng), tmp_path, rng, case.in_shape)


@needs_host_compiler
@pytest.mark.parametrize("case", [
    ConvCase("inplace_dw3_s1", (1, 8, 8, 6), 6, zp_in=9),
    ConvCase("inplace_dw3_s2", (1, 9, 10, 5), 5, stride=(2, 2), activation="RELU6"),
    ConvCase("inplace_dw5_valid", (1, 9, 9, 4), 4, kernel=(5, 5), padding="VALID"),
    ConvCase("inplace_dw3_dilated", (1, 7, 8, 3), 3, dilation=(2, 2)),
], ids=lambda c: c.name)
def test_inplace_depthwise_matches_tflm(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    model = _pointwise_then_depthwise(case, rng)
    src = assert_host_matches_tflm(model, tmp_path, rng, case.in_shape)
    assert PLANE_KERNEL in src, "the planner did not run the depthwise in place"


INPLACE_CASES = [
    ConvCase("k5_s1_even", (1, 10, 10, 6), 6, kernel=(5, 5), zp_in=-128, activation="RELU6"),
    ConvCase("k5_s1_odd_width", (1, 9, 7, 5), 5, kernel=(5, 5)),
    ConvCase("k5_s2", (1, 21, 20, 8), 8, kernel=(5, 5), stride=(2, 2)),
    ConvCase("k7_s1", (1, 7, 8, 6), 6, kernel=(7, 7), zp_in=100),
    ConvCase("k7_s2_odd", (1, 25, 25, 8), 8, kernel=(7, 7), stride=(2, 2)),
    ConvCase("k7_valid", (1, 9, 12, 8), 8, kernel=(7, 7), padding="VALID"),
    ConvCase("k3_s2_odd_width", (1, 10, 11, 7), 7, stride=(2, 2), zp_in=-128),
    ConvCase("k3_s2_valid", (1, 15, 15, 8), 8, stride=(2, 2), padding="VALID"),
    ConvCase("k3_s1_odd_width", (1, 6, 7, 3), 3, per_channel=False),
    ConvCase("k3x5_s1", (1, 8, 9, 3), 3, kernel=(3, 5)),
    ConvCase("k5x2_s2x1", (1, 9, 8, 6), 6, kernel=(5, 2), stride=(2, 1)),
    ConvCase("k4_s1_vertical_s2", (1, 9, 9, 6), 6, kernel=(4, 4), stride=(2, 1)),
    # multipliers above 0.5 give left shifts: TFLite's two-step requantisation
    ConvCase("k5_left_shift", (1, 6, 6, 4), 4, kernel=(5, 5), out_scale=1e-4),
    ConvCase("k3_s2_left_shift", (1, 11, 11, 8), 8, stride=(2, 2), out_scale=1e-4),
]


@needs_host_compiler
@pytest.mark.parametrize("kernel", ["plane", "hwc"])
@pytest.mark.parametrize("case", INPLACE_CASES, ids=lambda c: c.name)
def test_inplace_plane_and_hwc_kernels_match_tflm(case: ConvCase, kernel: str, tmp_path, monkeypatch):
    """Each in-place kernel on every case: the one-channel plane loops and the channel-group
    kernel (valid taps only), the choice forced past opspec's cost model."""
    monkeypatch.setattr(depthwise_spec, "depthwise_prefers_hwc", lambda g, op: kernel == "hwc")
    rng = seeded_rng(case.name)
    model = _pointwise_then_depthwise(case, rng)
    src = assert_host_matches_tflm(model, tmp_path, rng, case.in_shape)
    if kernel == "plane":
        assert PLANE_KERNEL in src, "the planner did not run the depthwise in place"
    elif HWC_KERNEL in src:
        call = src[src.index(HWC_KERNEL):]
        assert "(int8_t *)0)" not in call.split(";")[0], "hwc kernel not run in place"
    else:
        # the arena had no room for the group buffer at that step: the plane kernel runs
        assert PLANE_KERNEL in src


# ---------------------------------------------------------------------------------------------
# Out of place: the channel-group kernel, the direct kernel, scratch and cost model

HWC_OUT_OF_PLACE_CASES = [
    ConvCase("hwc_k3_dilated", (1, 9, 8, 6), 6, dilation=(2, 2), zp_in=-128),
    ConvCase("hwc_k5_s2x1_odd_c", (1, 7, 9, 7), 7, kernel=(5, 5), stride=(2, 1), zp_in=127),
    ConvCase("hwc_k7_tiny", (1, 3, 3, 9), 9, kernel=(7, 7), per_channel=False),
    ConvCase("hwc_k3_1x1", (1, 1, 1, 5), 5, activation="RELU6"),
]


@needs_host_compiler
@pytest.mark.parametrize("case", HWC_OUT_OF_PLACE_CASES, ids=lambda c: c.name)
def test_out_of_place_multichannel_uses_hwc_kernel(case: ConvCase, tmp_path):
    """Depth multiplier 1 out of place: the channel-group kernel reads the input where it
    lies (no scratch), any channel count, dilation and stride."""
    rng = seeded_rng(case.name)
    src = assert_host_matches_tflm(conv_model(case, True, rng), tmp_path, rng, case.in_shape)
    assert HWC_KERNEL in src and "(int8_t *)0)" in src


@needs_host_compiler
def test_out_of_place_multichannel_keeps_direct_kernel_without_scratch(tmp_path):
    """An out-of-place depthwise with several input channels gets no planned buffer."""
    case = ConvCase("direct_k5_m2", (1, 8, 7, 3), 6, kernel=(5, 5), stride=(2, 1))
    rng = seeded_rng(case.name)
    model = conv_model(case, True, rng)
    src = assert_host_matches_tflm(model, tmp_path, rng, case.in_shape)
    assert DIRECT_KERNEL in src
    g = read_tflite(model)
    assert opspec.scratch_bytes(g, g.ops[0], False) == 0


def test_cost_model_picks_hwc_for_small_maps_only():
    """MCUNet-like layers: 7x7 on a 3x3 map (almost all padding) takes the channel-group
    kernel, 3x3 on a 40x40 map the plane kernel."""
    rng = seeded_rng("cost")
    picks = {}
    for name, shape, k in (("small", (1, 3, 3, 8), (7, 7)), ("large", (1, 40, 40, 8), (3, 3))):
        case = ConvCase(name, shape, 8, kernel=k)
        g = read_tflite(conv_model(case, True, rng))
        op = g.ops[0]
        picks[name] = depthwise_spec.depthwise_prefers_hwc(g, op)
        want = (depthwise_spec.depthwise_hwc_scratch_bytes(g, op) if picks[name]
                else depthwise_spec.depthwise_inplace_scratch_bytes(g, op))
        assert opspec.preferred_scratch_bytes(g, op, True) == max(
            want, depthwise_spec.depthwise_inplace_scratch_bytes(g, op))
    assert picks == {"small": True, "large": False}


def test_hwc_weights_layout():
    rows = (np.arange(6 * 4, dtype=np.int64).reshape(6, 4) - 12)  # 6 channels, 4 taps
    got = hwc_weights(rows).reshape(2, 4, 4)  # [groups][taps][4]
    assert np.array_equal(got[0], rows[:4].T)
    assert np.array_equal(got[1][:, :2], rows[4:].T) and not got[1][:, 2:].any()


def test_padded_rows_layout():
    rows = np.arange(2 * 15, dtype=np.int64).reshape(2, 15) - 10  # 2 channels, 3x5 taps
    got = padded_rows(rows, 3, 5)
    assert got.dtype == np.int8 and got.shape == (2, 3 * 8)
    g = got.reshape(2, 3, 8)
    assert np.array_equal(g[:, :, :5], rows.reshape(2, 3, 5))
    assert not g[:, :, 5:].any()
    assert padded_rows(rows[:, :12], 3, 4).shape == (2, 12)  # already a multiple of 4


# ---------------------------------------------------------------------------------------------
# One input channel: the band kernels (c1, and c1g4 for multiples of four output channels)

SINGLE_CHANNEL_CASES = [
    # micro_speech's layer, smaller: 10x8 kernel, depth multiplier 8, stride 2, SAME
    ConvCase("c1_k10x8_m8_s2", (1, 25, 20, 1), 8, kernel=(10, 8), stride=(2, 2)),
    # person_detect's first layer: 3x3 stride 2 VALID, multiplier 8
    ConvCase("c1_k3_m8_s2_valid", (1, 17, 16, 1), 8, stride=(2, 2), padding="VALID"),
    ConvCase("c1_k5_m3_s1", (1, 7, 9, 1), 3, kernel=(5, 5), zp_in=-128),
    ConvCase("c1_k3_m1_dilated", (1, 9, 9, 1), 1, dilation=(2, 2)),
]


@needs_host_compiler
@pytest.mark.parametrize("case", SINGLE_CHANNEL_CASES, ids=lambda c: c.name)
def test_single_input_channel_uses_band_kernel(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    src = assert_host_matches_tflm(conv_model(case, True, rng), tmp_path, rng, case.in_shape)
    assert (BAND_KERNEL in src or BAND4_KERNEL in src)
    assert DIRECT_KERNEL not in src


def test_single_channel_scratch_is_one_padded_band():
    case = ConvCase("plane", (1, 25, 20, 1), 8, kernel=(10, 8), stride=(2, 2))
    rng = seeded_rng(case.name)
    g = read_tflite(conv_model(case, True, rng))
    op = g.ops[0]
    out_h, out_w = g.tensors[op.outputs[0]].shape[1:3]
    band = 10 * ((out_w - 1) * 2 + 8)  # the k_h rows one output row reads
    assert depthwise_spec.depthwise_single_channel(g, op, False)
    assert opspec.scratch_bytes(g, op, False) == depthwise_spec.depthwise_band_bytes(g, op) == band
    # in place (not possible here with multiplier 8, but the rule is the plane's)
    assert opspec.scratch_bytes(g, op, True) == ((out_h - 1) * 2 + 10) * ((out_w - 1) * 2 + 8)


# One input channel out of place, depth multiplier a multiple of 4, kernel width a multiple of
# 4, no dilation: the band word of four taps is widened once and serves four output channels
# whose weights are stored as int16 pairs (band4_weights). The DSP build runs the assembly row
# loop for kernel width 8 and the C loop for other widths.
BAND4_CASES = [
    ConvCase("b4_k10x8_m8_s2", (1, 25, 20, 1), 8, kernel=(10, 8), stride=(2, 2)),
    ConvCase("b4_k3x8_m4_s1_relu6", (1, 9, 11, 1), 4, kernel=(3, 8), zp_in=-128,
             activation="RELU6"),
    ConvCase("b4_k5x4_m12_s2x1_tensor", (1, 12, 9, 1), 12, kernel=(5, 4), stride=(2, 1),
             per_channel=False),
    # a left shift: TFLite's two-step requantisation instead of the SMMLAR form
    ConvCase("b4_k4x8_m4_left_shift", (1, 8, 10, 1), 4, kernel=(4, 8), out_scale=1e-4),
    ConvCase("b4_k10x8_m8_valid", (1, 14, 13, 1), 8, kernel=(10, 8), padding="VALID",
             zp_in=127),
]


@needs_host_compiler
@pytest.mark.parametrize("case", BAND4_CASES, ids=lambda c: c.name)
def test_band4_kernel_matches_tflm_on_host(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    src = assert_host_matches_tflm(conv_model(case, True, rng), tmp_path, rng, case.in_shape)
    assert BAND4_KERNEL in src and BAND_KERNEL not in src


@needs_host_compiler
@pytest.mark.parametrize("case", [
    ConvCase("m6_not_multiple_of_4", (1, 9, 9, 1), 6, kernel=(3, 8)),
    ConvCase("kw5_not_multiple_of_4", (1, 9, 9, 1), 8, kernel=(3, 5)),
    ConvCase("dilated", (1, 12, 12, 1), 8, kernel=(3, 4), dilation=(2, 2)),
], ids=lambda c: c.name)
def test_other_single_channel_layers_keep_the_band_kernel(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    src = assert_host_matches_tflm(conv_model(case, True, rng), tmp_path, rng, case.in_shape)
    assert BAND_KERNEL in src and BAND4_KERNEL not in src


def test_band4_weights_layout():
    rng = np.random.default_rng(3)
    k_h, k_w, c = 2, 8, 8
    rows = rng.integers(-127, 128, (c, k_h * k_w))
    words = band4_weights(rows, k_h, k_w)
    assert words.dtype == np.uint32 and words.size == c * k_h * k_w // 2
    lo = (words & 0xFFFF).astype(np.uint16).view(np.int16).astype(np.int64)
    hi = (words >> 16).astype(np.uint16).view(np.int16).astype(np.int64)
    # [group][ky][quad][channel][pair]
    lo = lo.reshape(c // 4, k_h, k_w // 4, 4, 2)
    hi = hi.reshape(c // 4, k_h, k_w // 4, 4, 2)
    w = rows.reshape(c // 4, 4, k_h, k_w // 4, 4)  # [group][channel][ky][quad][tap]
    for g, ch, ky, qd in np.ndindex(c // 4, 4, k_h, k_w // 4):
        taps = w[g, ch, ky, qd]
        assert (lo[g, ky, qd, ch, 0], hi[g, ky, qd, ch, 0]) == (taps[0], taps[2])
        assert (lo[g, ky, qd, ch, 1], hi[g, ky, qd, ch, 1]) == (taps[1], taps[3])


@needs_cortex_m7
@pytest.mark.parametrize("case", [BAND4_CASES[0], BAND4_CASES[2], BAND4_CASES[3]],
                         ids=lambda c: c.name)
def test_band4_kernel_on_cortex_m7_portable_and_dsp(case: ConvCase, tmp_path):
    rng = seeded_rng(case.name)
    model = conv_model(case, True, rng)
    d = convert(model, tmp_path, "b4")
    assert BAND4_KERNEL in generated_source(d, "b4")
    ref = TflmModel(model)
    samples = random_int8_samples(rng, case.in_shape, n=2)
    assert_cortex_m7_matches(d, "b4", samples, [ref.run(s) for s in samples])


# ---------------------------------------------------------------------------------------------
# The short-requantisation 3x3 loops (DSP build only): channels whose accumulators are provably
# small (mcu_dw_rqs_usable) take a five-instruction requantisation built on SMMLAR
# (mcu_dw_rqs_apply) and an SSAT-only clamp when the activation range is all of int8.


def _tflite_requantize(acc: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier for a right shift: SaturatingRoundingDoubling
    HighMul (nudge, divide truncating toward zero) then RoundingDivideByPOT."""
    ab = acc.astype(object) * mult
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    num = ab + nudge
    # integer division truncating toward zero
    high = np.array([(abs(n) >> 31) * (1 if n >= 0 else -1) for n in num], dtype=np.int64)
    e = -shift
    mask = (1 << e) - 1
    rem = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> e) + (rem > threshold)


@pytest.mark.parametrize("shift", [-1, -2, -7, -13, -22])
def test_smmlar_requantisation_is_tflites(shift: int):
    """Over the range mcu_dw_rqs_usable admits (|acc| < 2^29, 1 <= e <= 22), with random and
    tie-making accumulators, both multiplier ends and extreme zero points; every intermediate
    of the DSP form stays inside int32."""
    rng = np.random.default_rng(100 - shift)
    e = -shift
    acc = np.concatenate([
        rng.integers(-(2 ** 29) + 1, 2 ** 29, 4000),
        rng.integers(-5000, 5000, 2000),
        np.arange(-70, 70),
        # products just around the rounding points of both steps
        (np.arange(-40, 40) << max(e - 1, 0)) + rng.integers(-2, 3, 80),
    ]).astype(np.int64)
    for mult in (1 << 30, (1 << 31) - 1, int(rng.integers(1 << 30, 1 << 31)), 0):
        for zp in (-128, 0, 127):
            want = _tflite_requantize(acc, mult, shift) + zp
            rnd = zp * (1 << e) + (1 << (e - 1))
            got = smmlar_requantize(acc, mult, rnd, e, check_int32=True)
            assert np.array_equal(got, want), (mult, zp)


def _dw3_stack(rng: np.random.Generator) -> tuple[bytes, tuple[int, ...]]:
    """1x1 conv -> a chain of in-place 3x3 depthwise layers covering the short loops' cases:
    stride 1 with an odd width and a ReLU6 range narrower than int8 (the clamp after SSAT),
    stride 2 SAME and VALID down to a one-column map, a per-tensor layer, a bias too large
    for the short requantisation (the old loops take it) and unequal strides."""
    ch = _DepthwiseChain(rng)
    shape = (1, 11, 9, 6)
    x = ch.act(shape, 0.05, -2)
    pw = ch.mb.add_tensor(TensorSpec((6, 1, 1, 6), scale=0.01, zero_point=0,
                                     data=rng.integers(-127, 128, (6, 1, 1, 6))))
    t = ch.act(shape, 0.08, -5)
    ch.mb.add_op("CONV_2D", [x, pw, -1], [t], {"padding": "VALID"})
    t = ch.depthwise(t, (11, 9), (1, 1), 0.03, -128, act_fn="RELU6")  # act_max -128 + 200 -> 72
    t = ch.depthwise(t, (6, 5), (2, 2), 0.2, 4)
    t = ch.depthwise(t, (6, 5), (1, 1), 0.3, -3, per_channel=False)
    t = ch.depthwise(t, (3, 3), (2, 2), 0.3, 0)
    t = ch.depthwise(t, (1, 1), (2, 2), 0.4, 1, padding="VALID")
    u = ch.depthwise(t, (1, 1), (1, 1), 0.4, 2)  # a single output, stride 1
    return ch.mb.build([x], [u]), shape


def _dw3_wide(rng: np.random.Generator) -> tuple[bytes, tuple[int, ...]]:
    """Wider maps: even widths (pairs only), unequal strides and a bias past the short path's
    bound (the older loops)."""
    ch = _DepthwiseChain(rng)
    shape = (1, 16, 20, 4)
    x = ch.act(shape, 0.05, 7)
    pw = ch.mb.add_tensor(TensorSpec((4, 1, 1, 4), scale=0.01, zero_point=0,
                                     data=rng.integers(-127, 128, (4, 1, 1, 4))))
    t = ch.act(shape, 0.08, 3)
    ch.mb.add_op("CONV_2D", [x, pw, -1], [t], {"padding": "VALID"})
    t = ch.depthwise(t, (16, 20), (1, 1), 0.25, -1)
    t = ch.depthwise(t, (8, 10), (2, 2), 0.3, 5)
    t = ch.depthwise(t, (8, 10), (1, 1), 0.3, 2)
    t = ch.depthwise(t, (4, 10), (2, 1), 0.3, -2)
    t = ch.depthwise(t, (4, 5), (1, 2), 0.3, 6)
    # a second output: a layer whose bias is past 2^29 (the old loops); its outputs are
    # mostly the bias, which would hide the layers before it were it in the chain
    u = ch.depthwise(t, (4, 5), (1, 1), 40.0, 6, bias_range=2 ** 30)
    return ch.mb.build([x], [t, u]), shape


@needs_cortex_m7
@pytest.mark.parametrize("builder, planes", [(_dw3_stack, 4), (_dw3_wide, 4)],
                         ids=["small_maps", "wide_maps"])
def test_short_3x3_loops_on_cortex_m7_dsp(builder, planes, tmp_path, monkeypatch):
    # the plane kernel on every layer, whatever the cost model prefers for small maps
    monkeypatch.setattr(depthwise_spec, "depthwise_prefers_hwc", lambda g, op: False)
    rng = seeded_rng(builder.__name__)  # "_dw3_stack" / "_dw3_wide"
    model, shape = builder(rng)
    d = convert(model, tmp_path, "dw3")
    # the layers the planner runs in place take the plane kernel (the rest the group kernel)
    assert generated_source(d, "dw3").count(PLANE_KERNEL) == planes
    ref = TflmModel(model)
    samples = random_int8_samples(rng, shape, n=3)
    assert_cortex_m7_matches(d, "dw3", samples, [ref.run(s) for s in samples], dsp_builds=(True,))


# ---------------------------------------------------------------------------------------------
# A stack of every plane loop (grouped, 3x3 stride 2, single channel): Cortex-M7, sanitizers


def _dw_stack_model(rng: np.random.Generator) -> tuple[bytes, tuple[int, ...]]:
    """1-channel dw (10x8/2, multiplier 12) -> dw 5x5/1 -> dw 7x7/2 -> 1x1 conv -> dw 3x3/2
    -> dw 5x5/2 -> dw 3x5/1 with a left-shift output scale: every plane loop, in place
    after the first."""
    ch = _DepthwiseChain(rng)
    shape = (1, 21, 19, 1)
    x = ch.act(shape, 0.05, -3)
    t = ch.depthwise(x, (11, 10), (2, 2), 0.08, 2, kernel=(10, 8), multiplier=12)
    t = ch.depthwise(t, (11, 10), (1, 1), 0.3, -1, kernel=(5, 5), act_fn="RELU6")
    t = ch.depthwise(t, (6, 5), (2, 2), 0.5, 4, kernel=(7, 7))
    pw = ch.mb.add_tensor(TensorSpec((16, 1, 1, 12), scale=random_scales(rng, 16, True),
                                     zero_point=[0] * 16, axis=0,
                                     data=rng.integers(-127, 128, (16, 1, 1, 12))))
    u = ch.act((1, 6, 5, 16), 0.2, -7)
    ch.mb.add_op("CONV_2D", [t, pw, -1], [u], {"padding": "VALID"})
    t = ch.depthwise(u, (3, 3), (2, 2), 0.3, 1)
    t = ch.depthwise(t, (2, 2), (2, 2), 0.4, 0, kernel=(5, 5))
    t = ch.depthwise(t, (2, 2), (1, 1), 1e-4, 3, kernel=(3, 5))
    return ch.mb.build([x], [t]), shape


@needs_host_compiler
@needs_cortex_m7
def test_depthwise_stack_on_cortex_m7_portable_and_dsp(tmp_path):
    rng = seeded_rng("dw_stack")
    model, shape = _dw_stack_model(rng)
    d = convert(model, tmp_path, "dws")
    src = generated_source(d, "dws")
    assert DIRECT_KERNEL not in src
    assert BAND_KERNEL in src or BAND4_KERNEL in src
    assert HWC_KERNEL in src  # the 2x2 maps' layers
    ref = TflmModel(model)
    samples = random_int8_samples(rng, shape, n=3)
    want = [ref.run(s) for s in samples]
    host = HostModel(d, "dws")
    for s, w in zip(samples, want):
        assert np.array_equal(host.run(s)[0], w[0])
    counts = assert_cortex_m7_matches(d, "dws", samples, want)
    assert counts[True] < counts[False]


@needs_host_compiler
def test_depthwise_stack_is_sanitizer_clean(tmp_path):
    """The plane loops read no byte outside the plane (address sanitizer on the host)."""
    rng = seeded_rng("dw_stack_san")
    model, shape = _dw_stack_model(rng)
    assert_host_sanitizer_clean(model, tmp_path, rng, shape, "dws")


# ---------------------------------------------------------------------------------------------
# The kernel is chosen once: the plan records it, the generated C calls it

_KERNEL_OF_VARIANT = {"plane": PLANE_KERNEL, "hwc": HWC_KERNEL, "direct": DIRECT_KERNEL,
                      "band": "mcu_depthwise_conv2d_c1_s8(", "band4": "mcu_depthwise_conv2d_c1g4_s8("}


@pytest.mark.parametrize("stem", ["tinyengine_mcunet_vww", "tflm_person_detect", "tflm_micro_speech_quantized"])
def test_plan_records_the_depthwise_kernel_the_code_calls(stem, tmp_path):
    """Every DEPTHWISE_CONV_2D of a shared model has its variant in the plan (and plan.json),
    the variant the rule gives for its in-place flag and granted scratch, and the generated C
    calls that kernel for that op (the MCUNet model runs several variants)."""
    import json
    from pathlib import Path

    from tflite_converter.codegen.generate import convert_model
    from tflite_converter.codegen.ops.depthwise_conv2d import DwKernel
    from tflite_converter.ir import OpKind
    from tflite_converter.pipeline import compile_model

    path = Path(__file__).resolve().parents[2] / "shared" / "models" / f"{stem}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not found (the shared models live in <repo>/../shared)")
    m = compile_model(path)
    dw = [p for p, op in enumerate(m.graph.ops) if op.kind is OpKind.DEPTHWISE_CONV_2D]
    assert dw
    seen = set()
    for p in dw:
        op, sp = m.graph.ops[p], m.plan.scratch.get(p)
        v = m.plan.variants[p]
        assert v == opspec.kernel_variant(m.graph, op, p in m.plan.inplace_ops, sp.bytes if sp else 0)
        seen.add(DwKernel(v))
    convert_model(path, tmp_path, name="model")
    rows = {r["position"]: r for r in json.loads((tmp_path / "plan.json").read_text())["ops"]}
    src = (tmp_path / "model.c").read_text()
    for p in dw:
        assert rows[p]["variant"] == m.plan.variants[p]
        assert _KERNEL_OF_VARIANT[m.plan.variants[p]] in src
    if stem == "tinyengine_mcunet_vww":
        assert {DwKernel.PLANE, DwKernel.HWC} <= seen
