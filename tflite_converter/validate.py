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

from tflite_converter import int4, op_registry, opspec
from tflite_converter.errors import ConversionError, Problem
from tflite_converter.ir import (
    Activation,
    AxisAttrs,
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
            rec = op_registry.record(op.kind)
            if rec is None:
                raise _Refuse("not supported by the engine")
            if rec.validate is None:  # an op the passes fold; still here: not foldable
                raise _Refuse("supported only when all its inputs are constant (then it is folded)")
            _int4_rule(graph, op)
            rec.validate(graph, op)
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
        raise _Refuse("float32 arithmetic not supported (int8 models only; float32 is accepted at "
                      "the model's edges through QUANTIZE/DEQUANTIZE)", t)
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
    if op.kind in (OpKind.ADD, OpKind.SUB, OpKind.MUL):
        _clamp(op.attrs_as(ElementwiseAttrs).activation)
    elif op.kind is OpKind.SQUARED_DIFFERENCE:
        # TFLM broadcasts it only through its 4-D slow path
        if tuple(x1.shape) != tuple(x2.shape) and max(len(x1.shape), len(x2.shape)) > 4:
            raise _Refuse("broadcasting beyond 4 dimensions (TFLM supports 4)")
    else:  # MAXIMUM / MINIMUM compare the stored int8 values: one scale for all three
        _same_quant(x1, y)
        _same_quant(x2, y)
    _shape(y, _broadcast(x1.shape, x2.shape))


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


def quantize_rule(g: Graph, op: Op) -> None:
    _arity(g, op, (1, 1))
    (x,), (y,) = _ins(g, op), _outs(g, op)
    _shape(y, x.shape)
    if x.dtype is DType.FLOAT32:
        if op.inputs[0] not in g.inputs:
            raise _Refuse("QUANTIZE from float32 only of a model input (float32 arithmetic "
                          "not supported)", x)
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
    if op.outputs[0] not in g.outputs:
        raise _Refuse("DEQUANTIZE only to a model output (float32 arithmetic not supported)", y)


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
