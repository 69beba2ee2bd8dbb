"""AVERAGE_POOL_2D and MAX_POOL_2D, int8 NHWC (engine/kernels/pool.c)."""
from __future__ import annotations

from tflite_converter import opspec, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._common import act_range, int32_array, qparams, refuse, require_dtype
from tflite_converter.ir import DType, Op, OpKind, PoolAttrs
from tflite_converter.op_registry import OpRecord, register

B = schema.BuiltinOperator


def _emit_pool(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, PoolAttrs):
        refuse(op, "missing pooling attributes")
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    for t in (x, y):
        require_dtype(op, t, (DType.INT8,))
        if len(t.shape) != 4:
            refuse(op, "pooling needs 4-D NHWC tensors", t)
    (si, zi), (so, zo) = qparams(op, x), qparams(op, y)
    # TFLM's Prepare insists on this: the kernels never rescale.
    if abs(si - so) > 1e-6 or zi != zo:
        refuse(op, "input and output quantization differ (TFLM requires them equal)")
    if x.shape[0] != y.shape[0] or x.shape[3] != y.shape[3]:
        refuse(op, "batch or channel count changes")
    lo, hi = act_range(op, a.activation, y)
    n, ih, iw, c = x.shape
    _, oh, ow, _ = y.shape
    g = int32_array(ctx, f"op{op.index}_pool", [
        n, ih, iw, c, oh, ow, a.filter_h, a.filter_w, a.stride_h, a.stride_w,
        a.pads.top, a.pads.left, lo, hi])
    name = "mcu_avgpool_s8" if op.kind is OpKind.AVERAGE_POOL_2D else "mcu_maxpool_s8"
    return KernelCall(f"{name}({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, {g});", ("pool",))


register(
    OpRecord(OpKind.AVERAGE_POOL_2D, B.AVERAGE_POOL_2D, reader.read_pool, validate.pool_rule,
             opspec.POOL, _emit_pool),
    OpRecord(OpKind.MAX_POOL_2D, B.MAX_POOL_2D, reader.read_pool, validate.pool_rule, opspec.POOL,
             _emit_pool),
)

