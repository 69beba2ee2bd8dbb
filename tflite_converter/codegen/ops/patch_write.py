"""PATCH_WRITE, the converter's own op of patch-based inference (tflite_converter/patch.py):
copy one patch of the split tensor into its window of the full-size tensor, with the engine's
strided copy (engine/kernels/copy_nd.c).

Every PATCH_WRITE's output is planned as an alias of its input 0, the full tensor as the
patches before it left it (planner layout.py), so each call writes only its own window. A plan
that put them apart (none of the planners does) still gives the right bytes: the earlier
patches are copied over first.
"""
from __future__ import annotations

from tflite_converter import opspec, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._common import (
    BYTE_TYPES,
    contiguous_strides,
    emit_copy,
    offset_ptr,
    require_dtype,
)
from tflite_converter.ir import Op, OpKind, WindowAttrs
from tflite_converter.op_registry import INTERNAL_BUILTIN, OpRecord, register


def _never_read(ctx: object) -> object:
    raise AssertionError("PATCH_WRITE is made by tflite_converter.patch, never read from a file")


def _emit_patch_write(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    assert isinstance(a, WindowAttrs)
    before, patch, full = op.inputs[0], op.inputs[1], op.outputs[0]
    for t in (patch, full):
        require_dtype(op, ctx.tensor(t), BYTE_TYPES)
    y, p = ctx.tensor(full), ctx.tensor(patch)
    lines = []
    if before >= 0 and ctx.offset(before) != ctx.offset(full):
        lines.append(f"mcu_copy_8({ctx.ptr(before)}, {ctx.ptr(full)}, {y.nbytes}u);")
    strides = contiguous_strides(y.shape)
    lines.append(emit_copy(ctx, op, f"op{op.index}_patch_write", ctx.ptr(patch),
                           offset_ptr(ctx.ptr(full), a.row * strides[1] + a.col * strides[2]),
                           p.shape, contiguous_strides(p.shape), strides))
    return KernelCall("\n".join(line for line in lines if line), ("copy_nd",))


register(OpRecord(OpKind.PATCH_WRITE, INTERNAL_BUILTIN, _never_read, validate.patch_write_rule,
                  opspec.ALIAS, _emit_patch_write))
