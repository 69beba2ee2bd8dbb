"""Ops that only move 8-bit values: PAD, PADV2, CONCATENATION, SPLIT, TRANSPOSE,
STRIDED_SLICE, DEPTH_TO_SPACE, SPACE_TO_DEPTH, SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND, all as
strided N-d copies
(engine/kernels/copy_nd.c), and GATHER by constant indices (engine/kernels/gather.c). TFLM's
int8 versions of these never rescale (CONCATENATION requires equal quantization), so neither
do we."""
from __future__ import annotations

import math
from typing import Callable, Sequence

from tflite_converter import opspec, passes, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, EmitFn, KernelCall
from tflite_converter.codegen.ops._common import (
    BYTE_TYPES,
    contiguous_strides,
    emit_copy,
    offset_ptr,
    qparams,
    refuse,
    require_dtype,
    same_offset,
)
from tflite_converter.ir import (
    Activation,
    BatchSpaceAttrs,
    BlockAttrs,
    ConcatAttrs,
    GatherAttrs,
    Op,
    OpKind,
    PadAttrs,
    SplitAttrs,
    StridedSliceAttrs,
    Tensor,
    TransposeAttrs,
)
from tflite_converter.op_registry import Fold, OpRecord, register

B = schema.BuiltinOperator
S = schema.S


def _byte_tensors(ctx: EmitContext, op: Op, indices) -> None:
    for i in indices:
        require_dtype(op, ctx.tensor(i), BYTE_TYPES)


def _byte_io(ctx: EmitContext, op: Op) -> tuple[int, int, Tensor, Tensor]:
    """(input index, output index, input, output) of a one-in one-out 8-bit copy op."""
    src, dst = op.inputs[0], op.outputs[0]
    _byte_tensors(ctx, op, (src, dst))
    return src, dst, ctx.tensor(src), ctx.tensor(dst)


def _emit_pad(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, PadAttrs):
        refuse(op, "missing padding attributes")
    src, dst, x, y = _byte_io(ctx, op)
    if len(a.paddings) != len(x.shape):
        refuse(op, "paddings do not match the input rank")
    if any(b < 0 or e < 0 for b, e in a.paddings):
        refuse(op, "negative padding")
    expect = tuple(d + b + e for d, (b, e) in zip(x.shape, a.paddings))
    if expect != tuple(y.shape):
        refuse(op, f"output shape {y.shape} is not the padded input shape {expect}")
    out_strides = contiguous_strides(y.shape)
    interior = sum(b * s for (b, _), s in zip(a.paddings, out_strides))
    lines = []
    if y.num_elements != x.num_elements:
        lines.append(f"mcu_fill_8({ctx.ptr(dst)}, {int(a.pad_value)}, {y.nbytes}u);")
    lines.append(emit_copy(ctx, op, f"op{op.index}_pad", ctx.ptr(src),
                           offset_ptr(ctx.ptr(dst), interior), x.shape,
                           contiguous_strides(x.shape), out_strides))
    return KernelCall("\n".join(line for line in lines if line), ("copy_nd",))


def _part_copies(ctx: EmitContext, op: Op, whole: int, parts: Sequence[int], axis: int,
                 gather: bool, tag: str) -> list[str]:
    """The copies of CONCATENATION (gather: each part into its slice of `whole`) and SPLIT
    (each part out of its slice of `whole`), the slices consecutive along `axis`. A part the
    plan already placed at its slice (its producer wrote it in place) needs no copy."""
    w = ctx.tensor(whole)
    whole_strides = contiguous_strides(w.shape)
    lines, start = [], 0
    for k, part in enumerate(parts):
        t = ctx.tensor(part)
        offset = start * whole_strides[axis]
        start += t.shape[axis]
        if same_offset(ctx, part, whole, offset):
            continue
        hint, part_strides = f"op{op.index}_{tag}{k}", contiguous_strides(t.shape)
        if gather:
            part_ptr = ctx.ptr(part)
            lines.append(emit_copy(ctx, op, hint, part_ptr, offset_ptr(ctx.ptr(whole), offset),
                                   t.shape, part_strides, whole_strides))
        else:
            slice_ptr = offset_ptr(ctx.ptr(whole), offset)
            lines.append(emit_copy(ctx, op, hint, slice_ptr, ctx.ptr(part), t.shape,
                                   whole_strides, part_strides))
    if start != w.shape[axis]:
        refuse(op, "input sizes along the axis do not add up to the output's" if gather
               else "output sizes along the axis do not add up to the input's")
    return lines


def _emit_concat(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, ConcatAttrs):
        refuse(op, "missing concatenation attributes")
    if a.activation is not Activation.NONE:
        refuse(op, f"fused activation {a.activation.value} on CONCATENATION is not supported")
    dst = op.outputs[0]
    _byte_tensors(ctx, op, (*op.inputs, dst))
    yq = qparams(op, ctx.tensor(dst))
    for src in op.inputs:
        if qparams(op, ctx.tensor(src)) != yq:
            refuse(op, "inputs and output quantization differ (TFLM requires them equal)",
                   ctx.tensor(src))
    lines = _part_copies(ctx, op, dst, op.inputs, a.axis, gather=True, tag="concat")
    return KernelCall("\n".join(line for line in lines if line), ("copy_nd",))


def _emit_split(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, SplitAttrs):
        refuse(op, "missing split attributes")
    # SPLIT's inputs are (axis, data); the data tensor is the non-constant / last one.
    src = op.inputs[-1]
    _byte_tensors(ctx, op, (src, *op.outputs))
    lines = _part_copies(ctx, op, src, op.outputs, a.axis, gather=False, tag="split")
    return KernelCall("\n".join(line for line in lines if line), ("copy_nd",))


def _emit_transpose(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, TransposeAttrs):
        refuse(op, "missing permutation")
    src, dst, x, y = _byte_io(ctx, op)
    if sorted(a.perm) != list(range(len(x.shape))):
        refuse(op, f"perm {a.perm} is not a permutation of {len(x.shape)} dimensions")
    in_strides = contiguous_strides(x.shape)
    dims = [x.shape[p] for p in a.perm]
    if tuple(dims) != tuple(y.shape):
        refuse(op, f"output shape {y.shape} does not match the permuted input {tuple(dims)}")
    code = emit_copy(ctx, op, f"op{op.index}_transpose", ctx.ptr(src), ctx.ptr(dst), dims,
                     [in_strides[p] for p in a.perm], contiguous_strides(dims))
    return KernelCall(code, ("copy_nd",))


def _emit_strided_slice(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, StridedSliceAttrs):
        refuse(op, "missing slice attributes")
    src, dst, x, y = _byte_io(ctx, op)
    if not (len(a.begin) == len(a.end) == len(a.strides) == len(x.shape)):
        refuse(op, "begin/end/strides do not match the input rank")
    in_strides = contiguous_strides(x.shape)
    dims, strides, base = [], [], 0
    for b, e, s, st, d in zip(a.begin, a.end, a.strides, in_strides, x.shape):
        if s == 0:
            refuse(op, "slice stride 0")
        n = max(0, -(-(e - b) // s)) if s > 0 else max(0, -(-(b - e) // -s))
        if n and not (0 <= b < d and 0 <= b + (n - 1) * s < d):
            refuse(op, "slice reads outside the input")
        dims.append(n)
        strides.append(s * st)
        base += b * st if n else 0
    total = 1
    for n in dims:
        total *= n
    if total != y.num_elements:
        refuse(op, f"slice of {total} elements does not fill the output of {y.num_elements}")
    code = emit_copy(ctx, op, f"op{op.index}_slice", offset_ptr(ctx.ptr(src), base),
                     ctx.ptr(dst), dims, strides, contiguous_strides(dims))
    return KernelCall(code, ("copy_nd",))


# DEPTH_TO_SPACE / SPACE_TO_DEPTH as one 6-d copy: (dims, input strides) of the walk in the
# output's order, which the output's contiguous strides then write; block b, NHWC input.
BlockLayout = Callable[[Sequence[int], int], tuple[list[int], list[int]]]


def depth_to_space_layout(shape: Sequence[int], b: int) -> tuple[list[int], list[int]]:
    """TFLite's DCR order: output[n, h*b + i, w*b + j, c] = input[n, h, w, (i*b + j)*C' + c],
    C' = C / b^2; the output walked as [n, h, i, w, j, c]."""
    n, h, w, c = shape
    co = c // (b * b)
    return [n, h, b, w, b, co], [h * w * c, w * c, b * co, c, co, 1]


def space_to_depth_layout(shape: Sequence[int], b: int) -> tuple[list[int], list[int]]:
    """output[n, h, w, (i*b + j)*C + c] = input[n, h*b + i, w*b + j, c]; the output walked
    as [n, h, w, i, j, c]."""
    n, hh, ww, c = shape
    return [n, hh // b, ww // b, b, b, c], [hh * ww * c, b * ww * c, b * c, ww * c, c, 1]


def _block_move(layout: BlockLayout, tag: str) -> EmitFn:
    def emit(ctx: EmitContext, op: Op) -> KernelCall:
        a = op.attrs
        if not isinstance(a, BlockAttrs):
            refuse(op, "missing block size")
        src, dst, x, y = _byte_io(ctx, op)
        if len(x.shape) != 4:
            refuse(op, "the input must be 4-D (NHWC)", x)
        dims, src_strides = layout(x.shape, a.block_size)
        if math.prod(dims) != y.num_elements:
            refuse(op, f"output shape {y.shape} does not hold the moved input", y)
        code = emit_copy(ctx, op, f"op{op.index}_{tag}", ctx.ptr(src), ctx.ptr(dst), dims,
                         src_strides, contiguous_strides(dims))
        return KernelCall(code, ("copy_nd",))
    return emit


def _batch_space(ctx: EmitContext, op: Op) -> tuple[int, int, BatchSpaceAttrs, tuple[int, ...],
                                                    tuple[int, ...]]:
    """(input index, output index, attributes, 4-D input shape, 4-D output shape)."""
    a = op.attrs
    if not isinstance(a, BatchSpaceAttrs):
        refuse(op, "missing block shape")
    src, dst, x, y = _byte_io(ctx, op)
    return src, dst, a, BatchSpaceAttrs.shape_4d(x.shape), BatchSpaceAttrs.shape_4d(y.shape)


def _emit_space_to_batch(ctx: EmitContext, op: Op) -> KernelCall:
    """Unpadded (validate refuses padding): output[(i*bw + j)*N + n, h, w, c] =
    input[n, h*bh + i, w*bw + j, c], the output walked as [i, j, n, h, w, c]."""
    src, dst, a, (n, h, w, c), _ = _batch_space(ctx, op)
    bh, bw, *pads = a.as_4d()
    if any(pads):
        refuse(op, "padding is not supported")
    dims = [bh, bw, n, h // bh, w // bw, c]
    strides = [w * c, c, h * w * c, bh * w * c, bw * c, 1]
    code = emit_copy(ctx, op, f"op{op.index}_s2b", ctx.ptr(src), ctx.ptr(dst), dims, strides,
                     contiguous_strides(dims))
    return KernelCall(code, ("copy_nd",))


def _emit_batch_to_space(ctx: EmitContext, op: Op) -> KernelCall:
    """output[n, h*bh + i - top, w*bw + j - left, c] = input[(i*bw + j)*N + n, h, w, c] where
    that lies inside the cropped output: one 4-D copy per block offset (i, j), over the rows
    and columns h, w it keeps."""
    src, dst, a, (_nb, h, w, c), (n, oh, ow, _c) = _batch_space(ctx, op)
    bh, bw, top, _bottom, left, _right = a.as_4d()
    lines = []
    for i in range(bh):
        h0, h1 = -(-(top - i) // bh), (oh - 1 + top - i) // bh  # kept rows h0 .. h1
        for j in range(bw):
            w0, w1 = -(-(left - j) // bw), (ow - 1 + left - j) // bw
            if h1 < h0 or w1 < w0:
                continue
            src_off = ((i * bw + j) * n * h + h0) * w * c + w0 * c
            dst_off = ((h0 * bh + i - top) * ow + (w0 * bw + j - left)) * c
            lines.append(emit_copy(
                ctx, op, f"op{op.index}_b2s_{i}_{j}", offset_ptr(ctx.ptr(src), src_off),
                offset_ptr(ctx.ptr(dst), dst_off), [n, h1 - h0 + 1, w1 - w0 + 1, c],
                [h * w * c, w * c, c, 1], [oh * ow * c, bh * ow * c, bw * c, 1]))
    return KernelCall("\n".join(line for line in lines if line), ("copy_nd",))


def _emit_gather(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, GatherAttrs):
        refuse(op, "missing gather attributes")
    x, idx, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.inputs[1]), ctx.tensor(op.outputs[0])
    _byte_tensors(ctx, op, (op.inputs[0], op.outputs[0]))
    if idx.data is None:
        refuse(op, "non-constant indices", idx)
    shape, b = list(x.shape), a.batch_dims
    batch, outer = math.prod(shape[:b]), math.prod(shape[b:a.axis])
    coords, inner = math.prod(idx.shape[b:]), math.prod(shape[a.axis + 1:])
    if batch * outer * coords * inner != y.num_elements:
        refuse(op, f"output shape {y.shape} does not hold the gathered rows", y)
    code = (f"mcu_gather_8({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, "
            f"{ctx.ptr(op.inputs[1])}, {batch}, {outer}, {shape[a.axis]}, {coords}, {inner});")
    return KernelCall(code, ("gather",))


register(
    OpRecord(OpKind.PAD, B.PAD, reader.read_pad(with_value=False), validate.pad_rule, opspec.MOVE,
             _emit_pad),
    OpRecord(OpKind.PADV2, B.PADV2, reader.read_pad(with_value=True), validate.pad_rule, opspec.MOVE,
             _emit_pad),
    OpRecord(OpKind.CONCATENATION, B.CONCATENATION, reader.read_concat, validate.concat_rule,
             opspec.MOVE, _emit_concat, Fold(passes.fold_concat)),
    OpRecord(OpKind.SPLIT, B.SPLIT, reader.read_split, validate.split_rule, opspec.MOVE, _emit_split),
    OpRecord(OpKind.TRANSPOSE, B.TRANSPOSE, reader.read_transpose, validate.transpose_rule,
             opspec.MOVE, _emit_transpose, Fold(passes.fold_transpose, (0,))),
    OpRecord(OpKind.STRIDED_SLICE, B.STRIDED_SLICE, reader.read_strided_slice,
             validate.strided_slice_rule, opspec.MOVE, _emit_strided_slice,
             Fold(passes.fold_strided_slice, (0,))),
    OpRecord(OpKind.DEPTH_TO_SPACE, B.DEPTH_TO_SPACE, reader.read_block(S.DepthToSpaceOptionsT),
             validate.depth_to_space_rule, opspec.MOVE,
             _block_move(depth_to_space_layout, "depth_to_space")),
    OpRecord(OpKind.SPACE_TO_DEPTH, B.SPACE_TO_DEPTH, reader.read_block(S.SpaceToDepthOptionsT),
             validate.space_to_depth_rule, opspec.MOVE,
             _block_move(space_to_depth_layout, "space_to_depth")),
    OpRecord(OpKind.SPACE_TO_BATCH_ND, B.SPACE_TO_BATCH_ND, reader.read_batch_space,
             validate.space_to_batch_rule, opspec.MOVE, _emit_space_to_batch),
    OpRecord(OpKind.BATCH_TO_SPACE_ND, B.BATCH_TO_SPACE_ND, reader.read_batch_space,
             validate.batch_to_space_rule, opspec.MOVE, _emit_batch_to_space),
    OpRecord(OpKind.GATHER, B.GATHER, reader.read_gather, validate.gather_rule, opspec.MOVE,
             _emit_gather, Fold(passes.fold_gather)),
)

