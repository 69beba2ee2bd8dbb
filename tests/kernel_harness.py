"""The shared harness of the kernel tests (tests/test_kernel_<name>.py, one per
engine/kernels/<name>.c), in the manner of TFLM's kernel_runner.

A kernel test builds a .tflite model of one op (or a short chain) without TensorFlow
(tests/tflite_builder.py) with random weights, scales and zero points, converts it to C
(`convert`), compiles it for the host (engine.host.HostModel) or for the Cortex-M7 under QEMU
(engine.qemu), feeds it the same input bytes as the PyPI TFLM interpreter and requires the
output bytes to be identical:

- `assert_host_matches_tflm`: given input samples (seeded, plus the int8 extremes);
- `assert_host_matches_tflm_on_random_inputs`: inputs drawn from the model's own input
  details (any dtype);
- `assert_cortex_m7_matches`: the portable and the DSP build on the emulated Cortex-M7.

Also here: seeded random generators (`seeded_rng`), random quantization parameters
(`random_scales`, `random_qspec`), the CONV_2D / DEPTHWISE_CONV_2D case description and its
tensors (`ConvCase`, `conv_tensors`, `conv_options`, `conv_model`), the broadcasting binary-op
model (`broadcast_binary_model`), the reduction cases (`REDUCTIONS`, `reduced_shape`), a
stand-in for the emitters' EmitContext (`RecordingContext`) and the numpy model of the SMMLAR
requantisation the matrix and depthwise kernels share (`smmlar_requantize`).
"""
from __future__ import annotations

import dataclasses
import pathlib
import zlib
from typing import Optional, Sequence

import numpy as np
import pytest

from engine import qemu
from engine.host import HostModel, have_compiler
from engine.tflm import TflmModel
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.ir import Padding, conv_output_size

# Random input samples per model (the harness adds the two int8 extremes to these).
N_SAMPLES = 4

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1

needs_host_compiler = pytest.mark.skipif(not have_compiler(), reason="no host C compiler")
needs_cortex_m7 = pytest.mark.skipif(not qemu.toolchain_available(),
                                     reason="arm-none-eabi-gcc / qemu-system-arm not installed")


# ---------------------------------------------------------------------------------------------
# Random data and quantization parameters


def seeded_rng(name: str) -> np.random.Generator:
    """A generator seeded from a case name (CRC-32): the same data on every run and machine."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def random_scales(rng: np.random.Generator, n: int, per_channel: bool) -> list[float]:
    """Weight scales in [0.002, 0.02] as float32 values: n of them, or one if per tensor."""
    s = rng.uniform(0.002, 0.02, n if per_channel else 1).astype(np.float32)
    return [float(v) for v in s]


def random_qspec(rng: np.random.Generator, shape, dtype: str = "int8", **kw) -> TensorSpec:
    """An activation tensor with a random scale in [e^-5, 1] and a random zero point of its
    dtype (int8 or uint8)."""
    return TensorSpec(shape, dtype, scale=float(np.exp(rng.uniform(-5, 0))),
                      zero_point=int(rng.integers(-128, 128)) if dtype == "int8" else int(rng.integers(0, 256)), **kw)


def const_int32(values, shape=None) -> TensorSpec:
    """A constant int32 operand (axes, paddings, permutations, sizes...)."""
    arr = np.asarray(values, dtype=np.int32)
    return TensorSpec(arr.shape if shape is None else shape, "int32", data=arr)


def random_int8_samples(rng: np.random.Generator, shape, n: int = N_SAMPLES) -> list[list[np.ndarray]]:
    """Samples for a one-input int8 model: n random ones plus the two extremes (all 127, all
    -128: saturation of every product)."""
    out = [[rng.integers(-128, 128, shape).astype(np.int8)] for _ in range(n)]
    out.append([np.full(shape, 127, np.int8)])
    out.append([np.full(shape, -128, np.int8)])
    return out


def random_model_inputs(model: TflmModel, rng: np.random.Generator) -> list[np.ndarray]:
    """One sample for every input of the model, after its input details: float32 normal
    (times 3), integers over their dtype's whole range."""
    out = []
    for i in range(model.num_inputs):
        d = model.input_details(i)
        shape, dtype = tuple(d["shape"]), np.dtype(d["dtype"])
        if dtype == np.float32:
            out.append((rng.standard_normal(shape) * 3).astype(np.float32))
        else:
            info = np.iinfo(dtype)
            out.append(np.asarray(rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True),
                                  dtype=dtype).reshape(shape))
    return out


# ---------------------------------------------------------------------------------------------
# CONV_2D / DEPTHWISE_CONV_2D cases


@dataclasses.dataclass(frozen=True)
class ConvCase:
    """One CONV_2D or DEPTHWISE_CONV_2D layer; its name seeds its random data."""

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


def conv_output_hw(c: ConvCase) -> tuple[int, int]:
    """The layer's output height and width (TFLite's padding rules)."""
    pad = Padding(c.padding)
    return (conv_output_size(c.in_shape[1], c.kernel[0], c.stride[0], c.dilation[0], pad),
            conv_output_size(c.in_shape[2], c.kernel[1], c.stride[1], c.dilation[1], pad))


def weight_and_bias_specs(rng: np.random.Generator, wshape: tuple[int, ...], axis: int,
                          in_scale: float, per_channel: bool, with_bias: bool
                          ) -> tuple[TensorSpec, Optional[TensorSpec], list[float]]:
    """Random int8 weights of `wshape` (channels along `axis`) with per-channel or per-tensor
    scales, and an int32 bias (scale in_scale * weight scale) or None: (weights, bias, the
    weight scales)."""
    channels = wshape[axis]
    weights = rng.integers(-127, 128, wshape).astype(np.int8)
    ws = random_scales(rng, channels, per_channel)
    wspec = (TensorSpec(wshape, scale=ws, zero_point=[0] * len(ws), axis=axis, data=weights)
             if per_channel else TensorSpec(wshape, scale=ws[0], zero_point=0, data=weights))
    bspec = None
    if with_bias:
        bscale = [in_scale * s for s in ws]
        bias = rng.integers(-3000, 3000, channels).astype(np.int32)
        bspec = (TensorSpec((channels,), "int32", scale=bscale, zero_point=[0] * len(bscale),
                            axis=0, data=bias) if per_channel else
                 TensorSpec((channels,), "int32", scale=bscale[0], zero_point=0, data=bias))
    return wspec, bspec, ws


def conv_tensors(c: ConvCase, depthwise: bool, rng: np.random.Generator):
    """(input, weights, bias or None, output) TensorSpecs of the layer: random int8 weights,
    per-channel or per-tensor scales, int32 bias, and an output scale that spreads typical
    accumulators over the int8 range (unless the case fixes it)."""
    n, h, w, cin = c.in_shape
    kh, kw = c.kernel
    in_scale = float(np.float32(rng.uniform(0.01, 0.1)))
    wshape = (1, kh, kw, c.out_c) if depthwise else (c.out_c, kh, kw, cin)
    wspec, bspec, ws = weight_and_bias_specs(rng, wshape, 3 if depthwise else 0, in_scale,
                                             c.per_channel, c.bias)
    taps = kh * kw * (1 if depthwise else cin)
    # an output scale that spreads typical accumulators over the int8 range
    out_scale = c.out_scale or float(in_scale * np.mean(ws) * 60.0 * np.sqrt(taps) / 20.0)
    oh, ow = conv_output_hw(c)
    x = TensorSpec(c.in_shape, scale=in_scale, zero_point=c.zp_in)
    y = TensorSpec((n, oh, ow, c.out_c), scale=out_scale, zero_point=c.zp_out)
    return x, wspec, bspec, y


def conv_options(c: ConvCase, depthwise: bool) -> dict:
    """The builtin options of the layer (padding, strides, dilation, activation, multiplier)."""
    opts = {"padding": c.padding, "stride_h": c.stride[0], "stride_w": c.stride[1],
            "dilation_h_factor": c.dilation[0], "dilation_w_factor": c.dilation[1],
            "activation": c.activation}
    if depthwise:
        opts["depth_multiplier"] = c.out_c // c.in_shape[3]
    return opts


def conv_model(c: ConvCase, depthwise: bool, rng: np.random.Generator) -> bytes:
    """The one-op CONV_2D or DEPTHWISE_CONV_2D model of the case. A CONV_2D without bias gets
    an absent (-1) third operand; a DEPTHWISE_CONV_2D without bias gets two operands (TFLM's
    depthwise crashes on an omitted third)."""
    x, w, b, y = conv_tensors(c, depthwise, rng)
    if depthwise:
        inputs = [x, w] if b is None else [x, w, b]
        return build_single_op_model("DEPTHWISE_CONV_2D", inputs, [y], conv_options(c, True))
    return build_single_op_model("CONV_2D", [x, w, b], [y], conv_options(c, False))


# ---------------------------------------------------------------------------------------------
# Binary element-wise ops with broadcasting (ADD, SUB, MUL, MAXIMUM, MINIMUM)

BINARY_BROADCAST_SHAPES = [
    ((1, 5, 5, 3), (1, 5, 5, 3)),
    ((1, 4, 4, 7), (1, 1, 1, 7)),
    ((1, 3, 1, 5), (1, 1, 4, 1)),
    ((1, 1, 1, 1), (1, 1, 1, 1)),
    ((2, 3, 5), (5,)),
    ((1, 6, 6, 9), (1,)),
]


def binary_shapes_id(shapes) -> str:
    """Test id of a BINARY_BROADCAST_SHAPES entry: '<a shape>x<b shape>'."""
    return f"{shapes[0]}x{shapes[1]}"


def broadcast_binary_model(op: str, shapes) -> bytes:
    """A one-op binary model over the two (broadcasting) input shapes with random
    quantization. MAXIMUM / MINIMUM share the first input's quantization (TFLM requires it);
    the others get their own output quantization and a random fused activation. Seeded
    from the op and shapes: the same model on every run (the seed used to be Python's
    per-process randomised hash() of them, a different model each run)."""
    rng = seeded_rng(f"{op} {shapes}")
    a_shape, b_shape = shapes
    out_shape = np.broadcast_shapes(a_shape, b_shape)
    a, b = random_qspec(rng, a_shape), random_qspec(rng, b_shape)
    if op in ("MAXIMUM", "MINIMUM"):
        b = TensorSpec(b_shape, scale=a.scale, zero_point=a.zero_point)
        o = TensorSpec(out_shape, scale=a.scale, zero_point=a.zero_point)
        opts = None
    else:
        o = random_qspec(rng, out_shape)
        opts = {"activation": str(rng.choice(["NONE", "RELU", "RELU6"]))}
    return build_single_op_model(op, [a, b], [o], options=opts)


# ---------------------------------------------------------------------------------------------
# Reductions (MEAN, SUM, REDUCE_MAX, REDUCE_MIN)

REDUCTIONS = [  # (shape, axes, keep_dims): spatial, channel, batch, 1x1 and 2-D full
    ((1, 7, 7, 5), (1, 2), True),
    ((1, 7, 7, 5), (1, 2), False),
    ((1, 3, 4, 6), (3,), False),
    ((2, 3, 4, 5), (0, 2), True),
    ((1, 1, 1, 9), (1, 2), False),
    ((4, 6), (0, 1), False),
]


def reduced_shape(shape, axes, keep_dims: bool) -> tuple[int, ...]:
    """The output shape of a reduction over `axes` (negative ones count from the end)."""
    axes = {a % len(shape) for a in axes}
    return (tuple(1 if k in axes else d for k, d in enumerate(shape)) if keep_dims else
            tuple(d for k, d in enumerate(shape) if k not in axes))


# ---------------------------------------------------------------------------------------------
# Converting and running


def convert(model: bytes, tmp_path: pathlib.Path, name: str = "m") -> pathlib.Path:
    """Convert the model to C in tmp_path/name (the files name.c / name.h). The graph input
    is kept intact (overwrite_input=False), so a single-op model runs its op's out-of-place
    kernel: the in-place kernels are tested on purpose, by the tests that ask for them."""
    d = pathlib.Path(tmp_path) / name
    convert_model(model, d, name=name, overwrite_input=False)
    return d


def generated_source(model_dir: pathlib.Path, name: str = "m") -> str:
    """The generated model source (to check which kernels the emitters chose)."""
    return (pathlib.Path(model_dir) / f"{name}.c").read_text()


def tflm_outputs(model: bytes, samples: Sequence[Sequence[np.ndarray]],
                 arena_size: Optional[int] = None) -> list[list[np.ndarray]]:
    """TFLM's outputs (all of them) for every sample."""
    ref = TflmModel(model, arena_size=arena_size)
    return [ref.run(s) for s in samples]


def assert_same_outputs(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> None:
    """Byte-identical outputs: same count, and for each the same dtype, shape and values."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert np.array_equal(g, w), (
            f"{int(np.sum(g != w))} of {g.size} bytes differ, "
            f"max |diff| {int(np.abs(g.astype(int) - w.astype(int)).max())}")


def assert_host_matches_tflm(model: bytes, tmp_path, rng: np.random.Generator, shape,
                             name: str = "m", arena_size: Optional[int] = None,
                             n: int = N_SAMPLES) -> str:
    """Convert, compile for the host, run `random_int8_samples(rng, shape, n)` through ours and
    TFLM and require identical outputs; returns the generated source."""
    d = convert(model, tmp_path, name)
    ours, ref = HostModel(d, name), TflmModel(model, arena_size=arena_size)
    for sample in random_int8_samples(rng, shape, n):
        assert_same_outputs(ours.run(sample), ref.run(sample))
    return generated_source(d, name)


def assert_host_matches_tflm_on_random_inputs(model: bytes, tmp_path, seed: int = 0,
                                              samples: int = N_SAMPLES) -> None:
    """Convert into tmp_path/gen, compile for the host and compare every output with TFLM's
    on `samples` batches of `random_model_inputs` (any input dtype)."""
    ref = TflmModel(model)
    out_dir = tmp_path / "gen"
    convert_model(model, out_dir, name="m")
    ours = HostModel(out_dir, "m")
    rng = np.random.default_rng(seed)
    batches = [random_model_inputs(ref, rng) for _ in range(samples)]
    got = ours.run_many(batches)
    for xs, mine in zip(batches, got):
        want = ref.run(xs)
        for w, g in zip(want, mine):
            assert w.dtype == g.dtype and w.shape == g.shape
            assert w.tobytes() == g.tobytes(), (
                f"differs at {np.flatnonzero(w.reshape(-1) != g.reshape(-1))[:8]}: "
                f"TFLM {w.reshape(-1)[:8]} ours {g.reshape(-1)[:8]}")


def assert_host_sanitizer_clean(model: bytes, tmp_path, rng: np.random.Generator, shape,
                                name: str = "m", n: int = 2) -> None:
    """The host build with -fsanitize=address,undefined runs `random_int8_samples(rng, shape,
    n)` cleanly and gives TFLM's first output."""
    d = convert(model, tmp_path, name)
    ours, ref = HostModel(d, name, sanitize=True), TflmModel(model)
    samples = random_int8_samples(rng, shape, n=n)
    for got, sample in zip(ours.run_many(samples), samples):
        assert np.array_equal(got[0], ref.run(sample)[0])


def assert_cortex_m7_matches(model_dir, name: str, samples: Sequence[Sequence[np.ndarray]],
                             want: Sequence[Sequence[np.ndarray]],
                             dsp_builds: Sequence[bool] = (False, True)) -> dict[bool, int]:
    """Run the converted model on the emulated Cortex-M7, portable (dsp=False) and DSP builds,
    and require every output of every sample to equal `want` (per sample, the list of
    outputs, e.g. tflm_outputs). Returns the instructions of the first invoke per build."""
    counts = {}
    for dsp in dsp_builds:
        res = qemu.run_on_qemu(model_dir, name, samples, cpu="cortex-m7", dsp=dsp)
        assert len(res.outputs) == len(want), f"dsp={dsp}"
        for got, w in zip(res.outputs, want):
            assert len(got) == len(w), f"dsp={dsp}"
            for g, x in zip(got, w):
                assert np.array_equal(g, x), f"dsp={dsp}"
        counts[dsp] = res.instructions_per_invoke[0]
    return counts


# ---------------------------------------------------------------------------------------------
# Emitter stand-ins and reference arithmetic


class RecordingContext:
    """Stands in for codegen's EmitContext where a test calls a table builder directly: keeps
    every constant array defined, by its name hint."""

    def __init__(self):
        self.arrays = {}

    def const_array(self, hint, values, c_type=None):
        self.arrays[hint] = np.asarray(values)
        return hint


@dataclasses.dataclass(frozen=True)
class FakeOp:
    """Stands in for an ir.Op where only its index (the C names' prefix) is read."""

    index: int


def smmlar_requantize(acc, mult: int, rnd: int, rs: int, check_int32: bool = False) -> np.ndarray:
    """numpy model of the one-pass SMMLAR requantisation (mcu_matmul_s8.h mcu_mm_requant_fast,
    depthwise_conv2d.c mcu_dw_rqs_apply): SMMLAR(2 * acc, mult, rnd + (acc >> 31)) >> rs, where
    SMMLAR(a, b, c) = floor((a * b + 2^31) / 2^32) + c and rnd = 2^(rs-1) + zp * 2^rs folds in
    the output zero point. With check_int32, every intermediate the C keeps in an int32 (2 * acc
    and the SMMLAR result) is asserted to fit."""
    a = np.asarray(acc).astype(np.int64)
    two = 2 * a
    if check_int32:
        assert two.min() >= INT32_MIN and two.max() <= INT32_MAX
    if two.size and int(np.abs(two).max()) * abs(int(mult)) < (1 << 62):
        high = (two * int(mult) + (1 << 31)) >> 32  # exact in int64
    else:
        high = ((two.astype(object) * int(mult) + (1 << 31)) >> 32).astype(np.int64)
    s = high + (int(rnd) + (a >> 31))
    if check_int32:
        assert s.min() >= INT32_MIN and s.max() <= INT32_MAX
    return s >> rs
