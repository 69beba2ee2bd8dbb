"""RESHAPE / SQUEEZE / EXPAND_DIMS: the bytes do not change, only the shape.

The planner gives the output the input's offset (a zero-copy alias), so normally nothing
is emitted. If it placed them apart, the bytes are copied as one contiguous block by the
engine's copy kernel (`mcu_copy_8` of `engine/kernels/copy_nd.c`).
"""
from __future__ import annotations

from tflite_converter.codegen.api import EmitContext, KernelCall, emitter
from tflite_converter.codegen.ops._common import refuse
from tflite_converter.ir import Op, OpKind


def _emit_reshape(ctx: EmitContext, op: Op) -> KernelCall:
    src, dst = op.inputs[0], op.outputs[0]
    nbytes = ctx.tensor(dst).nbytes
    if ctx.tensor(src).nbytes != nbytes:
        refuse(op, "input and output byte sizes differ")
    src_ptr, dst_ptr = ctx.ptr(src), ctx.ptr(dst)
    if ctx.tensor(src).dtype is ctx.tensor(dst).dtype and src_ptr == dst_ptr:
        return KernelCall(code="", kernels=())
    return KernelCall(code=f"mcu_copy_8({src_ptr}, {dst_ptr}, {nbytes}u);", kernels=("copy_nd",))


for _kind in (OpKind.RESHAPE, OpKind.SQUEEZE, OpKind.EXPAND_DIMS):
    emitter(_kind)(_emit_reshape)
