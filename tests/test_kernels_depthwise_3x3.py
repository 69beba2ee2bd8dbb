"""The short-requantisation 3x3 depthwise loops (DSP build) against TFLite Micro.

engine/kernels/depthwise_conv2d.c runs 3x3 stride-1 / stride-2 channels whose accumulators are
provably small (mcu_dw_rqs_usable) with a five-instruction requantisation built on SMMLAR
(mcu_dw_rqs_apply) and an SSAT-only clamp when the activation range is all of int8. Those
loops exist only in the DSP build, so the model test runs on the Cortex-M7 under QEMU; the
arithmetic identity they rely on is checked here in numpy against TFLite's two roundings.
"""
from __future__ import annotations

import numpy as np
import pytest

from engine import qemu
from engine.tflm import TflmModel
from tests.test_kernels_conv import _inputs, _rng, _scales
from tests.tflite_builder import ModelBuilder, TensorSpec
from tflite_converter import opspec
from tflite_converter.codegen.generate import convert_model

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


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


def _smmlar_requantize(acc: np.ndarray, mult: int, shift: int, zp: int) -> np.ndarray:
    """mcu_dw_rqs_apply as the DSP build computes it: SMMLAR(2*acc, m, add + (acc >> 31)) >> e,
    every intermediate checked to stay inside int32."""
    e = -shift
    add = zp * (1 << e) + (1 << (e - 1)) + (acc >> 31)
    two = acc * 2
    assert two.min() >= INT32_MIN and two.max() <= INT32_MAX
    s = ((two.astype(object) * mult + (1 << 31)) >> 32) + add
    s = s.astype(np.int64)
    assert s.min() >= INT32_MIN and s.max() <= INT32_MAX
    return s >> e


@pytest.mark.parametrize("shift", [-1, -2, -7, -13, -22])
def test_smmlar_requantisation_is_tflites(shift: int):
    """Over the range mcu_dw_rqs_usable admits (|acc| < 2^29, 1 <= e <= 22), with random and
    tie-making accumulators, both multiplier ends and extreme zero points."""
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
            assert np.array_equal(_smmlar_requantize(acc, mult, shift, zp), want), (mult, zp)


def _dw3_stack(rng: np.random.Generator) -> tuple[bytes, tuple[int, ...]]:
    """1x1 conv -> a chain of in-place 3x3 depthwise layers covering the short loops' cases:
    stride 1 with an odd width and a ReLU6 range narrower than int8 (the clamp after SSAT),
    stride 2 SAME and VALID down to a one-column map, a per-tensor layer, a bias too large
    for the short requantisation (the old loops take it) and unequal strides."""
    mb = ModelBuilder()
    shapes: dict[int, tuple[int, ...]] = {}

    def act(shape, scale, zp):
        t = mb.add_tensor(TensorSpec(shape, scale=scale, zero_point=zp))
        shapes[t] = shape
        return t

    def dw(x, out_hw, stride, scale_out, zp_out, padding="SAME", act_fn="NONE",
           per_channel=True, bias_range=3000):
        c = shapes[x][3]
        n_q = c if per_channel else 1
        wt = mb.add_tensor(TensorSpec((1, 3, 3, c), scale=_scales(rng, n_q, per_channel),
                                      zero_point=[0] * n_q, axis=3,
                                      data=rng.integers(-127, 128, (1, 3, 3, c))))
        bias = mb.add_tensor(TensorSpec((c,), "int32", scale=[1e-5] * n_q, zero_point=[0] * n_q,
                                        axis=0, data=rng.integers(-bias_range, bias_range, c)))
        y = act((1, *out_hw, c), scale_out, zp_out)
        mb.add_op("DEPTHWISE_CONV_2D", [x, wt, bias], [y],
                  {"padding": padding, "stride_h": stride[0], "stride_w": stride[1],
                   "depth_multiplier": 1, "activation": act_fn})
        return y

    shape = (1, 11, 9, 6)
    x = act(shape, 0.05, -2)
    pw = mb.add_tensor(TensorSpec((6, 1, 1, 6), scale=0.01, zero_point=0,
                                  data=rng.integers(-127, 128, (6, 1, 1, 6))))
    t = act(shape, 0.08, -5)
    mb.add_op("CONV_2D", [x, pw, -1], [t], {"padding": "VALID"})
    t = dw(t, (11, 9), (1, 1), 0.03, -128, act_fn="RELU6")  # act_max -128 + 200 -> 72
    t = dw(t, (6, 5), (2, 2), 0.2, 4)
    t = dw(t, (6, 5), (1, 1), 0.3, -3, per_channel=False)
    t = dw(t, (3, 3), (2, 2), 0.3, 0)
    t = dw(t, (1, 1), (2, 2), 0.4, 1, padding="VALID")
    u = dw(t, (1, 1), (1, 1), 0.4, 2)  # a single output, stride 1
    return mb.build([x], [u]), shape


def _dw3_wide(rng: np.random.Generator) -> tuple[bytes, tuple[int, ...]]:
    """Wider maps: even widths (pairs only), unequal strides and a bias past the short path's
    bound (the older loops)."""
    mb = ModelBuilder()
    shapes: dict[int, tuple[int, ...]] = {}

    def act(shape, scale, zp):
        t = mb.add_tensor(TensorSpec(shape, scale=scale, zero_point=zp))
        shapes[t] = shape
        return t

    def dw(x, out_hw, stride, scale_out, zp_out, bias_range=3000):
        c = shapes[x][3]
        wt = mb.add_tensor(TensorSpec((1, 3, 3, c), scale=_scales(rng, c, True),
                                      zero_point=[0] * c, axis=3,
                                      data=rng.integers(-127, 128, (1, 3, 3, c))))
        bias = mb.add_tensor(TensorSpec((c,), "int32", scale=[1e-5] * c, zero_point=[0] * c,
                                        axis=0, data=rng.integers(-bias_range, bias_range, c)))
        y = act((1, *out_hw, c), scale_out, zp_out)
        mb.add_op("DEPTHWISE_CONV_2D", [x, wt, bias], [y],
                  {"padding": "SAME", "stride_h": stride[0], "stride_w": stride[1],
                   "depth_multiplier": 1, "activation": "NONE"})
        return y

    shape = (1, 16, 20, 4)
    x = act(shape, 0.05, 7)
    pw = mb.add_tensor(TensorSpec((4, 1, 1, 4), scale=0.01, zero_point=0,
                                  data=rng.integers(-127, 128, (4, 1, 1, 4))))
    t = act(shape, 0.08, 3)
    mb.add_op("CONV_2D", [x, pw, -1], [t], {"padding": "VALID"})
    t = dw(t, (16, 20), (1, 1), 0.25, -1)
    t = dw(t, (8, 10), (2, 2), 0.3, 5)
    t = dw(t, (8, 10), (1, 1), 0.3, 2)
    t = dw(t, (4, 10), (2, 1), 0.3, -2)
    t = dw(t, (4, 5), (1, 2), 0.3, 6)
    # a second output: a layer whose bias is past 2^29 (the old loops); its outputs are
    # mostly the bias, which would hide the layers before it were it in the chain
    u = dw(t, (4, 5), (1, 1), 40.0, 6, bias_range=2 ** 30)
    return mb.build([x], [t, u]), shape


@pytest.mark.skipif(not qemu.toolchain_available(),
                    reason="arm-none-eabi-gcc / qemu-system-arm not installed")
@pytest.mark.parametrize("builder, planes", [(_dw3_stack, 4), (_dw3_wide, 4)],
                         ids=["small_maps", "wide_maps"])
def test_short_3x3_loops_on_cortex_m7_dsp(builder, planes, tmp_path, monkeypatch):
    # the plane kernel on every layer, whatever the cost model prefers for small maps
    monkeypatch.setattr(opspec, "depthwise_prefers_hwc", lambda g, op: False)
    rng = _rng(builder.__name__)
    model, shape = builder(rng)
    d = tmp_path / "dw3"
    convert_model(model, d, name="dw3")
    src = (d / "dw3.c").read_text()
    # the layers the planner runs in place take the plane kernel (the rest the group kernel)
    assert src.count("mcu_depthwise_conv2d_s8(") == planes
    ref = TflmModel(model)
    samples = _inputs(rng, shape, n=3)
    want = [ref.run(s) for s in samples]
    res = qemu.run_on_qemu(d, "dw3", samples, cpu="cortex-m7", dsp=True)
    for got, w in zip(res.outputs, want):
        assert len(got) == len(w)
        for g, x in zip(got, w):
            assert np.array_equal(g, x)
