"""The fast DEPTHWISE_CONV_2D paths against TFLite Micro, byte for byte.

engine/kernels/depthwise_conv2d.c picks a loop per output channel: 3x3 stride 1 / stride 2
(two outputs per iteration), the grouped DSP loop (taps in fours, any kernel without dilation,
stride 1 or 2: 5x5, 7x7, micro_speech's 10x8), the plain tap loop, and a one-step
requantisation for channels with a right shift (the rest take TFLite's two-step one). Each
case here steers one of those choices, in place (after a 1x1 convolution) or out of place with a
single input channel (the band kernel: a few padded rows in a planned buffer); odd output widths and short last
rows exercise the remainders and the "no read past the plane" guard. The host build covers the
portable code; one multi-layer model also runs on the Cortex-M7 under QEMU in the portable and
DSP builds.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu
from engine.host import HostModel, have_compiler
from engine.tflm import TflmModel
from tests.test_kernels_conv import (
    ConvCase,
    _assert_matches_tflm,
    _conv_options,
    _conv_tensors,
    _inputs,
    _pointwise_then_depthwise,
    _rng,
    _scales,
)
from tests.tflite_builder import ModelBuilder, TensorSpec, build_single_op_model
from tflite_converter import opspec
from tflite_converter.codegen.generate import convert_model
from tflite_converter.codegen.ops.depthwise_conv2d import hwc_weights, padded_rows
from tflite_converter.reader import read_tflite

pytestmark = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")

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


@pytest.mark.parametrize("kernel", ["plane", "hwc"])
@pytest.mark.parametrize("case", INPLACE_CASES, ids=lambda c: c.name)
def test_inplace_paths_match_tflm(case: ConvCase, kernel: str, tmp_path, monkeypatch):
    """Each in-place kernel on every case: the one-channel plane loops and the channel-group
    kernel (valid taps only), the choice forced past opspec's cost model."""
    monkeypatch.setattr(opspec, "depthwise_prefers_hwc", lambda g, op: kernel == "hwc")
    rng = _rng(case.name)
    model = _pointwise_then_depthwise(case, rng)
    src = _assert_matches_tflm(model, tmp_path, rng, case.in_shape)
    if kernel == "plane":
        assert "mcu_depthwise_conv2d_s8(" in src, "the planner did not run the depthwise in place"
    elif "mcu_depthwise_conv2d_hwc_s8(" in src:
        call = src[src.index("mcu_depthwise_conv2d_hwc_s8("):]
        assert "(int8_t *)0)" not in call.split(";")[0], "hwc kernel not run in place"
    else:
        # the arena had no room for the group buffer at that step: the plane kernel runs
        assert "mcu_depthwise_conv2d_s8(" in src


HWC_OUT_OF_PLACE_CASES = [
    ConvCase("hwc_k3_dilated", (1, 9, 8, 6), 6, dilation=(2, 2), zp_in=-128),
    ConvCase("hwc_k5_s2x1_odd_c", (1, 7, 9, 7), 7, kernel=(5, 5), stride=(2, 1), zp_in=127),
    ConvCase("hwc_k7_tiny", (1, 3, 3, 9), 9, kernel=(7, 7), per_channel=False),
    ConvCase("hwc_k3_1x1", (1, 1, 1, 5), 5, activation="RELU6"),
]


@pytest.mark.parametrize("case", HWC_OUT_OF_PLACE_CASES, ids=lambda c: c.name)
def test_out_of_place_multichannel_uses_hwc_kernel(case: ConvCase, tmp_path):
    """Depth multiplier 1 out of place: the channel-group kernel reads the input where it
    lies (no scratch), any channel count, dilation and stride."""
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, True, rng)
    model = build_single_op_model("DEPTHWISE_CONV_2D", [x, w, b], [y], _conv_options(case, True))
    src = _assert_matches_tflm(model, tmp_path, rng, case.in_shape)
    assert "mcu_depthwise_conv2d_hwc_s8(" in src and "(int8_t *)0)" in src


def test_cost_model_picks_hwc_for_small_maps_only():
    """MCUNet-like layers: 7x7 on a 3x3 map (almost all padding) takes the channel-group
    kernel, 3x3 on a 40x40 map the plane kernel."""
    rng = _rng("cost")
    picks = {}
    for name, shape, k in (("small", (1, 3, 3, 8), (7, 7)), ("large", (1, 40, 40, 8), (3, 3))):
        case = ConvCase(name, shape, 8, kernel=k)
        x, w, b, y = _conv_tensors(case, True, rng)
        g = read_tflite(build_single_op_model("DEPTHWISE_CONV_2D", [x, w, b], [y],
                                              _conv_options(case, True)))
        op = g.ops[0]
        picks[name] = opspec.depthwise_prefers_hwc(g, op)
        want = (opspec.depthwise_hwc_scratch_bytes(g, op) if picks[name]
                else opspec.depthwise_inplace_scratch_bytes(g, op))
        assert opspec.preferred_scratch_bytes(g, op, True) == max(
            want, opspec.depthwise_inplace_scratch_bytes(g, op))
    assert picks == {"small": True, "large": False}


def test_hwc_weights_layout():
    rows = (np.arange(6 * 4, dtype=np.int64).reshape(6, 4) - 12)  # 6 channels, 4 taps
    got = hwc_weights(rows).reshape(2, 4, 4)  # [groups][taps][4]
    assert np.array_equal(got[0], rows[:4].T)
    assert np.array_equal(got[1][:, :2], rows[4:].T) and not got[1][:, 2:].any()


SINGLE_CHANNEL_CASES = [
    # micro_speech's layer, smaller: 10x8 kernel, depth multiplier 8, stride 2, SAME
    ConvCase("c1_k10x8_m8_s2", (1, 25, 20, 1), 8, kernel=(10, 8), stride=(2, 2)),
    # person_detect's first layer: 3x3 stride 2 VALID, multiplier 8
    ConvCase("c1_k3_m8_s2_valid", (1, 17, 16, 1), 8, stride=(2, 2), padding="VALID"),
    ConvCase("c1_k5_m3_s1", (1, 7, 9, 1), 3, kernel=(5, 5), zp_in=-128),
    ConvCase("c1_k3_m1_dilated", (1, 9, 9, 1), 1, dilation=(2, 2)),
]


@pytest.mark.parametrize("case", SINGLE_CHANNEL_CASES, ids=lambda c: c.name)
def test_single_input_channel_uses_band_kernel(case: ConvCase, tmp_path):
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, True, rng)
    model = build_single_op_model("DEPTHWISE_CONV_2D", [x, w, b], [y], _conv_options(case, True))
    src = _assert_matches_tflm(model, tmp_path, rng, case.in_shape)
    assert ("mcu_depthwise_conv2d_c1_s8(" in src or "mcu_depthwise_conv2d_c1g4_s8(" in src)
    assert "mcu_depthwise_conv2d_direct_s8(" not in src


def test_out_of_place_multichannel_keeps_direct_kernel_without_scratch(tmp_path):
    """An out-of-place depthwise with several input channels gets no planned buffer."""
    case = ConvCase("direct_k5_m2", (1, 8, 7, 3), 6, kernel=(5, 5), stride=(2, 1))
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, True, rng)
    model = build_single_op_model("DEPTHWISE_CONV_2D", [x, w, b], [y], _conv_options(case, True))
    src = _assert_matches_tflm(model, tmp_path, rng, case.in_shape)
    assert "mcu_depthwise_conv2d_direct_s8(" in src
    g = read_tflite(model)
    assert opspec.scratch_bytes(g, g.ops[0], False) == 0


def test_single_channel_scratch_is_one_padded_band():
    case = ConvCase("plane", (1, 25, 20, 1), 8, kernel=(10, 8), stride=(2, 2))
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, True, rng)
    g = read_tflite(build_single_op_model("DEPTHWISE_CONV_2D", [x, w, b], [y],
                                          _conv_options(case, True)))
    op = g.ops[0]
    out_h, out_w = g.tensors[op.outputs[0]].shape[1:3]
    band = 10 * ((out_w - 1) * 2 + 8)  # the k_h rows one output row reads
    assert opspec.depthwise_single_channel(g, op, False)
    assert opspec.scratch_bytes(g, op, False) == opspec.depthwise_band_bytes(g, op) == band
    # in place (not possible here with multiplier 8, but the rule is the plane's)
    assert opspec.scratch_bytes(g, op, True) == ((out_h - 1) * 2 + 10) * ((out_w - 1) * 2 + 8)


def test_padded_rows_layout():
    rows = np.arange(2 * 15, dtype=np.int64).reshape(2, 15) - 10  # 2 channels, 3x5 taps
    got = padded_rows(rows, 3, 5)
    assert got.dtype == np.int8 and got.shape == (2, 3 * 8)
    g = got.reshape(2, 3, 8)
    assert np.array_equal(g[:, :, :5], rows.reshape(2, 3, 5))
    assert not g[:, :, 5:].any()
    assert padded_rows(rows[:, :12], 3, 4).shape == (2, 12)  # already a multiple of 4


# ---------------------------------------------------------------------------------------------
# Cortex-M7: the DSP loops (grouped, 3x3 stride 2, single channel) give TFLM's bytes


def _dw_stack_model(rng: np.random.Generator) -> tuple[bytes, tuple[int, ...]]:
    """1-channel dw (10x8/2, multiplier 12) -> dw 5x5/1 -> dw 7x7/2 -> 1x1 conv -> dw 3x3/2
    -> dw 5x5/2 -> dw 3x5/1 with a left-shift output scale: every plane loop, in place
    after the first."""
    mb = ModelBuilder()

    def act(shape, scale, zp):
        return mb.add_tensor(TensorSpec(shape, scale=scale, zero_point=zp))

    def dw(x, shape_out, k, stride, scale_out, zp_out, act_fn="NONE"):
        c = shape_out[3]
        wt = mb.add_tensor(TensorSpec((1, *k, c), scale=_scales(rng, c, True), zero_point=[0] * c,
                                      axis=3, data=rng.integers(-127, 128, (1, *k, c))))
        bias = mb.add_tensor(TensorSpec((c,), "int32", scale=[1e-5] * c, zero_point=[0] * c,
                                        axis=0, data=rng.integers(-3000, 3000, c)))
        y = act(shape_out, scale_out, zp_out)
        cin = mb_shapes[x][3]
        mb.add_op("DEPTHWISE_CONV_2D", [x, wt, bias], [y],
                  {"padding": "SAME", "stride_h": stride, "stride_w": stride,
                   "depth_multiplier": c // cin, "activation": act_fn})
        mb_shapes[y] = shape_out
        return y

    mb_shapes: dict[int, tuple[int, ...]] = {}
    shape = (1, 21, 19, 1)
    x = act(shape, 0.05, -3)
    mb_shapes[x] = shape
    t = dw(x, (1, 11, 10, 12), (10, 8), 2, 0.08, 2)
    t = dw(t, (1, 11, 10, 12), (5, 5), 1, 0.3, -1, "RELU6")
    t = dw(t, (1, 6, 5, 12), (7, 7), 2, 0.5, 4)
    pw = mb.add_tensor(TensorSpec((16, 1, 1, 12), scale=_scales(rng, 16, True),
                                  zero_point=[0] * 16, axis=0,
                                  data=rng.integers(-127, 128, (16, 1, 1, 12))))
    u = act((1, 6, 5, 16), 0.2, -7)
    mb.add_op("CONV_2D", [t, pw, -1], [u], {"padding": "VALID"})
    mb_shapes[u] = (1, 6, 5, 16)
    t = dw(u, (1, 3, 3, 16), (3, 3), 2, 0.3, 1)
    t = dw(t, (1, 2, 2, 16), (5, 5), 2, 0.4, 0)
    t = dw(t, (1, 2, 2, 16), (3, 5), 1, 1e-4, 3)
    return mb.build([x], [t]), shape


@pytest.mark.skipif(not qemu.toolchain_available(),
                    reason="arm-none-eabi-gcc / qemu-system-arm not installed")
def test_depthwise_stack_on_cortex_m7_portable_and_dsp(tmp_path):
    rng = _rng("dw_stack")
    model, shape = _dw_stack_model(rng)
    d = tmp_path / "dws"
    convert_model(model, d, name="dws")
    src = (d / "dws.c").read_text()
    assert "mcu_depthwise_conv2d_direct_s8(" not in src
    assert "mcu_depthwise_conv2d_c1_s8(" in src or "mcu_depthwise_conv2d_c1g4_s8(" in src
    assert "mcu_depthwise_conv2d_hwc_s8(" in src  # the 2x2 maps' layers
    ref = TflmModel(model)
    samples = _inputs(rng, shape, n=3)
    want = [ref.run(s)[0] for s in samples]
    host = HostModel(d, "dws")
    for s, w in zip(samples, want):
        assert np.array_equal(host.run(s)[0], w)
    counts = {}
    for dsp in (False, True):
        res = qemu.run_on_qemu(d, "dws", samples, cpu="cortex-m7", dsp=dsp)
        for got, w in zip(res.outputs, want):
            assert np.array_equal(got[0], w), f"dsp={dsp}"
        counts[dsp] = res.instructions_per_invoke[0]
    assert counts[True] < counts[False]


def test_depthwise_stack_is_sanitizer_clean(tmp_path):
    """The plane loops read no byte outside the plane (address sanitizer on the host)."""
    rng = _rng("dw_stack_san")
    model, shape = _dw_stack_model(rng)
    d = tmp_path / "dws"
    convert_model(model, d, name="dws")
    ours, ref = HostModel(d, "dws", sanitize=True), TflmModel(model)
    samples = _inputs(rng, shape, n=2)
    for got, sample in zip(ours.run_many(samples), samples):
        assert np.array_equal(got[0], ref.run(sample)[0])
