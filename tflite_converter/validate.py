"""What the engine supports: dtype, quantization and shape rules per op, all problems at once.

The engine runs int8 models (int8 activations, int8 weights, int32 bias) whose float32 or uint8
tensors appear only at the edges: QUANTIZE from a float32/uint8 model input, DEQUANTIZE or
QUANTIZE to a float32/uint8 model output. Every op's output shape is recomputed from its
inputs and attributes and must equal the file's: the planner and the C emitter trust shapes,
so an inconsistent file must be refused here, not turned into out-of-bounds writes.

`check_graph(graph)` returns the problems (one per op at most, plus graph-level ones);
`validate(graph)` raises them as one ConversionError.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from engine import quant_ops
from tflite_converter import int4, op_registry, opspec
from tflite_converter.errors import ConversionError, Problem
from tflite_converter.ir import (
    Activation,
    AxisAttrs,
    BatchMatMulAttrs,
    BatchSpaceAttrs,
    BlockAttrs,
    ConcatAttrs,
    ConvAttrs,
    DType,
    ElementwiseAttrs,
    FullyConnectedAttrs,
    GatherAttrs,
    Graph,
    Op,
    OpKind,
    PadAttrs,
    PoolAttrs,
    ReduceAttrs,
    SoftmaxAttrs,
    SplitAttrs,
    StridedSliceAttrs,
    Tensor,
    TransposeAttrs,
    WindowAttrs,
    same_quantization,
)

# Fused activations an int8 kernel can apply as an output clamp.
CLAMP_ACTIVATIONS = frozenset({Activation.NONE, Activation.RELU, Activation.RELU6, Activation.RELU_N1_TO_1})


class _Refuse(Exception):
    def __init__(self, reason: str, tensor: Optional[Tensor] = None):
        super().__init__(reason)
        self.reason, self.tensor = reason, tensor


def validate(graph: Graph) -> Graph:
    problems = check_graph(graph)
    if problems:
        raise ConversionError(problems)
    return graph


def check_graph(graph: Graph, *, structural_ok: bool = True,
                skip_ops: frozenset[int] | set[int] = frozenset()) -> list[Problem]:
    """All problems of the graph. `structural_ok=False` (the reader already found broken
    structure) skips graph-level edge rules that would only repeat those problems; ops whose
    index is in `skip_ops` are not checked."""
    problems: list[Problem] = []
    for op in graph.ops:
        if op.index in skip_ops:
            continue
        try:
            if op_registry.record(op.kind) is None:
                raise _Refuse("not supported by the engine")
            rule, _emit = op_registry.rule_and_emitter(graph, op)
            if rule is None:  # an op the passes fold; still here: not foldable
                raise _Refuse("supported only when all its inputs are constant (then it is folded)")
            _int4_rule(graph, op)
            rule(graph, op)
        except _Refuse as r:
            problems.append(Problem(r.reason, op.index, op.kind.value, r.tensor.name if r.tensor else None))
        except (ArithmeticError, IndexError, TypeError, ValueError) as e:
            # Shapes inconsistent in a way no rule anticipated: a refusal, never a traceback.
            problems.append(Problem(f"inconsistent operator ({type(e).__name__}: {e})", op.index, op.kind.value))
    if structural_ok:
        problems += _check_edges(graph)
    return problems


def int4_problems(graph: Graph) -> list[Problem]:
    """The ops of `graph` that use an int4 tensor where TFLM does not run one (_int4_rule);
    the reader asks before folding constants, so no op that reads one escapes."""
    problems = []
    for op in graph.ops:
        try:
            _int4_rule(graph, op)
        except _Refuse as r:
            problems.append(Problem(r.reason, op.index, op.kind.value, r.tensor.name if r.tensor else None))
    return problems


def _int4_rule(g: Graph, op: Op) -> None:
    """int4 tensors (Tensor.packed_int4) only where TFLM runs them: the constant filter
    (input 1) of CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED (int8 activations, checked by
    their own rules), FULLY_CONNECTED's per tensor only."""
    for slot, index in enumerate(op.inputs):
        t = g.tensors[index] if index >= 0 else None
        if t is None or not t.packed_int4:
            continue
        if op.kind not in int4.FILTER_OPS or slot != int4.FILTER_SLOT:
            raise _Refuse(f"int4 tensor as input {slot}: TFLM runs int4 only as the filter "
                          "(input 1) of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED", t)
        if not t.is_constant:
            raise _Refuse("non-constant int4 filter not supported", t)
        if op.kind is OpKind.FULLY_CONNECTED and t.quant is not None and t.quant.scale.size > 1:
            raise _Refuse("int4 FULLY_CONNECTED filter with per-channel quantization not "
                          "supported (TFLM runs int4 FULLY_CONNECTED per tensor only)", t)
    for index in op.outputs:
        if g.tensors[index].packed_int4:
            raise _Refuse("int4 output not supported (int4 only as a constant filter)", g.tensors[index])


# ---------------------------------------------------------------------------------------------
# Tensor rules


def _ins(g: Graph, op: Op) -> list[Tensor]:
    """The inputs, all present (ops whose inputs are all required, after their arity check)."""
    if any(i < 0 for i in op.inputs):
        raise _Refuse("a required input is absent")
    return [g.tensors[i] for i in op.inputs]


def _optional_in(g: Graph, op: Op, k: int) -> Optional[Tensor]:
    """Input `k`, or None where the model leaves it out (an optional bias)."""
    return g.tensors[op.inputs[k]] if k < len(op.inputs) and op.inputs[k] >= 0 else None


def _outs(g: Graph, op: Op) -> list[Tensor]:
    return [g.tensors[i] for i in op.outputs]


def _arity(g: Graph, op: Op, n_in: tuple[int, int], n_out: int = 1) -> None:
    lo, hi = n_in
    if not lo <= len(op.inputs) <= hi or any(i < 0 for i in op.inputs[:lo]):
        raise _Refuse(f"expects {lo}{'' if lo == hi else f'..{hi}'} inputs, has {len(op.inputs)}")
    if len(op.outputs) != n_out:
        raise _Refuse(f"expects {n_out} outputs, has {len(op.outputs)}")


def _has_int8_weights(g: Graph, op: Op) -> bool:
    return any(g.tensors[i].is_constant and g.tensors[i].dtype is DType.INT8
               for i in op.inputs if i >= 0)


def _int8_io(g: Graph, op: Op, n_in: tuple[int, int], data: int = 0) -> tuple[Tensor, Tensor]:
    """The arity check, then input `data` and the one output, both per-tensor int8
    activations: how most ops' rules begin."""
    _arity(g, op, n_in)
    x, (y,) = g.tensors[op.inputs[data]], _outs(g, op)
    _int8_act(g, op, x)
    _int8_act(g, op, y)
    return x, y


def _int8_act(g: Graph, op: Op, t: Tensor) -> None:
    """An int8 activation with per-tensor quantization."""
    if t.dtype is DType.FLOAT32:
        if _has_int8_weights(g, op):
            raise _Refuse("hybrid model (float32 activations with int8 weights) not supported", t)
        raise _Refuse(f"float32 {op.kind.value} not supported (int8 models; float32 runs only in "
                      "the element-wise, activation and softmax ops of a model's float head or "
                      "tail, see the README)", t)
    if t.dtype is DType.UINT8:
        raise _Refuse("legacy uint8 arithmetic not supported (uint8 only through QUANTIZE at the "
                      "model's edges)", t)
    if t.dtype is DType.INT16:
        raise _Refuse("int16 activations not supported", t)
    if t.dtype is not DType.INT8:
        raise _Refuse(f"{t.dtype.value} tensor not supported here (int8 expected)", t)
    _per_tensor(t)


def _per_tensor(t: Tensor) -> None:
    if t.quant is None:
        raise _Refuse("quantized tensor without quantization parameters", t)
    if t.quant.per_channel or t.quant.scale.size != 1:
        raise _Refuse("per-channel quantized activation not supported", t)
    _scales_ok(t)
    info = np.iinfo(t.dtype.np)
    if not info.min <= int(t.quant.zero_point[0]) <= info.max:
        raise _Refuse(f"zero point {int(t.quant.zero_point[0])} outside the {t.dtype.value} range", t)


def _scales_ok(t: Tensor) -> None:
    if t.quant is None:
        raise _Refuse("quantized tensor without quantization parameters", t)
    s = t.quant.scale
    if not np.all(np.isfinite(s)) or not np.all(s > 0):
        raise _Refuse("quantization scale must be finite and positive", t)


def _weights(t: Optional[Tensor], axis: int, channels: int) -> None:
    """int8 constant weights, per-tensor or per-channel along `axis`, zero points 0."""
    if t is None:
        raise _Refuse("missing weights")
    if not t.is_constant:
        raise _Refuse("non-constant weights not supported", t)
    if t.dtype is not DType.INT8:
        raise _Refuse(f"{t.dtype.value} weights not supported (int8 expected)", t)
    if t.quant is None:
        raise _Refuse("weights without quantization parameters", t)
    _scales_ok(t)
    if t.quant.per_channel and (t.quant.axis != axis or t.quant.scale.size != channels):
        raise _Refuse(f"per-channel quantization along dimension {t.quant.axis}, expected {axis}", t)
    if np.any(t.quant.zero_point != 0):
        raise _Refuse("weights with a nonzero zero point not supported", t)


def _bias(t: Optional[Tensor], channels: int) -> None:
    if t is None:
        return
    if not t.is_constant:
        raise _Refuse("non-constant bias not supported", t)
    if t.dtype is not DType.INT32:
        raise _Refuse(f"{t.dtype.value} bias not supported (int32 expected)", t)
    if t.num_elements != channels:
        raise _Refuse(f"bias has {t.num_elements} values for {channels} channels", t)


def _clamp(act: Activation) -> None:
    if act not in CLAMP_ACTIVATIONS:
        raise _Refuse(f"fused activation {act.value} not supported")


def _shape(t: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(t.shape) != tuple(expected):
        raise _Refuse(f"shape {list(t.shape)} does not match the expected {list(expected)}", t)


def _same_quant(a: Tensor, b: Tensor) -> None:
    if a.quant is None or not same_quantization(a.quant, b.quant):
        raise _Refuse("input and output quantization must be identical for this op", b)


def _rank(t: Tensor, rank: int) -> None:
    if len(t.shape) != rank:
        raise _Refuse(f"{rank}-D tensor expected, got shape {list(t.shape)}", t)


# ---------------------------------------------------------------------------------------------
# Per-op rules


def _spatial_out(size: int, k: int, stride: int, dilation: int, pad_total: int) -> int:
    eff = (k - 1) * dilation + 1
    return (size + pad_total - eff) // stride + 1


def _check_spatial(x: Tensor, y: Tensor, kh: int, kw: int, a: ConvAttrs | PoolAttrs,
                   channels: int) -> None:
    dh = getattr(a, "dilation_h", 1)
    dw = getattr(a, "dilation_w", 1)
    p = a.pads
    oh = _spatial_out(x.shape[1], kh, a.stride_h, dh, p.top + p.bottom)
    ow = _spatial_out(x.shape[2], kw, a.stride_w, dw, p.left + p.right)
    if oh < 1 or ow < 1:
        raise _Refuse("the window is larger than the padded input", y)
    # The pads are the authority (a folded PAD adds to them); the padding mode alone would
    # give the same size only before folding.
    _shape(y, (x.shape[0], oh, ow, channels))


def conv_rule(g: Graph, op: Op) -> None:
    x, y = _int8_io(g, op, (2, 3))
    w, b = g.tensors[op.inputs[1]], _optional_in(g, op, 2)
    a = op.attrs_as(ConvAttrs)
    _clamp(a.activation)
    _rank(x, 4)
    _rank(w, 4)
    depthwise = op.kind is OpKind.DEPTHWISE_CONV_2D
    out_ch = w.shape[3] if depthwise else w.shape[0]
    _weights(w, 3 if depthwise else 0, out_ch)
    _bias(b, out_ch)
    if depthwise:
        if w.shape[0] != 1 or out_ch != x.shape[3] * a.depth_multiplier:
            raise _Refuse(f"filter {list(w.shape)} does not fit input channels {x.shape[3]} "
                          f"x depth multiplier {a.depth_multiplier}", w)
    elif x.shape[3] != w.shape[3]:
        if w.shape[3] == 0 or x.shape[3] % w.shape[3]:
            raise _Refuse(f"filter {list(w.shape)} does not fit input channels {x.shape[3]}", w)
        raise _Refuse("grouped convolution not supported", w)
    _check_spatial(x, y, w.shape[1], w.shape[2], a, out_ch)


def fully_connected_rule(g: Graph, op: Op) -> None:
    x, y = _int8_io(g, op, (2, 3))
    w, b = g.tensors[op.inputs[1]], _optional_in(g, op, 2)
    a = op.attrs_as(FullyConnectedAttrs)
    _clamp(a.activation)
    _rank(w, 2)
    units, depth = w.shape
    _weights(w, 0, units)
    _bias(b, units)
    if depth == 0 or x.num_elements % depth:
        raise _Refuse(f"input of {x.num_elements} values does not fit weights {list(w.shape)}", x)
    batch = x.num_elements // depth
    expected = tuple(x.shape[:-1]) + (units,) if a.keep_num_dims else (batch, units)
    if a.keep_num_dims and x.shape[-1] != depth:
        raise _Refuse(f"keep_num_dims needs the last input dimension {depth}", x)
    _shape(y, expected)


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise _Refuse(f"shapes {list(a)} and {list(b)} do not broadcast") from None


def _two_int8_inputs(g: Graph, op: Op) -> tuple[Tensor, Tensor, Tensor]:
    """Two int8 inputs (broadcast against each other) and the int8 output."""
    _arity(g, op, (2, 2))
    x1, x2 = _ins(g, op)
    (y,) = _outs(g, op)
    for t in (x1, x2, y):
        _int8_act(g, op, t)
    return x1, x2, y


def binary_rule(g: Graph, op: Op) -> None:
    x1, x2, y = _two_int8_inputs(g, op)
    if op.kind in (OpKind.ADD, OpKind.SUB, OpKind.MUL, OpKind.DIV):
        _clamp(op.attrs_as(ElementwiseAttrs).activation)
        if op.kind is OpKind.DIV:
            _div_shifts(x1, x2, y)
    elif op.kind is OpKind.SQUARED_DIFFERENCE:
        # TFLM broadcasts it only through its 4-D slow path
        if tuple(x1.shape) != tuple(x2.shape) and max(len(x1.shape), len(x2.shape)) > 4:
            raise _Refuse("broadcasting beyond 4 dimensions (TFLM supports 4)")
    else:  # MAXIMUM / MINIMUM compare the stored int8 values: one scale for all three
        _same_quant(x1, y)
        _same_quant(x2, y)
    _shape(y, _broadcast(x1.shape, x2.shape))


def _int8_values(t: Tensor) -> np.ndarray:
    """The int8 values the tensor can hold: a constant's own, else all 256."""
    return np.asarray(t.data).reshape(-1) if t.data is not None else np.arange(-128, 128)


def _div_shifts(x1: Tensor, x2: Tensor, y: Tensor) -> None:
    """int8 DIV only where TFLM's arithmetic is defined for every operand pair the inputs can
    hold (engine/quant_ops.py div_shift_problem)."""
    scales = [(float(t.quant.scale[0]), int(t.quant.zero_point[0])) for t in (x1, x2, y)
              if t.quant is not None]
    try:
        p = quant_ops.div_params(*scales[0], *scales[1], *scales[2])
    except quant_ops.UnsupportedQuantization as e:
        raise _Refuse(str(e), y) from None
    problem = quant_ops.div_shift_problem(p, _int8_values(x1), _int8_values(x2))
    if problem is not None:
        raise _Refuse(problem, y)


def pool_rule(g: Graph, op: Op) -> None:
    x, y = _int8_io(g, op, (1, 1))
    _rank(x, 4)
    a = op.attrs_as(PoolAttrs)
    _clamp(a.activation)
    _same_quant(x, y)
    _check_spatial(x, y, a.filter_h, a.filter_w, a, x.shape[3])


def reduce_rule(g: Graph, op: Op) -> None:
    x, y = _int8_io(g, op, (2, 2))
    a = op.attrs_as(ReduceAttrs)
    axes = set(a.axes)
    if a.keep_dims:
        expected = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        expected = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    _shape(y, expected)


def reduce_extreme_rule(g: Graph, op: Op) -> None:
    """REDUCE_MAX / REDUCE_MIN compare stored values: TFLM requires one quantization."""
    reduce_rule(g, op)
    _same_quant(g.tensors[op.inputs[0]], g.tensors[op.outputs[0]])
    if g.tensors[op.inputs[0]].num_elements == 0:
        raise _Refuse("reduction of an empty tensor")


def arg_rule(g: Graph, op: Op) -> None:
    """ARG_MAX / ARG_MIN as TFLM runs them: int8 input, int32 axis and int32 output."""
    _arity(g, op, (2, 2))
    x, axis = _ins(g, op)
    (y,) = _outs(g, op)
    _int8_act(g, op, x)
    if axis.dtype is not DType.INT32:
        raise _Refuse(f"{axis.dtype.value} axis not supported (TFLM reads an int32 axis only)", axis)
    if y.dtype is not DType.INT32:
        raise _Refuse(f"{y.dtype.value} output not supported (TFLM writes int32 indices only)", y)
    a = op.attrs_as(AxisAttrs).axis
    if x.shape[a] == 0:
        raise _Refuse(f"axis {a} is empty", x)
    _shape(y, tuple(d for i, d in enumerate(x.shape) if i != a))


def gather_rule(g: Graph, op: Op) -> None:
    """GATHER as TFLM runs it (int8 params, int32 indices), the indices constant so that
    each one is checked against the axis here (TFLM only asserts it in debug builds)."""
    _arity(g, op, (2, 2))
    x, idx = _ins(g, op)
    (y,) = _outs(g, op)
    _int8_act(g, op, x)
    _int8_act(g, op, y)
    if idx.dtype is not DType.INT32:
        raise _Refuse(f"{idx.dtype.value} indices not supported (TFLM reads int32 indices only)", idx)
    if idx.data is None:
        raise _Refuse("non-constant indices not supported (their range cannot be checked)", idx)
    a = op.attrs_as(GatherAttrs)
    if x.shape[:a.batch_dims] != idx.shape[:a.batch_dims]:
        raise _Refuse(f"the first {a.batch_dims} dimensions of params {list(x.shape)} and "
                      f"indices {list(idx.shape)} differ", idx)
    bad = idx.data[(idx.data < 0) | (idx.data >= x.shape[a.axis])]
    if bad.size:
        raise _Refuse(f"index {int(bad.reshape(-1)[0])} outside axis {a.axis} of size "
                      f"{x.shape[a.axis]}", idx)
    _shape(y, x.shape[:a.axis] + idx.shape[a.batch_dims:] + x.shape[a.axis + 1:])


def batch_matmul_dims(lhs: tuple[int, ...], rhs: tuple[int, ...], a: BatchMatMulAttrs
                      ) -> tuple[int, int, int, int]:
    """(M, the LHS's K, the RHS's K, N) of BATCH_MATMUL shapes of rank >= 2: K is the LHS's
    last dimension (its second last with adj_x) and the RHS's second last (its last with
    adj_y)."""
    m, k = (lhs[-1], lhs[-2]) if a.adj_x else (lhs[-2], lhs[-1])
    k_rhs, n = (rhs[-1], rhs[-2]) if a.adj_y else (rhs[-2], rhs[-1])
    return m, k, k_rhs, n


def batch_matmul_shapes(lhs: tuple[int, ...], rhs: tuple[int, ...], a: BatchMatMulAttrs
                        ) -> tuple[tuple[int, ...], int, int, int]:
    """(output shape, M, N, K) of BATCH_MATMUL as TFLM's Prepare derives them: both inputs
    2-D to 5-D, the batch dimensions (all but the last two, the shorter shape padded with
    leading 1s) equal or 1 on one side, K the LHS's last dimension (its second last with
    adj_x) and the RHS's second last (its last with adj_y)."""
    for side, shape in (("LHS", lhs), ("RHS", rhs)):
        if not 2 <= len(shape) <= 5:
            raise _Refuse(f"{side} of rank {len(shape)} not supported (TFLM's BATCH_MATMUL "
                          "takes 2-D to 5-D inputs)")
    rank = max(len(lhs), len(rhs))
    el = (1,) * (rank - len(lhs)) + tuple(lhs)
    er = (1,) * (rank - len(rhs)) + tuple(rhs)
    batch = []
    for dl, dr in zip(el[:-2], er[:-2]):
        if dl != dr and dl != 1 and dr != 1:
            raise _Refuse(f"batch dimensions of LHS {list(lhs)} and RHS {list(rhs)} do not "
                          "broadcast")
        batch.append(dr if dl == 1 else dl)
    m, k, k_rhs, n = batch_matmul_dims(el, er, a)
    if k != k_rhs:
        raise _Refuse(f"LHS {list(lhs)} and RHS {list(rhs)} (adj_x={a.adj_x}, "
                      f"adj_y={a.adj_y}) have different inner dimensions {k} and {k_rhs}")
    return tuple(batch) + (m, n), m, n, k


def batch_matmul_rule(g: Graph, op: Op) -> None:
    """int8 BATCH_MATMUL as TFLM runs it: one type for LHS, RHS and output (TFLM refuses
    hybrid float32 x int8 and an int32 output; its float32 and int16 kernels are not built
    here), per-tensor quantization (TFLM reads only the first scale and zero point of a
    per-channel constant RHS), any adj_x / adj_y, broadcast batch dimensions up to 5-D, a
    constant or computed RHS (or LHS)."""
    _arity(g, op, (2, 2))
    lhs, rhs = _ins(g, op)
    (y,) = _outs(g, op)
    types = {lhs.dtype, rhs.dtype, y.dtype}
    if DType.FLOAT32 in types and len(types) > 1:
        raise _Refuse("hybrid BATCH_MATMUL (float32 with int8 operands) not supported "
                      "(TFLM refuses it too: LHS, RHS and output must have one type)", lhs)
    if len(types) > 1:
        raise _Refuse(f"LHS {lhs.dtype.value}, RHS {rhs.dtype.value}, output {y.dtype.value}: "
                      "TFLM's BATCH_MATMUL needs one type for all three", y)
    if DType.FLOAT32 in types:
        raise _Refuse("float32 BATCH_MATMUL not supported (int8 only)", lhs)
    if DType.INT16 in types:
        raise _Refuse("int16 BATCH_MATMUL not supported (int16 activations are not built)", lhs)
    for t in (lhs, rhs, y):
        if t.is_constant and t.quant is not None and t.quant.scale.size > 1:
            raise _Refuse("per-channel quantized constant operand not supported (TFLM's "
                          "BATCH_MATMUL reads only its first scale and zero point)", t)
        _int8_act(g, op, t)
    out_shape, _m, _n, k = batch_matmul_shapes(lhs.shape, rhs.shape,
                                               op.attrs_as(BatchMatMulAttrs))
    if k > quant_ops.BATCH_MATMUL_MAX_DEPTH:
        raise _Refuse(f"inner dimension {k} could overflow the int32 accumulator (at most "
                      f"{quant_ops.BATCH_MATMUL_MAX_DEPTH})", lhs)
    _shape(y, out_shape)
    if 0 in out_shape or k == 0:
        raise _Refuse("empty BATCH_MATMUL not supported", y)
    assert lhs.quant is not None and rhs.quant is not None and y.quant is not None
    try:
        quant_ops.batch_matmul_params(
            float(lhs.quant.scale[0]), int(lhs.quant.zero_point[0]), float(rhs.quant.scale[0]),
            int(rhs.quant.zero_point[0]), float(y.quant.scale[0]), int(y.quant.zero_point[0]))
    except quant_ops.UnsupportedQuantization as e:
        raise _Refuse(str(e), y) from None


def reshape_rule(g: Graph, op: Op) -> None:
    if not op.inputs or op.inputs[0] < 0 or len(op.outputs) != 1:
        raise _Refuse("expects a data input and one output")
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    _int8_act(g, op, x)
    _int8_act(g, op, y)
    if x.num_elements != y.num_elements:
        raise _Refuse(f"reshape of {list(x.shape)} to {list(y.shape)} changes the element count", y)
    # The bytes are kept as they are; TFLite requires the same parameters on both sides.
    _same_quant(x, y)


def unary_same_shape_rule(g: Graph, op: Op) -> None:
    x, y = _int8_io(g, op, (1, 1))
    _shape(y, x.shape)


def prelu_rule(g: Graph, op: Op) -> None:
    x, alpha, y = _two_int8_inputs(g, op)
    _shape(y, _broadcast(x.shape, alpha.shape))


def pad_rule(g: Graph, op: Op) -> None:
    x, y = _int8_io(g, op, (2, 3) if op.kind is OpKind.PADV2 else (2, 2))
    _same_quant(x, y)
    a = op.attrs_as(PadAttrs)
    if not -128 <= a.pad_value <= 127:
        raise _Refuse(f"pad value {a.pad_value} outside the int8 range")
    _shape(y, tuple(d + before + after for d, (before, after) in zip(x.shape, a.paddings)))


def concat_rule(g: Graph, op: Op) -> None:
    if not op.inputs or any(i < 0 for i in op.inputs) or len(op.outputs) != 1:
        raise _Refuse("expects inputs and one output")
    xs, (y,) = _ins(g, op), _outs(g, op)
    for t in xs + [y]:
        _int8_act(g, op, t)
    a = op.attrs_as(ConcatAttrs)
    _clamp(a.activation)
    axis = a.axis
    for t in xs:
        if len(t.shape) != len(y.shape) or any(
                d != e for i, (d, e) in enumerate(zip(t.shape, y.shape)) if i != axis):
            raise _Refuse(f"input {list(t.shape)} does not fit the output {list(y.shape)} "
                          f"along axis {axis}", t)
    if sum(t.shape[axis] for t in xs) != y.shape[axis]:
        raise _Refuse("the inputs' sizes along the axis do not add up to the output's", y)


def split_rule(g: Graph, op: Op) -> None:
    _arity(g, op, (2, 2), len(op.outputs))
    x = g.tensors[op.inputs[1]]
    _int8_act(g, op, x)
    a = op.attrs_as(SplitAttrs)
    axis, n = a.axis, a.num_splits
    if n < 1 or x.shape[axis] % n:
        raise _Refuse(f"dimension {x.shape[axis]} does not split in {n}", x)
    expected = tuple(d // n if i == axis else d for i, d in enumerate(x.shape))
    for y in _outs(g, op):
        _int8_act(g, op, y)
        _same_quant(x, y)
        _shape(y, expected)


def transpose_rule(g: Graph, op: Op) -> None:
    x, y = _int8_io(g, op, (2, 2))
    _same_quant(x, y)
    _shape(y, tuple(x.shape[p] for p in op.attrs_as(TransposeAttrs).perm))


def strided_slice_rule(g: Graph, op: Op) -> None:
    x, y = _int8_io(g, op, (4, 4))
    _same_quant(x, y)
    a = op.attrs_as(StridedSliceAttrs)
    count = math.prod(max(0, -(-(e - b) // s)) for b, e, s in zip(a.begin, a.end, a.strides))
    if count != y.num_elements:
        raise _Refuse(f"the slice has {count} elements, the output shape {list(y.shape)} "
                      f"{y.num_elements}", y)


def patch_write_rule(g: Graph, op: Op) -> None:
    """PATCH_WRITE (tflite_converter/patch.py): the patch lies inside the full tensor, which
    the op's output and its input 0 (absent for the first patch) both are."""
    y, patch = g.tensors[op.outputs[0]], g.tensors[op.inputs[1]]
    if op.inputs[0] >= 0:
        _shape(g.tensors[op.inputs[0]], y.shape)
        _same_quant(g.tensors[op.inputs[0]], y)
    _same_quant(patch, y)
    a = op.attrs_as(WindowAttrs)
    _rank(y, 4)
    _rank(patch, 4)
    if (a.row < 0 or a.col < 0 or a.row + patch.shape[1] > y.shape[1] or a.col + patch.shape[2] > y.shape[2]
            or patch.shape[0] != y.shape[0] or patch.shape[3] != y.shape[3]):
        raise _Refuse(f"patch {list(patch.shape)} at row {a.row}, column {a.col} is not inside "
                      f"{list(y.shape)}", patch)


def patch_read_rule(g: Graph, op: Op) -> None:
    """PATCH_READ: the patch's rows and columns lie inside the consecutive bands it reads."""
    y = g.tensors[op.outputs[0]]
    bands = [g.tensors[t] for t in op.inputs]
    a = op.attrs_as(WindowAttrs)
    rows = sum(b.shape[1] for b in bands)
    if (a.row < 0 or a.col < 0 or a.row + y.shape[1] > rows or a.col + y.shape[2] > bands[0].shape[2]
            or any(b.shape[2:] != bands[0].shape[2:] for b in bands) or y.shape[3] != bands[0].shape[3]):
        raise _Refuse(f"patch {list(y.shape)} at row {a.row}, column {a.col} is not inside its bands", y)


def row_views_rule(g: Graph, op: Op) -> None:
    """ROW_BANDS / ROW_JOIN: the bands are consecutive full-width rows of the whole."""
    if opspec.row_views(g, op) is None:
        raise _Refuse("the bands are not consecutive full-width rows of one tensor")


def depth_to_space_rule(g: Graph, op: Op) -> None:
    """TFLM's checks: a 4-D input whose channels fill whole blocks; the output's shape is
    the one TFLM computes (it overwrites the file's)."""
    x, y = _int8_io(g, op, (1, 1))
    _rank(x, 4)
    b = op.attrs_as(BlockAttrs).block_size
    n, h, w, c = x.shape
    if c % (b * b):
        raise _Refuse(f"{c} channels do not fill {b}x{b} blocks", x)
    _shape(y, (n, h * b, w * b, c // (b * b)))


def space_to_depth_rule(g: Graph, op: Op) -> None:
    """TFLM's checks: a 4-D input whose height and width are multiples of the block."""
    x, y = _int8_io(g, op, (1, 1))
    _rank(x, 4)
    b = op.attrs_as(BlockAttrs).block_size
    n, h, w, c = x.shape
    if h % b or w % b:
        raise _Refuse(f"height {h} and width {w} are not multiples of the block size {b}", x)
    _shape(y, (n, h // b, w // b, c * b * b))


def space_to_batch_rule(g: Graph, op: Op) -> None:
    """TFLM's int8 SPACE_TO_BATCH_ND writes padding from a parameter it never sets (its
    persistent SpaceToBatchParams.output_offset), so only unpadded ones are bit-exact."""
    x, y = _int8_io(g, op, (3, 3))
    _same_quant(x, y)
    a = op.attrs_as(BatchSpaceAttrs)
    if any(p != (0, 0) for p in a.pads):
        raise _Refuse(f"paddings {list(a.pads)}: TFLM pads with an uninitialised value "
                      "(its SpaceToBatchParams.output_offset is never set)")
    bh, bw, *_ = a.as_4d()
    n, h, w, c = BatchSpaceAttrs.shape_4d(x.shape)
    if h % bh or w % bw:
        raise _Refuse(f"spatial size {h}x{w} is not a multiple of the block {bh}x{bw}", x)
    _shape(y, (n * bh * bw, h // bh) + ((w // bw,) if len(x.shape) == 4 else ()) + (c,))


def batch_to_space_rule(g: Graph, op: Op) -> None:
    x, y = _int8_io(g, op, (3, 3))
    _same_quant(x, y)
    bh, bw, ct, cb, cl, cr = op.attrs_as(BatchSpaceAttrs).as_4d()
    n, h, w, c = BatchSpaceAttrs.shape_4d(x.shape)
    if n % (bh * bw):
        raise _Refuse(f"batch {n} is not a multiple of the block {bh}x{bw}", x)
    oh, ow = h * bh - ct - cb, w * bw - cl - cr
    if oh < 0 or ow < 0:
        raise _Refuse(f"crops {ct}+{cb}, {cl}+{cr} exceed the {h * bh}x{w * bw} output")
    _shape(y, (n // (bh * bw), oh) + ((ow,) if len(x.shape) == 4 else ()) + (c,))


def resize_rule(g: Graph, op: Op) -> None:
    x, y = _int8_io(g, op, (2, 2))
    _rank(x, 4)
    _rank(y, 4)
    if op.kind is OpKind.RESIZE_NEAREST_NEIGHBOR:
        _same_quant(x, y)
    if (y.shape[0], y.shape[3]) != (x.shape[0], x.shape[3]):
        raise _Refuse("resize changes batch or channels", y)


def softmax_rule(g: Graph, op: Op) -> None:
    unary_same_shape_rule(g, op)
    beta = op.attrs_as(SoftmaxAttrs).beta
    if not beta > 0 or not math.isfinite(beta):
        raise _Refuse(f"softmax beta {beta} not supported")


def log_softmax_rule(g: Graph, op: Op) -> None:
    x, _y = _int8_io(g, op, (1, 1))
    unary_same_shape_rule(g, op)
    # the Q12.19 sum of up to `depth` exponentials (each at most 2^19) must not wrap
    if x.shape and x.shape[-1] >= 4096:
        raise _Refuse(f"last dimension {x.shape[-1]} of 4096 or more (the Q12.19 sum of "
                      "exponentials could overflow)", x)


# ---------------------------------------------------------------------------------------------
# float32 heads and tails (op_registry.Float32Impl): TFLM's float reference kernels

# Fused activations of the float ops: (lo, hi) as TFLite's CalculateActivationRange<float>.
FLOAT_ACTIVATION_RANGE = {
    Activation.NONE: (-float(np.finfo(np.float32).max), float(np.finfo(np.float32).max)),
    Activation.RELU: (0.0, float(np.finfo(np.float32).max)),
    Activation.RELU6: (0.0, 6.0),
    Activation.RELU_N1_TO_1: (-1.0, 1.0),
}


def _float32(t: Tensor) -> None:
    if t.dtype is not DType.FLOAT32:
        raise _Refuse(f"{t.dtype.value} tensor in a float32 op (one type for every operand; "
                      "QUANTIZE / DEQUANTIZE convert)", t)
    if t.data is not None and not np.all(np.isfinite(np.asarray(t.data, dtype=np.float32))):
        raise _Refuse("float32 constant with an infinity or NaN not supported", t)


def float_binary_rule(g: Graph, op: Op) -> None:
    _arity(g, op, (2, 2))
    x1, x2 = _ins(g, op)
    (y,) = _outs(g, op)
    for t in (x1, x2, y):
        _float32(t)
    if isinstance(op.attrs, ElementwiseAttrs) and op.attrs.activation not in FLOAT_ACTIVATION_RANGE:
        raise _Refuse(f"fused activation {op.attrs.activation.value} not supported")
    _shape(y, _broadcast(x1.shape, x2.shape))
    # TFLM's float broadcasts (BroadcastAdd4DSlow, BroadcastMul4DSlow) extend shapes to 4-D
    if tuple(x1.shape) != tuple(x2.shape) and len(y.shape) > 4:
        raise _Refuse("float32 broadcasting beyond 4 dimensions (TFLM's float kernels take 4)")


def float_unary_rule(g: Graph, op: Op) -> None:
    _arity(g, op, (1, 1))
    (x,), (y,) = _ins(g, op), _outs(g, op)
    _float32(x)
    _float32(y)
    _shape(y, x.shape)


def float_softmax_rule(g: Graph, op: Op) -> None:
    float_unary_rule(g, op)
    (x,) = _ins(g, op)
    if not x.shape:
        raise _Refuse("softmax of a scalar", x)
    if op.kind is OpKind.SOFTMAX:
        beta = op.attrs_as(SoftmaxAttrs).beta
        if not math.isfinite(beta):
            raise _Refuse(f"softmax beta {beta} not supported")


def float_reshape_rule(g: Graph, op: Op) -> None:
    if not op.inputs or op.inputs[0] < 0 or len(op.outputs) != 1:
        raise _Refuse("expects a data input and one output")
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    _float32(x)
    _float32(y)
    if x.num_elements != y.num_elements:
        raise _Refuse(f"reshape of {list(x.shape)} to {list(y.shape)} changes the element count", y)


def float32_only(g: Graph, op: Op) -> None:
    """The int8 rule of ops TFLM runs on float32 only (EXP, LOG, SQRT): reached only when the
    data is not float32."""
    x = g.tensors[op.inputs[0]] if op.inputs and op.inputs[0] >= 0 else None
    dtype = f"{x.dtype.value} " if x is not None else ""
    raise _Refuse(f"{dtype}{op.kind.value} not supported (TFLM runs it on float32 only)", x)


def quantize_rule(g: Graph, op: Op) -> None:
    _arity(g, op, (1, 1))
    (x,), (y,) = _ins(g, op), _outs(g, op)
    _shape(y, x.shape)
    if x.dtype is DType.FLOAT32:
        if y.dtype is not DType.INT8:
            raise _Refuse(f"QUANTIZE float32 -> {y.dtype.value} not supported", y)
        _per_tensor(y)
        return
    if (x.dtype, y.dtype) == (DType.INT8, DType.INT8):
        _per_tensor(x)
        _per_tensor(y)
        return
    if {x.dtype, y.dtype} == {DType.INT8, DType.UINT8}:
        _per_tensor(x)
        _per_tensor(y)
        edge_ok = op.inputs[0] in g.inputs if x.dtype is DType.UINT8 else op.outputs[0] in g.outputs
        if not edge_ok:
            raise _Refuse("uint8 <-> int8 QUANTIZE only at the model's edges", x)
        return
    bad = y if x.dtype in (DType.INT8, DType.FLOAT32, DType.UINT8) else x
    raise _Refuse(f"QUANTIZE {x.dtype.value} -> {y.dtype.value} not supported", bad)


def dequantize_rule(g: Graph, op: Op) -> None:
    _arity(g, op, (1, 1))
    (x,), (y,) = _ins(g, op), _outs(g, op)
    _shape(y, x.shape)
    if x.dtype is not DType.INT8 or y.dtype is not DType.FLOAT32:
        raise _Refuse(f"DEQUANTIZE {x.dtype.value} -> {y.dtype.value} not supported (int8 -> float32 only)", x)
    _per_tensor(x)


_EDGE_TYPES = (DType.INT8, DType.UINT8, DType.FLOAT32)


def _check_edges(g: Graph) -> list[Problem]:
    """Model inputs and outputs: int8, or float32/uint8 consumed/produced only by QUANTIZE or
    DEQUANTIZE (checked per op above)."""
    problems = []
    if not g.ops:
        problems.append(Problem("the model has no operators"))
    for t in g.inputs + g.outputs:
        tensor = g.tensors[t]
        # int32 outputs: the indices of ARG_MAX / ARG_MIN (every other op refuses int32 data)
        edge_types = _EDGE_TYPES + ((DType.INT32,) if t in g.outputs else ())
        if tensor.dtype not in edge_types:
            problems.append(Problem(f"model input/output of type {tensor.dtype.value} not supported",
                                    tensor=tensor.name))
        elif tensor.packed_int4:
            problems.append(Problem("model input/output of type int4 not supported", tensor=tensor.name))
        if tensor.is_constant and t in g.outputs:
            problems.append(Problem("model output is a constant", tensor=tensor.name))
    return problems


# ---------------------------------------------------------------------------------------------
# Graph structure


def check_structure(graph: Graph) -> list[Problem]:
    """Execution order and single producers: the file's op order must be a valid schedule.

    Every non-constant input of an op is a graph input or the output of an earlier op (this
    also rules out cycles), no tensor is produced twice, constants and graph inputs are never
    overwritten, and every graph output is produced (or is an input or constant).
    """
    problems: list[Problem] = []
    available = {t.index for t in graph.tensors if t.is_constant} | set(graph.inputs)
    producer: dict[int, Op] = {}
    later = {t: op for op in reversed(graph.ops) for t in op.outputs}
    for op in graph.ops:
        for t in op.inputs:
            if t < 0 or t in available:
                continue
            name = graph.tensors[t].name
            if t in later and later[t] is not op and t not in producer:
                problems.append(Problem(f"input is produced by later op {later[t].index}: the file's "
                                        "order is not an execution order (or the graph has a cycle)",
                                        op.index, op.kind.value, name))
            else:
                problems.append(Problem("input is neither a constant, a model input nor produced "
                                        "by an earlier op", op.index, op.kind.value, name))
        for t in op.outputs:
            name = graph.tensors[t].name
            if t in producer:
                problems.append(Problem(f"output already produced by op {producer[t].index}",
                                        op.index, op.kind.value, name))
            elif graph.tensors[t].is_constant:
                problems.append(Problem("output is a constant tensor", op.index, op.kind.value, name))
            elif t in graph.inputs:
                problems.append(Problem("output is a model input", op.index, op.kind.value, name))
            producer[t] = op
            available.add(t)
    for t in graph.outputs:
        if t not in available:
            problems.append(Problem("model output is never produced", tensor=graph.tensors[t].name))
    return problems
