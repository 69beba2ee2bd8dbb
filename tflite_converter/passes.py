"""Legalisation passes: rewrite a read Graph into the forms the engine runs, bit-exactly.

Every pass takes a Graph and returns a new Graph (the input is not modified; tensors and ops
are shallow-copied) whose outputs are byte-identical to the input graph's for every input, under
TFLite Micro's integer arithmetic. `legalize(graph)` composes them:

1. `fold_constants`      ops whose results are constants (SHAPE, PACK, RESHAPE/TRANSPOSE/
                         STRIDED_SLICE/CONCATENATION/GATHER/DEQUANTIZE of constants) become constant
                         tensors, repeated until no op's inputs newly became constant.
2. `normalize_reshapes`  SQUEEZE / EXPAND_DIMS become RESHAPE with the data input only. The
                         planner treats every RESHAPE as a zero-copy alias: same bytes, same
                         offset (validate guarantees equal element counts and quantization).
3. `fold_batch_space_conv` SPACE_TO_BATCH_ND -> CONV_2D / DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND
                         (how older exporters wrote a dilated convolution) into one dilated
                         convolution, where exact (the conditions are in its docstring).
3b. `fold_pads`          PAD / PADV2 with the zero-point value into the next convolution's pads.
4. `remove_quantize_noops` int8->int8 QUANTIZE that is the identity, and pairs that cancel or
                         compose into one requantization, proven over all 256 int8 values.
5. `push_transpose_through_reduce` the NCHW-style TRANSPOSE + MEAN head of PyTorch exports.
6. `check_schedule`      the ops are in an execution order: every input produced before use.

Fused activations stay as attributes; every int8 kernel applies them as an output clamp whose
bounds `activation_range` computes with TFLite's exact rule.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

from engine import quantization
from tflite_converter import op_registry
from tflite_converter.errors import ConversionError
from tflite_converter.ir import (
    Activation,
    BatchSpaceAttrs,
    ConcatAttrs,
    ConvAttrs,
    DType,
    GatherAttrs,
    Graph,
    Op,
    OpKind,
    PackAttrs,
    PadAttrs,
    Pads,
    Quantization,
    ReduceAttrs,
    ReshapeAttrs,
    StridedSliceAttrs,
    Tensor,
    TransposeAttrs,
    same_quantization,
)
from tflite_converter.validate import check_structure

Pass = Callable[[Graph], Graph]


# ---------------------------------------------------------------------------------------------
# Activation clamps


def activation_range(act: Activation, out_quant: Quantization,
                     dtype: DType = DType.INT8) -> tuple[int, int]:
    """(qmin, qmax) of a fused activation as an output clamp, as TFLite computes it
    (CalculateActivationRangeQuantized; the rule is `engine.quantization.activation_range`),
    for an IR activation and output quantization, clamped into `dtype`'s range. Activations
    that are not clamps (TANH, SIGN_BIT) raise ValueError (validate refuses them before any
    kernel asks)."""
    info = np.iinfo(dtype.np)
    return quantization.activation_range(act.value, float(out_quant.scale.reshape(-1)[0]),
                                         int(out_quant.zero_point.reshape(-1)[0]),
                                         int(info.min), int(info.max))


# ---------------------------------------------------------------------------------------------
# Graph editing helpers


def _copy(graph: Graph) -> Graph:
    return Graph(tensors=[dataclasses.replace(t) for t in graph.tensors],
                 ops=[dataclasses.replace(op, inputs=list(op.inputs), outputs=list(op.outputs))
                      for op in graph.ops],
                 inputs=list(graph.inputs), outputs=list(graph.outputs), name=graph.name)


def _rewire(graph: Graph, old: int, new: int) -> None:
    """Every use of tensor `old` (op inputs, model outputs) now reads tensor `new`."""
    for op in graph.ops:
        op.inputs = [new if t == old else t for t in op.inputs]
    graph.outputs = [new if t == old else t for t in graph.outputs]


def _add_tensor(graph: Graph, like: Tensor, name: str, shape: tuple[int, ...]) -> int:
    index = len(graph.tensors)
    graph.tensors.append(Tensor(index=index, name=name, shape=tuple(shape), dtype=like.dtype,
                                quant=like.quant))
    return index


def _sole_consumer(graph: Graph, tensor: int) -> Optional[Op]:
    """The only op reading `tensor` (once), if it is not also a model output."""
    if tensor in graph.outputs:
        return None
    users = [op for op in graph.ops if tensor in op.inputs]
    if len(users) != 1 or users[0].inputs.count(tensor) != 1:
        return None
    return users[0]


# ---------------------------------------------------------------------------------------------
# 1. Constant folding


def _const(graph: Graph, index: int) -> np.ndarray:
    """The values of a constant tensor (folding runs only on ops whose inputs are constant)."""
    data = graph.tensors[index].data
    if data is None:
        raise ValueError(f"tensor {index} is not constant")
    return data


def fold_shape(graph: Graph, op: Op) -> Optional[np.ndarray]:
    return np.asarray(graph.tensors[op.inputs[0]].shape)


def fold_pack(graph: Graph, op: Op) -> Optional[np.ndarray]:
    return np.stack([_const(graph, i) for i in op.inputs], axis=op.attrs_as(PackAttrs).axis)


def fold_reshape(graph: Graph, op: Op) -> Optional[np.ndarray]:
    return graph.tensors[op.inputs[0]].data  # reshaped to the output's shape below


def fold_transpose(graph: Graph, op: Op) -> Optional[np.ndarray]:
    return np.transpose(_const(graph, op.inputs[0]), op.attrs_as(TransposeAttrs).perm)


def fold_dequantize(graph: Graph, op: Op) -> Optional[np.ndarray]:
    x, data = graph.tensors[op.inputs[0]], _const(graph, op.inputs[0])
    if x.dtype is DType.FLOAT16:
        return data.astype(np.float32)
    if x.quant is None:
        return None
    scale, zp = x.quant.scale.astype(np.float32), x.quant.zero_point
    if x.quant.axis is not None:
        bshape = [1] * len(x.shape)
        bshape[x.quant.axis] = -1
        scale, zp = scale.reshape(bshape), zp.reshape(bshape)
    return ((data.astype(np.int64) - zp).astype(np.float32) * scale).astype(np.float32)


def fold_strided_slice(graph: Graph, op: Op) -> Optional[np.ndarray]:
    """The reader resolved begin/end/strides (masks and clamping applied, end exclusive), so
    the slice is the same index ranges the copy kernel walks; shrunk axes have one index and
    disappear when the caller reshapes to the output's shape."""
    a = op.attrs_as(StridedSliceAttrs)
    data = _const(graph, op.inputs[0])
    if not len(a.begin) == len(a.end) == len(a.strides) == data.ndim:
        return None
    ranges = [np.arange(b, e, s) for b, e, s in zip(a.begin, a.end, a.strides)]
    return data[np.ix_(*ranges)] if ranges else data


def fold_concat(graph: Graph, op: Op) -> Optional[np.ndarray]:
    """Only what TFLM's CONCATENATION does by copying bytes: no fused activation and one
    quantization for every input and the output (int32 shape pieces have none)."""
    a = op.attrs_as(ConcatAttrs)
    out_quant = graph.tensors[op.outputs[0]].quant
    if a.activation is not Activation.NONE or not all(
            same_quantization(graph.tensors[i].quant, out_quant) for i in op.inputs):
        return None
    return np.concatenate([_const(graph, i) for i in op.inputs], axis=a.axis)


def fold_gather(graph: Graph, op: Op) -> Optional[np.ndarray]:
    """Only what TFLM's GATHER runs (int8 or float32 params, int32 indices, each inside the
    axis), without batch dimensions."""
    a = op.attrs_as(GatherAttrs)
    x, idx = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if x.dtype not in (DType.INT8, DType.FLOAT32) or idx.dtype is not DType.INT32 or a.batch_dims:
        return None
    params, indices = _const(graph, op.inputs[0]), _const(graph, op.inputs[1])
    if np.any(indices < 0) or np.any(indices >= params.shape[a.axis]):
        return None
    return np.take(params, indices, axis=a.axis)


def _fold_op(g: Graph, op: Op) -> bool:
    """Give the op's output its computed constant value; False (and no change) when the op
    has no fold rule, its inputs are not constant yet, or the value is not exact."""
    rec = op_registry.record(op.kind)
    rule = None if rec is None else rec.fold
    if rule is None or len(op.outputs) != 1 or any(i < 0 for i in op.inputs):
        return False
    slots = range(len(op.inputs)) if rule.const_inputs is None else rule.const_inputs
    if not all(s < len(op.inputs) and g.tensors[op.inputs[s]].is_constant for s in slots):
        return False
    out = g.tensors[op.outputs[0]]
    try:
        value = rule.compute(g, op)
    except (ValueError, IndexError, TypeError):  # e.g. PACK of unequal shapes
        value = None
    if value is None or value.size != out.num_elements:
        return False
    converted = value.astype(out.dtype.np).reshape(out.shape)
    if not np.array_equal(converted, value.reshape(out.shape)):
        return False
    converted.setflags(write=False)
    out.data = converted
    return True


def fold_constants(graph: Graph) -> Graph:
    """Replace ops whose outputs are computable now by constant output tensors, to a fixed
    point: a folded output can make the next op's inputs constant (Keras' dynamic-batch
    SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE folds to a RESHAPE by a constant shape).

    The folded values are what TFLite computes: SHAPE, PACK, RESHAPE, TRANSPOSE,
    STRIDED_SLICE, CONCATENATION and GATHER move values without arithmetic, DEQUANTIZE is
    scale * (q - zero_point) in float32. An op is folded only when the computed array has
    exactly the output tensor's shape and converts to its dtype without change; otherwise it
    stays and validate names it.
    """
    g = _copy(graph)
    while True:
        kept = [op for op in g.ops if not _fold_op(g, op)]
        if len(kept) == len(g.ops):
            return g
        g.ops = kept


# ---------------------------------------------------------------------------------------------
# 2. Reshape aliases


_RESHAPE_KINDS = (OpKind.RESHAPE, OpKind.SQUEEZE, OpKind.EXPAND_DIMS)


def normalize_reshapes(graph: Graph) -> Graph:
    """SQUEEZE / EXPAND_DIMS / RESHAPE -> RESHAPE(data) with ReshapeAttrs.

    The output shape is the output tensor's; the shape/axis operands are dropped, so every
    RESHAPE has exactly one input. The planner gives the output the input's offset (an alias);
    the bytes are the same in both shapes, so nothing is computed.
    """
    g = _copy(graph)
    for op in g.ops:
        if op.kind in _RESHAPE_KINDS:
            op.kind, op.inputs, op.attrs = OpKind.RESHAPE, op.inputs[:1], ReshapeAttrs()
    return g


# ---------------------------------------------------------------------------------------------
# 3. PAD folding


def fold_batch_space_conv(graph: Graph) -> Graph:
    """SPACE_TO_BATCH_ND (block bh x bw) -> CONV_2D / DEPTHWISE_CONV_2D -> BATCH_TO_SPACE_ND
    (the same block) becomes the convolution with dilation (d_h * bh, d_w * bw) and pads
    (bh * top, bh * bottom, bw * left, bw * right) of its input, reading the S2B's input and
    writing the B2S's output.

    Proof (rows; columns alike). Let H = Hs * bh be the input height (the S2B has no padding:
    validate refuses padded ones, whose padding TFLM never initialises) and n the batch. The
    S2B puts input row r = h * bh + i of image b into row h of image (i * bw + j) * n + b. The
    convolution (stride 1, dilation d, pads t / b on the sub-image) computes sub-image output
    row ho from sub-image rows ho - t + a * d for taps a = 0 .. k-1, skipping those outside
    [0, Hs). The B2S with zero crops writes that result to output row y = ho * bh + i of image
    b. Those sub-image rows are the input rows (ho - t + a * d) * bh + i = y - bh * t +
    a * (d * bh), and one lies in [0, H) exactly when its sub-image row lies in [0, Hs)
    (0 <= i < bh). That is the convolution of the input at row y with dilation d * bh and top
    pad bh * t, skipping the same taps. Its output height H + bh (t + b) - d bh (k - 1) =
    bh * (Hs + t + b - d (k - 1)) is the B2S's. Per-channel arithmetic, bias, requantisation and
    fused activation are untouched.

    Conditions (otherwise the three ops are kept; each runs exactly on its own): 4-D tensors,
    convolution stride 1, equal blocks, no B2S crops, S2B output read only by the convolution
    and the convolution's output only by the B2S (neither a model output).
    """
    return _fold_into_convs(graph, _fold_batch_space)


def _fold_batch_space(g: Graph, producers: dict[int, Op], conv: Op) -> tuple[Op, ...]:
    s2b = producers.get(conv.inputs[0])
    b2s = _sole_consumer(g, conv.outputs[0])
    if (s2b is None or s2b.kind is not OpKind.SPACE_TO_BATCH_ND or b2s is None
            or b2s.kind is not OpKind.BATCH_TO_SPACE_ND
            or _sole_consumer(g, conv.inputs[0]) is not conv):
        return ()
    sa, ba, a = s2b.attrs_as(BatchSpaceAttrs), b2s.attrs_as(BatchSpaceAttrs), conv.attrs_as(ConvAttrs)
    if (len(sa.block) != 2 or sa.block != ba.block or any(sa.pads[k] != (0, 0) for k in (0, 1))
            or any(ba.pads[k] != (0, 0) for k in (0, 1)) or (a.stride_h, a.stride_w) != (1, 1)):
        return ()
    bh, bw = sa.block
    p = a.pads
    conv.attrs = dataclasses.replace(
        a, dilation_h=a.dilation_h * bh, dilation_w=a.dilation_w * bw,
        pads=Pads(p.top * bh, p.bottom * bh, p.left * bw, p.right * bw))
    conv.inputs[0] = s2b.inputs[0]
    conv.outputs[0] = b2s.outputs[0]
    return s2b, b2s


FoldFn = Callable[[Graph, dict[int, Op], Op], tuple[Op, ...]]


def _fold_into_convs(graph: Graph, fold: FoldFn) -> Graph:
    """Offer every CONV_2D / DEPTHWISE_CONV_2D to `fold`, which rewrites it in place and
    returns the neighbouring ops it absorbed (removed from the graph), or () to keep it."""
    g = _copy(graph)
    producers = g.producers()
    removed: set[int] = set()  # each absorbed op fed (or read) only the one conv
    for conv in g.ops:
        if conv.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D):
            removed.update(id(op) for op in fold(g, producers, conv))
    g.ops = [op for op in g.ops if id(op) not in removed]
    return g


def fold_pads(graph: Graph) -> Graph:
    """PAD / PADV2 -> CONV_2D or DEPTHWISE_CONV_2D folded into the convolution's `pads`.

    Exact because TFLite's int8 convolutions compute sum((x - zp_in) * w) over the taps inside
    the input and skip the taps in the padding; a tap on a padded pixel whose value is the
    input zero point contributes (zp_in - zp_in) * w = 0. So padding the input with zp_in
    explicitly and convolving with pads p equals convolving the unpadded input with pads
    p + pad amounts. Conditions: the pad value is the conv input's zero point, only H and W
    are padded, the PAD's input and output have the same quantization (TFLite requires it),
    and the padded tensor has no other reader and is not a model output.
    """
    return _fold_into_convs(graph, _fold_pad)


def _fold_pad(g: Graph, producers: dict[int, Op], conv: Op) -> tuple[Op, ...]:
    pad = producers.get(conv.inputs[0])
    if pad is None or pad.kind not in (OpKind.PAD, OpKind.PADV2):
        return ()
    padded = g.tensors[conv.inputs[0]]
    source = g.tensors[pad.inputs[0]]
    if _sole_consumer(g, padded.index) is not conv or padded.quant is None:
        return ()
    pa = pad.attrs_as(PadAttrs)
    if len(pa.paddings) != 4 or pa.paddings[0] != (0, 0) or pa.paddings[3] != (0, 0):
        return ()
    if not same_quantization(source.quant, padded.quant) or padded.quant.scale.size != 1:
        return ()
    if pa.pad_value != int(padded.quant.zero_point[0]):
        return ()
    (pt, pb), (pl, pr) = pa.paddings[1], pa.paddings[2]
    a = conv.attrs_as(ConvAttrs)
    p = a.pads
    conv.attrs = dataclasses.replace(a, pads=Pads(p.top + pt, p.bottom + pb, p.left + pl, p.right + pr))
    conv.inputs[0] = source.index
    return (pad,)


# ---------------------------------------------------------------------------------------------
# 4. Requantization


def requantize_table(src: Quantization, dst: Quantization, single_rounding: bool = False) -> np.ndarray:
    """The int8 -> int8 QUANTIZE of TFLite as a 256-entry int64 table, indexed by x + 128
    (`engine.quantization.requantize_table`, which is indexed by the byte, reordered)."""
    table = quantization.requantize_table("int8", src.scalar_scale, src.scalar_zero_point, "int8",
                                          dst.scalar_scale, dst.scalar_zero_point,
                                          single_rounding=single_rounding)
    return table[np.arange(-128, 128).astype(np.uint8)].astype(np.int64)


def _compose(tables: list[tuple[Quantization, Quantization]], rounding: bool) -> np.ndarray:
    x = np.arange(-128, 128, dtype=np.int64)
    for src, dst in tables:
        x = requantize_table(src, dst, rounding)[x + 128]
    return x


def _int8_requantize(graph: Graph, op: Op) -> bool:
    if op.kind is not OpKind.QUANTIZE or len(op.inputs) != 1 or len(op.outputs) != 1:
        return False
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    return (x.dtype is DType.INT8 and y.dtype is DType.INT8 and x.quant is not None
            and y.quant is not None and x.quant.scale.size == 1 and y.quant.scale.size == 1)


def _quant(graph: Graph, index: int) -> Quantization:
    """The parameters of a tensor `_int8_requantize` has checked to be quantized."""
    q = graph.tensors[index].quant
    if q is None:
        raise ValueError(f"tensor {index} is not quantized")
    return q


def _equal_under_both_roundings(chain: list[tuple[Quantization, Quantization]],
                                target: Optional[tuple[Quantization, Quantization]]) -> bool:
    """Is the chain of requantizations equal, on all 256 inputs, to `target` (None: identity)?
    Checked under both rounding builds of TFLite so the answer does not depend on one."""
    identity = np.arange(-128, 128, dtype=np.int64)
    for rounding in (False, True):
        want = identity if target is None else requantize_table(*target, single_rounding=rounding)
        if not np.array_equal(_compose(chain, rounding), want):
            return False
    return True


def _can_bypass(graph: Graph, src: int, dst: int) -> bool:
    """Can readers of `dst` read `src` instead? Not when that would make a model input or a
    constant a model output directly (the engine writes every output)."""
    if dst in graph.outputs and (src in graph.inputs or graph.tensors[src].is_constant):
        return False
    return True


def remove_quantize_noops(graph: Graph) -> Graph:
    """Remove int8 -> int8 QUANTIZE ops that change nothing, and merge chains of two.

    A single requantization is removed when its table over all 256 int8 inputs is the identity
    (identical parameters always are); a pair A -> B -> C (B read only by the second) is removed
    when the composition is the identity and A, C have the same parameters, or replaced by one
    A -> C requantization when the composition equals it. Tables follow TFLite's
    QuantizeMultiplier / MultiplyByQuantizedMultiplier exactly, under both rounding builds.
    """
    g = _copy(graph)
    changed = True
    while changed:
        changed = False
        for op in list(g.ops):
            if not _int8_requantize(g, op):
                continue
            a, b = op.inputs[0], op.outputs[0]
            qa, qb = _quant(g, a), _quant(g, b)
            if _equal_under_both_roundings([(qa, qb)], None) and _can_bypass(g, a, b):
                g.ops.remove(op)
                _rewire(g, b, a)
                changed = True
                break
            nxt = _sole_consumer(g, b)
            if nxt is None or not _int8_requantize(g, nxt):
                continue
            c = nxt.outputs[0]
            qc = _quant(g, c)
            chain = [(qa, qb), (qb, qc)]
            if same_quantization(qa, qc) and _equal_under_both_roundings(chain, None) and _can_bypass(g, a, c):
                g.ops.remove(op)
                g.ops.remove(nxt)
                _rewire(g, c, a)
                changed = True
                break
            if _equal_under_both_roundings(chain, (qa, qc)):
                op.outputs = [c]
                g.ops.remove(nxt)
                changed = True
                break
    return g


# ---------------------------------------------------------------------------------------------
# 5. TRANSPOSE pushed through MEAN / SUM


def _order_preserving(shape: tuple[int, ...], perm: tuple[int, ...]) -> bool:
    """Does transposing `shape` by `perm` leave the bytes in the same order? True when the
    dimensions of size > 1 keep their relative order (size-1 dimensions may move freely)."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


def push_transpose_through_reduce(graph: Graph) -> Graph:
    """TRANSPOSE(perm) -> MEAN/SUM(axes)  ==>  MEAN/SUM(perm[axes]) [-> TRANSPOSE(perm')].

    The NCHW-style head of PyTorch exports transposes NHWC to NCHW and then averages over the
    spatial axes (once or once per axis). Rewritten, the reduction runs on the NHWC tensor
    directly and the transpose moves behind it, onto the smaller reduced tensor, where it
    usually becomes the identity on memory order and disappears (a RESHAPE alias if only the
    shape differs). Repeated until no TRANSPOSE precedes a reduction.

    Why this is exact: TRANSPOSE only moves int8 values (TFLite requires identical input and
    output quantization). Output element j of the reduction over the transposed tensor reads
    the input elements whose indices agree with j on the kept axes; mapping every axis a of
    the transposed tensor to axis perm[a] of the original, the same set of values is reduced
    for the output element at the mapped position, with the same count. TFLM's int8 MEAN and
    SUM (reference QuantizedMeanOrSum) add the values into an int32 accumulator, which is exact
    and independent of order, then rescale from (sum, count) only. So the reduced values are
    identical and only their order differs, which perm' (the induced permutation of the kept
    axes) restores. Successive reductions are never merged: MEAN over W then over H rounds
    twice, MEAN over H,W once, and those differ.
    """
    g = _copy(graph)
    changed = True
    while changed:
        changed = False
        producers = g.producers()
        for red in g.ops:
            if red.kind not in (OpKind.MEAN, OpKind.SUM):
                continue
            tr = producers.get(red.inputs[0])
            if tr is None or tr.kind is not OpKind.TRANSPOSE:
                continue
            t_idx = red.inputs[0]
            x = g.tensors[tr.inputs[0]]
            t = g.tensors[t_idx]
            if _sole_consumer(g, t_idx) is not red or not same_quantization(x.quant, t.quant):
                continue
            perm = tr.attrs_as(TransposeAttrs).perm
            a = red.attrs_as(ReduceAttrs)
            new_axes = tuple(sorted(perm[ax] for ax in a.axes))
            kept_t = [ax for ax in range(len(perm)) if a.keep_dims or ax not in a.axes]
            kept_x = [ax for ax in range(len(perm)) if a.keep_dims or ax not in new_axes]
            # position of the transposed tensor's kept axis i in the new reduced tensor
            new_perm = tuple(kept_x.index(perm[ax]) for ax in kept_t)
            if a.keep_dims:
                reduced_shape = tuple(1 if i in new_axes else d for i, d in enumerate(x.shape))
            else:
                reduced_shape = tuple(d for i, d in enumerate(x.shape) if i not in new_axes)
            y_idx = red.outputs[0]
            y = g.tensors[y_idx]
            red.inputs[0] = x.index
            red.attrs = ReduceAttrs(new_axes, a.keep_dims)
            if len(red.inputs) > 1:  # keep the axes operand consistent with the attributes
                axes = np.asarray(new_axes, np.int32)
                axes.setflags(write=False)
                red.inputs[1] = len(g.tensors)
                g.tensors.append(Tensor(index=len(g.tensors), name=f"{y.name}/axes", shape=axes.shape,
                                        dtype=DType.INT32, data=axes))
            g.ops.remove(tr)
            if reduced_shape == tuple(y.shape):
                pass  # the reduction writes y directly
            else:
                mid = _add_tensor(g, y, f"{y.name}/nhwc", reduced_shape)
                red.outputs[0] = mid
                kind = OpKind.RESHAPE if _order_preserving(reduced_shape, new_perm) else OpKind.TRANSPOSE
                attrs = ReshapeAttrs() if kind is OpKind.RESHAPE else TransposeAttrs(new_perm)
                follow = Op(index=tr.index, kind=kind, inputs=[mid], outputs=[y_idx], attrs=attrs)
                g.ops.insert(g.ops.index(red) + 1, follow)
            changed = True
            break
    return g


# ---------------------------------------------------------------------------------------------
# 6. Schedule check and composition


def check_schedule(graph: Graph) -> Graph:
    """Raise ConversionError unless the ops are in an execution order (each input produced
    before use, each tensor produced once): every pass must keep this true."""
    problems = check_structure(graph)
    if problems:
        raise ConversionError(problems)
    return graph


PASSES: tuple[Pass, ...] = (
    fold_constants,
    normalize_reshapes,
    fold_batch_space_conv,
    fold_pads,
    remove_quantize_noops,
    push_transpose_through_reduce,
    check_schedule,
)


def legalize(graph: Graph) -> Graph:
    """All legalisation passes in order; the result is bit-identical to `graph`."""
    for p in PASSES:
        graph = p(graph)
    return graph
