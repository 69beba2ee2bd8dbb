"""Non-convolution int8 ops against TFLite Micro, bit for bit.

Each case builds a single-op .tflite (tests/tflite_builder.py, no TensorFlow), converts it
with our pipeline (tflite_converter.codegen.convert_model), compiles it for the host and
compares the output bytes with the TFLM interpreter on random inputs. Shapes, scales and zero
points are drawn from a seeded generator; edge cases (1x1 inputs, odd channel counts,
saturating scales, broadcasting) are listed explicitly.

Element-wise unary ops are additionally checked exhaustively over all 256 input bytes in
test_unary_tables (our generation-time tables vs TFLM).
"""
from __future__ import annotations

import numpy as np
import pytest

from engine.host import HostModel
from engine.tflm import TflmModel
from engine import quant_ops, quantization
from tests.tflite_builder import TensorSpec, build_single_op_model
from tflite_converter.codegen.generate import convert_model
from tflite_converter.errors import ConversionError

SAMPLES = 4


def _inputs(model: TflmModel, rng: np.random.Generator) -> list[np.ndarray]:
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


def check_against_tflm(model: bytes, tmp_path, seed: int = 0, samples: int = SAMPLES) -> None:
    ref = TflmModel(model)
    out_dir = tmp_path / "gen"
    convert_model(model, out_dir, name="m")
    ours = HostModel(out_dir, "m")
    rng = np.random.default_rng(seed)
    batches = [_inputs(ref, rng) for _ in range(samples)]
    got = ours.run_many(batches)
    for xs, mine in zip(batches, got):
        want = ref.run(xs)
        for w, g in zip(want, mine):
            assert w.dtype == g.dtype and w.shape == g.shape
            assert w.tobytes() == g.tobytes(), (
                f"differs at {np.flatnonzero(w.reshape(-1) != g.reshape(-1))[:8]}: "
                f"TFLM {w.reshape(-1)[:8]} ours {g.reshape(-1)[:8]}")


def _q(rng, shape, dtype="int8", **kw):
    return TensorSpec(shape, dtype, scale=float(np.exp(rng.uniform(-5, 0))),
                      zero_point=int(rng.integers(-128, 128)) if dtype == "int8" else int(rng.integers(0, 256)), **kw)


def _const_i32(values, shape=None):
    arr = np.asarray(values, dtype=np.int32)
    return TensorSpec(arr.shape if shape is None else shape, "int32", data=arr)


# ---------------------------------------------------------------------------------------------
# binary element-wise with broadcasting

BINARY_SHAPES = [
    ((1, 5, 5, 3), (1, 5, 5, 3)),
    ((1, 4, 4, 7), (1, 1, 1, 7)),
    ((1, 3, 1, 5), (1, 1, 4, 1)),
    ((1, 1, 1, 1), (1, 1, 1, 1)),
    ((2, 3, 5), (5,)),
    ((1, 6, 6, 9), (1,)),
]


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM"])
@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_binary(op, shapes, tmp_path):
    rng = np.random.default_rng(hash((op, shapes)) % 2**32)
    a_shape, b_shape = shapes
    out_shape = np.broadcast_shapes(a_shape, b_shape)
    a, b = _q(rng, a_shape), _q(rng, b_shape)
    if op in ("MAXIMUM", "MINIMUM"):
        b = TensorSpec(b_shape, scale=a.scale, zero_point=a.zero_point)
        o = TensorSpec(out_shape, scale=a.scale, zero_point=a.zero_point)
        opts = None
    else:
        o = _q(rng, out_shape)
        opts = {"activation": str(rng.choice(["NONE", "RELU", "RELU6"]))}
    check_against_tflm(build_single_op_model(op, [a, b], [o], options=opts), tmp_path)


def test_add_saturation_and_swapped_broadcast(tmp_path):
    a = TensorSpec((1, 1, 1, 5), scale=0.9, zero_point=-128)
    b = TensorSpec((1, 3, 3, 5), scale=0.001, zero_point=127)
    o = TensorSpec((1, 3, 3, 5), scale=0.003, zero_point=0)
    check_against_tflm(build_single_op_model("ADD", [a, b], [o]), tmp_path)


def test_prelu(tmp_path):
    rng = np.random.default_rng(7)
    alpha = TensorSpec((1, 1, 5), scale=0.01, zero_point=3,
                       data=rng.integers(-128, 128, (1, 1, 5)).astype(np.int8))
    model = build_single_op_model("PRELU", [_q(rng, (1, 3, 4, 5)), alpha], [_q(rng, (1, 3, 4, 5))])
    check_against_tflm(model, tmp_path)


# ---------------------------------------------------------------------------------------------
# pooling, reductions, softmax

POOLS = [  # (input shape, filter, stride, padding)
    ((1, 7, 7, 3), (3, 3), (2, 2), "SAME"),
    ((1, 8, 6, 5), (2, 2), (2, 2), "VALID"),
    ((1, 1, 1, 8), (1, 1), (1, 1), "SAME"),
    ((2, 5, 9, 1), (5, 3), (1, 2), "SAME"),
    ((1, 10, 10, 16), (10, 10), (1, 1), "VALID"),
]


def _pool_out(n, k, s, pad):
    return (n + s - 1) // s if pad == "SAME" else (n - k + s) // s


@pytest.mark.parametrize("op", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
@pytest.mark.parametrize("case", POOLS, ids=str)
def test_pool(op, case, tmp_path):
    shape, (fh, fw), (sh, sw), pad = case
    rng = np.random.default_rng(sum(shape) + fh)
    x = _q(rng, shape)
    out = (shape[0], _pool_out(shape[1], fh, sh, pad), _pool_out(shape[2], fw, sw, pad), shape[3])
    y = TensorSpec(out, scale=x.scale, zero_point=x.zero_point)
    opts = {"padding": pad, "stride_h": sh, "stride_w": sw, "filter_height": fh,
            "filter_width": fw, "activation": "RELU6" if fh == 3 else "NONE"}
    check_against_tflm(build_single_op_model(op, [x], [y], options=opts), tmp_path)


REDUCTIONS = [  # (shape, axes, keep_dims)
    ((1, 7, 7, 5), (1, 2), True),
    ((1, 7, 7, 5), (1, 2), False),
    ((1, 3, 4, 6), (3,), False),
    ((2, 3, 4, 5), (0, 2), True),
    ((1, 1, 1, 9), (1, 2), False),
    ((4, 6), (0, 1), False),
]


@pytest.mark.parametrize("op", ["MEAN", "SUM"])
@pytest.mark.parametrize("case", REDUCTIONS, ids=str)
def test_reduce(op, case, tmp_path):
    shape, axes, keep = case
    rng = np.random.default_rng(len(shape) * 31 + sum(axes))
    out = tuple(1 if k in axes else d for k, d in enumerate(shape)) if keep else \
        tuple(d for k, d in enumerate(shape) if k not in axes)
    x = _q(rng, shape)
    y = _q(rng, out)
    if op == "SUM":  # keep the sum representable: a wider output scale
        y = TensorSpec(out, scale=x.scale * float(np.prod([shape[a] for a in axes])) / 4,
                       zero_point=int(rng.integers(-20, 20)))
    model = build_single_op_model(op, [x, _const_i32(list(axes))], [y], options={"keepDims": keep})
    check_against_tflm(model, tmp_path)


@pytest.mark.parametrize("shape,beta", [((1, 10), 1.0), ((3, 7), 0.5), ((1, 1), 1.0),
                                        ((2, 2, 33), 2.0)])
def test_softmax(shape, beta, tmp_path):
    rng = np.random.default_rng(shape[-1])
    for scale in (0.02, 0.25, 1.7):
        x = TensorSpec(shape, scale=scale, zero_point=int(rng.integers(-128, 128)))
        y = TensorSpec(shape, scale=1 / 256, zero_point=-128)
        model = build_single_op_model("SOFTMAX", [x], [y], options={"beta": beta})
        check_against_tflm(model, tmp_path / str(scale))


def test_softmax_refuses_other_output_quantization(tmp_path):
    model = build_single_op_model("SOFTMAX", [TensorSpec((1, 4), scale=0.1, zero_point=0)],
                                  [TensorSpec((1, 4), scale=1 / 128, zero_point=0)])
    with pytest.raises(ConversionError, match="SOFTMAX"):
        convert_model(model, tmp_path / "g", name="m")


# ---------------------------------------------------------------------------------------------
# unary ops: exhaustive tables vs TFLM, and one generated model each


def _all_bytes_model(op, si, zi, so, zo, options=None, in_dtype="int8", out_dtype="int8"):
    return build_single_op_model(op, [TensorSpec((1, 256), in_dtype, scale=si, zero_point=zi)],
                                 [TensorSpec((1, 256), out_dtype, scale=so, zero_point=zo)],
                                 options=options)


UNARY = {
    "LOGISTIC": lambda si, zi, so, zo: (quant_ops.logistic_table(si, zi, 1 / 256, -128), (1 / 256, -128), None),
    "TANH": lambda si, zi, so, zo: (quant_ops.tanh_table(si, zi, 1 / 128, 0), (1 / 128, 0), None),
    "HARD_SWISH": lambda si, zi, so, zo: (quant_ops.hard_swish_table(si, zi, so, zo), (so, zo), None),
    "RELU": lambda si, zi, so, zo: (quant_ops.relu_table(si, zi, so, zo), (so, zo), None),
    "RELU6": lambda si, zi, so, zo: (quant_ops.relu6_table(si, zi, si, zi), (si, zi), None),
    "LEAKY_RELU": lambda si, zi, so, zo: (
        quant_ops.leaky_relu_table(si, zi, so, zo, float(np.float32(0.3))), (so, zo), {"alpha": 0.3}),
    "QUANTIZE": lambda si, zi, so, zo: (
        quantization.requantize_table("int8", si, zi, "int8", so, zo), (so, zo), None),
}


@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_tables(op):
    rng = np.random.default_rng(len(op))
    x = np.arange(256, dtype=np.uint8).view(np.int8).reshape(1, 256)
    checked = 0
    for _ in range(25):
        si, zi = float(np.exp(rng.uniform(-6, 0.5))), int(rng.integers(-128, 128))
        so, zo = float(np.exp(rng.uniform(-6, 0.5))), int(rng.integers(-128, 128))
        try:
            table, (so, zo), opts = UNARY[op](si, zi, so, zo)
        except quant_ops.UnsupportedQuantization:
            with pytest.raises(RuntimeError):  # we refuse only what TFLM refuses
                TflmModel(_all_bytes_model(op, si, zi, so, zo))
            continue
        want = TflmModel(_all_bytes_model(op, si, zi, so, zo, opts)).run([x])[0].reshape(-1)
        assert np.array_equal(want, table), (op, si, zi, so, zo)
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize("ins,outs", [("int8", "uint8"), ("uint8", "int8")])
def test_quantize_int8_uint8_tables(ins, outs):
    rng = np.random.default_rng(3)
    x = np.arange(256, dtype=np.uint8).view(ins).reshape(1, 256)
    for _ in range(10):
        si, so = float(np.exp(rng.uniform(-5, 0))), float(np.exp(rng.uniform(-5, 0)))
        zi = int(rng.integers(-128, 128)) if ins == "int8" else int(rng.integers(0, 256))
        zo = int(rng.integers(-128, 128)) if outs == "int8" else int(rng.integers(0, 256))
        want = TflmModel(_all_bytes_model("QUANTIZE", si, zi, so, zo, None, ins, outs)).run([x])[0]
        got = quantization.requantize_table(ins, si, zi, outs, so, zo)
        assert np.array_equal(want.reshape(-1), got)


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH", "HARD_SWISH", "RELU", "RELU6", "LEAKY_RELU"])
def test_unary_generated(op, tmp_path):
    si, zi, so, zo = 0.07, -5, 0.05, 9
    if op == "LOGISTIC":
        so, zo = 1 / 256, -128
    elif op == "TANH":
        so, zo = 1 / 128, 0
    elif op == "RELU6":
        so, zo = si, zi
    opts = {"alpha": 0.2} if op == "LEAKY_RELU" else None
    model = build_single_op_model(op, [TensorSpec((1, 5, 5, 3), scale=si, zero_point=zi)],
                                  [TensorSpec((1, 5, 5, 3), scale=so, zero_point=zo)], options=opts)
    check_against_tflm(model, tmp_path)


def test_quantize_from_float(tmp_path):
    q = build_single_op_model("QUANTIZE", [TensorSpec((1, 40), "float32")],
                              [TensorSpec((1, 40), "int8", scale=0.023, zero_point=-3)])
    check_against_tflm(q, tmp_path, samples=8)


@pytest.mark.parametrize("out_dtype", ["int8"])  # the reader refuses uint8 DEQUANTIZE
def test_dequantize(out_dtype, tmp_path):
    zp = -3 if out_dtype == "int8" else 131
    dq = build_single_op_model("DEQUANTIZE", [TensorSpec((2, 17), out_dtype, scale=0.031, zero_point=zp)],
                               [TensorSpec((2, 17), "float32")])
    check_against_tflm(dq, tmp_path)


def test_quantize_requantize_generated(tmp_path):
    model = build_single_op_model("QUANTIZE", [TensorSpec((1, 3, 3, 5), scale=0.03, zero_point=4)],
                                  [TensorSpec((1, 3, 3, 5), scale=0.011, zero_point=-20)])
    check_against_tflm(model, tmp_path)


# ---------------------------------------------------------------------------------------------
# data movement


@pytest.mark.parametrize("op", ["PAD", "PADV2"])
def test_pad(op, tmp_path):
    x = TensorSpec((1, 3, 5, 3), scale=0.1, zero_point=-7)
    pads = _const_i32([[0, 0], [1, 2], [2, 1], [0, 1]])
    y = TensorSpec((1, 6, 8, 4), scale=0.1, zero_point=-7)
    inputs = [x, pads]
    if op == "PADV2":
        inputs.append(TensorSpec((1,), scale=0.1, zero_point=-7, data=np.array([5], np.int8)))
    check_against_tflm(build_single_op_model(op, inputs, [y]), tmp_path)


@pytest.mark.parametrize("perm", [(0, 3, 1, 2), (0, 2, 1, 3), (3, 2, 1, 0), (0, 1, 2, 3)])
def test_transpose(perm, tmp_path):
    shape = (1, 3, 4, 5)
    x = TensorSpec(shape, scale=0.1, zero_point=1)
    y = TensorSpec(tuple(shape[p] for p in perm), scale=0.1, zero_point=1)
    check_against_tflm(build_single_op_model("TRANSPOSE", [x, _const_i32(perm)], [y]), tmp_path)


@pytest.mark.parametrize("axis", [1, 3, -1])
def test_concatenation(axis, tmp_path):
    shapes = [(1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4)]
    out = list(shapes[0])
    out[axis] *= 3
    xs = [TensorSpec(s, scale=0.2, zero_point=3) for s in shapes]
    y = TensorSpec(tuple(out), scale=0.2, zero_point=3)
    check_against_tflm(build_single_op_model("CONCATENATION", xs, [y], options={"axis": axis}), tmp_path)


def test_split(tmp_path):
    x = TensorSpec((1, 4, 3, 6), scale=0.2, zero_point=3)
    ys = [TensorSpec((1, 4, 3, 2), scale=0.2, zero_point=3) for _ in range(3)]
    axis = TensorSpec((), "int32", data=np.array(3, np.int32))
    check_against_tflm(build_single_op_model("SPLIT", [axis, x], ys, options={"numSplits": 3}), tmp_path)


@pytest.mark.parametrize("begin,end,strides,out", [
    ((0, 1, 0, 0), (1, 4, 5, 3), (1, 1, 2, 1), (1, 3, 3, 3)),
    ((0, 4, 4, 2), (1, 0, 0, 0), (1, -2, -1, -1), (1, 2, 4, 2)),
])
def test_strided_slice(begin, end, strides, out, tmp_path):
    x = TensorSpec((1, 5, 5, 3), scale=0.2, zero_point=3)
    y = TensorSpec(out, scale=0.2, zero_point=3)
    model = build_single_op_model("STRIDED_SLICE", [x, _const_i32(begin), _const_i32(end),
                                                    _const_i32(strides)], [y])
    check_against_tflm(model, tmp_path)


@pytest.mark.parametrize("op", ["RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"])
@pytest.mark.parametrize("in_hw,out_hw,align,half", [
    ((3, 4), (6, 8), False, False), ((5, 5), (3, 7), True, False),
    ((4, 3), (9, 5), False, True), ((1, 1), (3, 2), False, False)])
def test_resize(op, in_hw, out_hw, align, half, tmp_path):
    x = TensorSpec((1, *in_hw, 3), scale=0.1, zero_point=-2)
    y = TensorSpec((1, *out_hw, 3), scale=0.1, zero_point=-2)
    model = build_single_op_model(op, [x, _const_i32(out_hw)], [y],
                                  options={"alignCorners": align, "halfPixelCenters": half})
    check_against_tflm(model, tmp_path)
