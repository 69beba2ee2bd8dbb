"""RESHAPE / SQUEEZE / EXPAND_DIMS: the bytes do not change, only the shape.

The planner gives the output the input's offset (a zero-copy alias), so normally nothing
is emitted. If it placed them apart, the bytes are copied as one contiguous block by the
engine's copy kernel (`mcu_copy_8` of `engine/kernels/copy_nd.c`).
"""
from __future__ import annotations

from tflite_converter import opspec, passes, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._common import refuse
from tflite_converter.ir import Op, OpKind, ReshapeAttrs
from tflite_converter.op_registry import Float32Impl, Fold, OpRecord, register

B = schema.BuiltinOperator


def _emit_reshape(ctx: EmitContext, op: Op) -> KernelCall:
    src, dst = op.inputs[0], op.outputs[0]
    nbytes = ctx.tensor(dst).nbytes
    if ctx.tensor(src).nbytes != nbytes:
        refuse(op, "input and output byte sizes differ")
    src_ptr, dst_ptr = ctx.ptr(src), ctx.ptr(dst)
    if ctx.tensor(src).dtype is ctx.tensor(dst).dtype and src_ptr == dst_ptr:
        return KernelCall(code="", kernels=())
    return KernelCall(code=f"mcu_copy_8({src_ptr}, {dst_ptr}, {nbytes}u);", kernels=("copy_nd",))


_RESHAPE_FOLD = Fold(passes.fold_reshape, (0,))
_FLOAT32 = Float32Impl(validate.float_reshape_rule, _emit_reshape)  # the same bytes, 4 a value

register(
    OpRecord(OpKind.RESHAPE, B.RESHAPE, reader.fixed_attrs(ReshapeAttrs()), validate.reshape_rule,
             opspec.ALIAS, _emit_reshape, _RESHAPE_FOLD, _FLOAT32),
    OpRecord(OpKind.SQUEEZE, B.SQUEEZE, reader.fixed_attrs(ReshapeAttrs()), validate.reshape_rule,
             opspec.ALIAS, _emit_reshape, _RESHAPE_FOLD, _FLOAT32),
    OpRecord(OpKind.EXPAND_DIMS, B.EXPAND_DIMS, reader.fixed_attrs(ReshapeAttrs()),
             validate.reshape_rule, opspec.ALIAS, _emit_reshape, _RESHAPE_FOLD, _FLOAT32),
    # Shape arithmetic: constant results, folded by the passes, never emitted.
    OpRecord(OpKind.SHAPE, B.SHAPE, reader.fixed_attrs(), None, fold=Fold(passes.fold_shape, ())),
    OpRecord(OpKind.PACK, B.PACK, reader.read_pack, None, fold=Fold(passes.fold_pack)),
)

