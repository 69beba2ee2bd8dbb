"""MEAN and SUM over constant axes, int8 (engine/kernels/mean.c). The reduced dimensions are
walked innermost through strides, so no transpose or int32 scratch is needed."""
from __future__ import annotations

import numpy as np

from engine import quant_ops
from tflite_converter import opspec, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._common import (
    REDUCE_DIMS,
    contiguous_strides,
    fold,
    int32_array,
    pad_front,
    qparams,
    refuse,
    require_dtype,
)
from tflite_converter.ir import DType, Op, OpKind, ReduceAttrs
from tflite_converter.op_registry import OpRecord, register

B = schema.BuiltinOperator


def _wrap_i32(v: int) -> int:
    return ((v + (1 << 31)) % (1 << 32)) - (1 << 31)


def _emit_reduce(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, ReduceAttrs):
        refuse(op, "missing reduction attributes")
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    for t in (x, y):
        require_dtype(op, t, (DType.INT8,))
    (si, zi), (so, zo) = qparams(op, x), qparams(op, y)
    shape = list(x.shape)
    axes = sorted(set(a.axes))
    if any(ax < 0 or ax >= len(shape) for ax in axes):
        refuse(op, f"axes {a.axes} out of range for a {len(shape)}-D input")
    kept = [k for k in range(len(shape)) if k not in axes]
    strides = contiguous_strides(shape)
    count = int(np.prod([shape[k] for k in axes])) if axes else 1
    if count == 0 or x.num_elements == 0:
        refuse(op, "reduction over an empty tensor")
    try:
        if op.kind is OpKind.MEAN:
            mult, shift = quant_ops.mean_params(si, so, count)
        else:
            mult, shift = quant_ops.ratio_params(si, so)
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    od, (os_,) = fold([shape[k] for k in kept], [strides[k] for k in kept])
    idd, (is_,) = fold([shape[k] for k in axes], [strides[k] for k in axes])
    outer = pad_front(od, [os_], REDUCE_DIMS)
    inner = pad_front(idd, [is_], REDUCE_DIMS)
    if outer is None or inner is None:
        refuse(op, f"the reduction needs more than {REDUCE_DIMS} kept or reduced dimensions")
    h = f"op{op.index}"
    q = int32_array(ctx, f"{h}_reduce_q", [_wrap_i32(zi * count), mult, shift, zo])
    code = (f"mcu_reduce_sum_s8({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, "
            f"{int32_array(ctx, h + '_outer_dims', outer[0])}, "
            f"{int32_array(ctx, h + '_outer_strides', outer[1][0])}, "
            f"{int32_array(ctx, h + '_inner_dims', inner[0])}, "
            f"{int32_array(ctx, h + '_inner_strides', inner[1][0])}, {q});")
    return KernelCall(code, ("mean",))


register(
    OpRecord(OpKind.MEAN, B.MEAN, reader.read_reduce, validate.reduce_rule, opspec.REDUCE, _emit_reduce),
    OpRecord(OpKind.SUM, B.SUM, reader.read_reduce, validate.reduce_rule, opspec.REDUCE, _emit_reduce),
)

