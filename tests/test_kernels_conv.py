"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED kernels against TFLite Micro.

Each case is a .tflite model built without TensorFlow (tests/tflite_builder.py) with random
weights, scales and zero points, converted to C by the converter, compiled for the host, and
fed the same input bytes as the PyPI TFLM interpreter: the output bytes must be identical.
A chain of all three kernels also runs on the Cortex-M7 under QEMU, portable and DSP builds.
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Optional

import numpy as np
import pytest

from engine import qemu
from engine.host import HostModel, have_compiler
from engine.tflm import TflmModel
from tests.tflite_builder import ModelBuilder, TensorSpec, build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.ir import Padding, conv_output_size

pytestmark = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")
N_SAMPLES = 4


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


@dataclasses.dataclass(frozen=True)
class ConvCase:
    name: str
    in_shape: tuple[int, int, int, int]
    out_c: int  # depthwise: the depth multiplier is out_c // in_c
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    activation: str = "NONE"
    per_channel: bool = True
    bias: bool = True
    zp_in: int = -5
    zp_out: int = 3
    out_scale: Optional[float] = None  # None: chosen so outputs use the int8 range


def _out_hw(c: ConvCase) -> tuple[int, int]:
    pad = Padding(c.padding)
    return (conv_output_size(c.in_shape[1], c.kernel[0], c.stride[0], c.dilation[0], pad),
            conv_output_size(c.in_shape[2], c.kernel[1], c.stride[1], c.dilation[1], pad))


def _scales(rng: np.random.Generator, n: int, per_channel: bool) -> list[float]:
    s = rng.uniform(0.002, 0.02, n if per_channel else 1).astype(np.float32)
    return [float(v) for v in s]


def _conv_tensors(c: ConvCase, depthwise: bool, rng: np.random.Generator):
    n, h, w, cin = c.in_shape
    kh, kw = c.kernel
    in_scale = float(np.float32(rng.uniform(0.01, 0.1)))
    wshape = (1, kh, kw, c.out_c) if depthwise else (c.out_c, kh, kw, cin)
    weights = rng.integers(-127, 128, wshape).astype(np.int8)
    ws = _scales(rng, c.out_c, c.per_channel)
    axis = 3 if depthwise else 0
    wspec = (TensorSpec(wshape, scale=ws, zero_point=[0] * len(ws), axis=axis, data=weights)
             if c.per_channel else TensorSpec(wshape, scale=ws[0], zero_point=0, data=weights))
    taps = kh * kw * (1 if depthwise else cin)
    # an output scale that spreads typical accumulators over the int8 range
    out_scale = c.out_scale or float(in_scale * np.mean(ws) * 60.0 * np.sqrt(taps) / 20.0)
    bspec = None
    if c.bias:
        bscale = [in_scale * s for s in ws]
        bias = rng.integers(-3000, 3000, c.out_c).astype(np.int32)
        bspec = (TensorSpec((c.out_c,), "int32", scale=bscale, zero_point=[0] * len(bscale),
                            axis=0, data=bias) if c.per_channel else
                 TensorSpec((c.out_c,), "int32", scale=bscale[0], zero_point=0, data=bias))
    oh, ow = _out_hw(c)
    x = TensorSpec(c.in_shape, scale=in_scale, zero_point=c.zp_in)
    y = TensorSpec((n, oh, ow, c.out_c), scale=out_scale, zero_point=c.zp_out)
    return x, wspec, bspec, y


def _conv_options(c: ConvCase, depthwise: bool) -> dict:
    opts = {"padding": c.padding, "stride_h": c.stride[0], "stride_w": c.stride[1],
            "dilation_h_factor": c.dilation[0], "dilation_w_factor": c.dilation[1],
            "activation": c.activation}
    if depthwise:
        opts["depth_multiplier"] = c.out_c // c.in_shape[3]
    return opts


def _inputs(rng: np.random.Generator, shape, n: int = N_SAMPLES) -> list[list[np.ndarray]]:
    """Random samples plus the two extremes (saturation of every product)."""
    out = [[rng.integers(-128, 128, shape).astype(np.int8)] for _ in range(n)]
    out.append([np.full(shape, 127, np.int8)])
    out.append([np.full(shape, -128, np.int8)])
    return out


def _convert(model: bytes, tmp_path, name: str = "m") -> str:
    d = tmp_path / name
    convert_model(model, d, name=name)
    return str(d)


def _assert_matches_tflm(model: bytes, tmp_path, rng, shape, name: str = "m") -> str:
    d = _convert(model, tmp_path, name)
    ours, ref = HostModel(d, name), TflmModel(model)
    for sample in _inputs(rng, shape):
        got, want = ours.run(sample)[0], ref.run(sample)[0]
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want), (
            f"{int(np.sum(got != want))} of {got.size} bytes differ, "
            f"max |diff| {int(np.abs(got.astype(int) - want.astype(int)).max())}")
    return (tmp_path / name / f"{name}.c").read_text()


# ---------------------------------------------------------------------------------------------
# CONV_2D

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


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.name)
def test_conv2d_matches_tflm(case: ConvCase, tmp_path):
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, False, rng)
    model = build_single_op_model("CONV_2D", [x, w, b], [y], _conv_options(case, False))
    src = _assert_matches_tflm(model, tmp_path, rng, case.in_shape)
    pointwise = case.kernel == (1, 1) and _out_hw(case) == (
        (case.in_shape[1] - 1) // case.stride[0] + 1, (case.in_shape[2] - 1) // case.stride[1] + 1)
    assert ("mcu_conv2d_1x1_" in src) == pointwise


# ---------------------------------------------------------------------------------------------
# DEPTHWISE_CONV_2D

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


@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: c.name)
def test_depthwise_matches_tflm(case: ConvCase, tmp_path):
    rng = _rng(case.name)
    x, w, b, y = _conv_tensors(case, True, rng)
    # without bias the op gets two inputs: TFLM's depthwise crashes on an omitted (-1) third
    inputs = [x, w] if b is None else [x, w, b]
    model = build_single_op_model("DEPTHWISE_CONV_2D", inputs, [y], _conv_options(case, True))
    _assert_matches_tflm(model, tmp_path, rng, case.in_shape)


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
    _, dw_w, dw_b, y_spec = _conv_tensors(case, True, rng)
    dw = mb.add_tensor(dw_w)
    y = mb.add_tensor(y_spec)
    dw_inputs = [mid, dw] if dw_b is None else [mid, dw, mb.add_tensor(dw_b)]
    mb.add_op("DEPTHWISE_CONV_2D", dw_inputs, [y], _conv_options(case, True))
    return mb.build([x], [y])


@pytest.mark.parametrize("case", [
    ConvCase("inplace_dw3_s1", (1, 8, 8, 6), 6, zp_in=9),
    ConvCase("inplace_dw3_s2", (1, 9, 10, 5), 5, stride=(2, 2), activation="RELU6"),
    ConvCase("inplace_dw5_valid", (1, 9, 9, 4), 4, kernel=(5, 5), padding="VALID"),
    ConvCase("inplace_dw3_dilated", (1, 7, 8, 3), 3, dilation=(2, 2)),
], ids=lambda c: c.name)
def test_inplace_depthwise_matches_tflm(case: ConvCase, tmp_path):
    rng = _rng(case.name)
    model = _pointwise_then_depthwise(case, rng)
    src = _assert_matches_tflm(model, tmp_path, rng, case.in_shape)
    assert "mcu_depthwise_conv2d_s8(" in src, "the planner did not run the depthwise in place"


# ---------------------------------------------------------------------------------------------
# FULLY_CONNECTED


@dataclasses.dataclass(frozen=True)
class FcCase:
    name: str
    in_shape: tuple[int, ...]
    units: int
    per_channel: bool = False
    bias: bool = True
    keep_num_dims: bool = False
    activation: str = "NONE"
    zp_in: int = 7
    zp_out: int = -4


FC_CASES = [
    FcCase("fc_basic", (1, 64), 10),
    FcCase("fc_odd_depth", (1, 37), 7, activation="RELU"),
    FcCase("fc_batch3", (3, 20), 5, zp_in=-128),
    FcCase("fc_no_bias", (1, 16), 4, bias=False),
    FcCase("fc_4d_input", (1, 2, 3, 8), 6),
    FcCase("fc_keep_num_dims", (2, 3, 12), 5, keep_num_dims=True),
    FcCase("fc_per_channel", (2, 24), 6, per_channel=True, activation="RELU6"),
    FcCase("fc_single", (1, 1), 1),
]


@pytest.mark.parametrize("case", FC_CASES, ids=lambda c: c.name)
def test_fully_connected_matches_tflm(case: FcCase, tmp_path):
    rng = _rng(case.name)
    depth = case.in_shape[-1]
    rows = int(np.prod(case.in_shape)) // depth
    in_scale = float(np.float32(rng.uniform(0.01, 0.1)))
    ws = _scales(rng, case.units, case.per_channel)
    weights = rng.integers(-127, 128, (case.units, depth)).astype(np.int8)
    wspec = (TensorSpec((case.units, depth), scale=ws, zero_point=[0] * len(ws), axis=0,
                        data=weights) if case.per_channel else
             TensorSpec((case.units, depth), scale=ws[0], zero_point=0, data=weights))
    bspec = None
    if case.bias:
        bscale = [in_scale * s for s in ws]
        bias = rng.integers(-3000, 3000, case.units).astype(np.int32)
        bspec = (TensorSpec((case.units,), "int32", scale=bscale, zero_point=[0] * len(bscale),
                            axis=0, data=bias) if case.per_channel else
                 TensorSpec((case.units,), "int32", scale=bscale[0], zero_point=0, data=bias))
    out_shape = (*case.in_shape[:-1], case.units) if case.keep_num_dims else (rows, case.units)
    out_scale = float(in_scale * np.mean(ws) * 60.0 * np.sqrt(depth) / 20.0)
    model = build_single_op_model(
        "FULLY_CONNECTED",
        [TensorSpec(case.in_shape, scale=in_scale, zero_point=case.zp_in), wspec, bspec],
        [TensorSpec(out_shape, scale=out_scale, zero_point=case.zp_out)],
        {"activation": case.activation, "keep_num_dims": case.keep_num_dims})
    _assert_matches_tflm(model, tmp_path, rng, case.in_shape)


# ---------------------------------------------------------------------------------------------
# Refusals name the op


def test_grouped_convolution_is_refused_with_op_name(tmp_path):
    from tflite_converter.errors import ConversionError

    rng = _rng("grouped")
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
# Cortex-M7 under QEMU: portable and DSP builds give TFLM's bytes


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
    mb.add_op("CONV_2D", [x, const((10, 3, 3, 3), _scales(rng, 10, True), 0), -1], [t1],
              {"padding": "SAME", "stride_h": 2, "stride_w": 2, "activation": "RELU6"})
    t2 = act((1, 9, 9, 10), 0.05, 5)
    mb.add_op("DEPTHWISE_CONV_2D", [t1, const((1, 3, 3, 10), _scales(rng, 10, True), 3),
                                    const((10,), [1e-4] * 10, 0, "int32")], [t2],
              {"padding": "SAME", "depth_multiplier": 1})
    t3 = act((1, 9, 9, 13), 0.1, 0)
    mb.add_op("CONV_2D", [t2, const((13, 1, 1, 10), _scales(rng, 13, True), 0), -1], [t3],
              {"padding": "VALID"})
    t4 = act((1, 5, 5, 13), 0.1, 1)
    mb.add_op("DEPTHWISE_CONV_2D", [t3, const((1, 5, 5, 13), _scales(rng, 13, True), 3)],
              [t4], {"padding": "SAME", "stride_h": 2, "stride_w": 2, "depth_multiplier": 1})
    t5 = act((1, 3, 3, 6), 0.2, -3)
    mb.add_op("CONV_2D", [t4, const((6, 3, 3, 13), _scales(rng, 6, True), 0), -1], [t5],
              {"padding": "VALID", "activation": "RELU"})
    t6 = act((1, 54), 0.2, -3)
    mb.add_op("RESHAPE", [t5], [t6], None)
    y = act((1, 7), 0.3, 2)
    mb.add_op("FULLY_CONNECTED", [t6, const((7, 54), [0.01], None), -1], [y], None)
    return mb.build([x], [y]), (1, 18, 17, 3)


needs_arm = pytest.mark.skipif(not qemu.toolchain_available(),
                               reason="arm-none-eabi-gcc / qemu-system-arm not installed")


@needs_arm
def test_chain_on_cortex_m7_portable_and_dsp(tmp_path):
    rng = _rng("chain")
    model, shape = _chain_model(rng)
    d = _convert(model, tmp_path, "chain")
    ref = TflmModel(model)
    samples = _inputs(rng, shape, n=3)
    want = [ref.run(s)[0] for s in samples]
    host = HostModel(d, "chain")
    counts = {}
    for dsp in (False, True):
        res = qemu.run_on_qemu(d, "chain", samples, cpu="cortex-m7", dsp=dsp)
        for got, w in zip(res.outputs, want):
            assert np.array_equal(got[0], w), f"dsp={dsp}"
        counts[dsp] = res.instructions_per_invoke[0]
    for s, w in zip(samples, want):
        assert np.array_equal(host.run(s)[0], w)
    # the dual-MAC paths must pay for themselves even on this small model
    assert counts[True] < counts[False]


def test_chain_and_direct_depthwise_are_sanitizer_clean(tmp_path):
    """-fsanitize=address,undefined on every kernel path: the chain (im2col, 1x1, in-place
    depthwise, FC) and a dilated, strided direct depthwise whose taps leave the image."""
    rng = _rng("sanitize")
    model, shape = _chain_model(rng)
    case = ConvCase("san_dw", (1, 7, 6, 5), 10, kernel=(3, 3), stride=(2, 1), dilation=(2, 2))
    x, w, b, y = _conv_tensors(case, True, rng)
    dw_model = build_single_op_model("DEPTHWISE_CONV_2D", [x, w, b], [y],
                                     _conv_options(case, True))
    for name, m, shp in (("chain", model, shape), ("dw", dw_model, case.in_shape)):
        d = _convert(m, tmp_path, name)
        ours, ref = HostModel(d, name, sanitize=True), TflmModel(m)
        samples = _inputs(rng, shp, n=2)
        for got, sample in zip(ours.run_many(samples), samples):
            assert np.array_equal(got[0], ref.run(sample)[0])
