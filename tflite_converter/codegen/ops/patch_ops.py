"""The converter's own ops of patch-based inference (tflite_converter/patch.py), all strided
copies (engine/kernels/copy_nd.c):

- ROW_BANDS cuts the stage's input into row bands and ROW_JOIN joins the split tensor's row
  bands into it. The planner lays the bands out as views at their rows' bytes (planner
  layout.py), so normally nothing runs; a band it placed elsewhere is copied.
- PATCH_READ copies a patch's window out of consecutive input bands (one copy when they are
  consecutive in the arena, else one per band).
- PATCH_WRITE copies one patch of the split tensor into its window of its row band. Every
  PATCH_WRITE of a band is planned as an alias of the one before (the band as the patches
  before it left it), so each call writes only its own window; a plan that put them apart
  (none of the planners does) still gives the right bytes: the earlier patches are copied
  over first.
"""
from __future__ import annotations

from tflite_converter import opspec, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._common import (
    BYTE_TYPES,
    contiguous_strides,
    emit_copy,
    offset_ptr,
    refuse,
    require_dtype,
)
from tflite_converter.ir import Op, OpKind, WindowAttrs
from tflite_converter.op_registry import INTERNAL_BUILTIN, OpRecord, register


def _never_read(ctx: object) -> object:
    raise AssertionError("patch ops are made by tflite_converter.patch, never read from a file")


def _bytes(ctx: EmitContext, op: Op, tensors) -> None:
    for t in tensors:
        require_dtype(op, ctx.tensor(t), BYTE_TYPES)


def _emit_patch_write(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    assert isinstance(a, WindowAttrs)
    before, patch, band = op.inputs[0], op.inputs[1], op.outputs[0]
    _bytes(ctx, op, (patch, band))
    y, p = ctx.tensor(band), ctx.tensor(patch)
    lines = []
    if before >= 0 and ctx.offset(before) != ctx.offset(band):
        lines.append(f"mcu_copy_8({ctx.ptr(before)}, {ctx.ptr(band)}, {y.nbytes}u);")
    strides = contiguous_strides(y.shape)
    lines.append(emit_copy(ctx, op, f"op{op.index}_patch_write", ctx.ptr(patch),
                           offset_ptr(ctx.ptr(band), a.row * strides[1] + a.col * strides[2]),
                           p.shape, contiguous_strides(p.shape), strides))
    return KernelCall("\n".join(line for line in lines if line), ("copy_nd",))


def _contiguous(ctx: EmitContext, bands) -> bool:
    return all(ctx.offset(b) + ctx.tensor(b).nbytes == ctx.offset(c) for b, c in zip(bands, bands[1:]))


def _emit_patch_read(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    assert isinstance(a, WindowAttrs)
    bands, out = op.inputs, op.outputs[0]
    _bytes(ctx, op, (*bands, out))
    y = ctx.tensor(out)
    first = ctx.tensor(bands[0])
    row_strides = contiguous_strides(first.shape)  # every band has the whole tensor's width
    out_strides = contiguous_strides(y.shape)
    if _contiguous(ctx, bands):
        src = offset_ptr(ctx.ptr(bands[0]), a.row * row_strides[1] + a.col * row_strides[2])
        return KernelCall(emit_copy(ctx, op, f"op{op.index}_patch_read", src, ctx.ptr(out), y.shape,
                                    row_strides, out_strides), ("copy_nd",))
    lines, row, done = [], a.row, 0  # row: where the next piece starts in the current band
    for k, b in enumerate(bands):
        h = ctx.tensor(b).shape[1]
        take = min(h - row, y.shape[1] - done)
        if take > 0:
            src = offset_ptr(ctx.ptr(b), row * row_strides[1] + a.col * row_strides[2])
            lines.append(emit_copy(ctx, op, f"op{op.index}_patch_read{k}", src,
                                   offset_ptr(ctx.ptr(out), done * out_strides[1]),
                                   (1, take, y.shape[2], y.shape[3]), row_strides, out_strides))
            done += take
        row = max(row - h, 0)
    if done != y.shape[1]:
        refuse(op, f"the bands hold {done} of the patch's {y.shape[1]} rows")
    return KernelCall("\n".join(lines), ("copy_nd",))


def _emit_row_views(ctx: EmitContext, op: Op) -> KernelCall:
    views = opspec.row_views(ctx.graph, op)
    if views is None:
        refuse(op, "the bands are not consecutive full-width rows of one tensor")
    whole, parts = views
    _bytes(ctx, op, (whole, *(b for b, _ in parts)))
    lines = []
    for b, d in parts:
        if ctx.offset(b) != ctx.offset(whole) + d:
            at = offset_ptr(ctx.ptr(whole), d)
            src, dst = (at, ctx.ptr(b)) if op.kind is OpKind.ROW_BANDS else (ctx.ptr(b), at)
            lines.append(f"mcu_copy_8({src}, {dst}, {ctx.tensor(b).nbytes}u);")
    return KernelCall("\n".join(lines), ("copy_nd",) if lines else ())


register(
    OpRecord(OpKind.PATCH_WRITE, INTERNAL_BUILTIN, _never_read, validate.patch_write_rule,
             opspec.ALIAS, _emit_patch_write),
    OpRecord(OpKind.PATCH_READ, INTERNAL_BUILTIN - 1, _never_read, validate.patch_read_rule,
             opspec.MOVE, _emit_patch_read),
    OpRecord(OpKind.ROW_BANDS, INTERNAL_BUILTIN - 2, _never_read, validate.row_views_rule,
             opspec.MOVE, _emit_row_views),
    OpRecord(OpKind.ROW_JOIN, INTERNAL_BUILTIN - 3, _never_read, validate.row_views_rule,
             opspec.MOVE, _emit_row_views),
)
