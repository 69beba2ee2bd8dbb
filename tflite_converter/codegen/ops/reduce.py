"""MEAN and SUM (engine/kernels/mean.c), REDUCE_MAX and REDUCE_MIN
(engine/kernels/reduce_minmax.c) over constant axes, int8; ARG_MAX and ARG_MIN along one
axis, int8 in and int32 indices out (engine/kernels/arg_minmax.c). The reduced dimensions are walked
innermost through strides, so no transpose or int32 scratch is needed."""
from __future__ import annotations

import math

import numpy as np

from engine import quant_ops
from tflite_converter import opspec, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, EmitFn, KernelCall
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
from tflite_converter.ir import AxisAttrs, DType, Op, OpKind, ReduceAttrs
from tflite_converter.op_registry import OpRecord, register

B = schema.BuiltinOperator


def _wrap_i32(v: int) -> int:
    return ((v + (1 << 31)) % (1 << 32)) - (1 << 31)


Loops = tuple[tuple[list[int], list[int]], tuple[list[int], list[int]]]


def _reduce_loops(op: Op, shape: list[int], axes: list[int]) -> Loops:
    """((outer dims, strides), (inner dims, strides)) of the kernels' loops: the kept
    dimensions outside, the reduced ones inside, each folded and padded to REDUCE_DIMS."""
    kept = [k for k in range(len(shape)) if k not in axes]
    strides = contiguous_strides(shape)
    od, (os_,) = fold([shape[k] for k in kept], [strides[k] for k in kept])
    idd, (is_,) = fold([shape[k] for k in axes], [strides[k] for k in axes])
    outer = pad_front(od, [os_], REDUCE_DIMS)
    inner = pad_front(idd, [is_], REDUCE_DIMS)
    if outer is None or inner is None:
        refuse(op, f"the reduction needs more than {REDUCE_DIMS} kept or reduced dimensions")
    return (outer[0], outer[1][0]), (inner[0], inner[1][0])


def _loop_args(ctx: EmitContext, op: Op, loops: Loops) -> str:
    (od, os_), (idd, is_) = loops
    h = f"op{op.index}"
    return (f"{int32_array(ctx, h + '_outer_dims', od)}, "
            f"{int32_array(ctx, h + '_outer_strides', os_)}, "
            f"{int32_array(ctx, h + '_inner_dims', idd)}, "
            f"{int32_array(ctx, h + '_inner_strides', is_)}")


def _reduce_io(ctx: EmitContext, op: Op) -> tuple[ReduceAttrs, list[int], list[int]]:
    """(attributes, input shape, sorted axes) of an int8 reduction, or its refusal."""
    a = op.attrs
    if not isinstance(a, ReduceAttrs):
        refuse(op, "missing reduction attributes")
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    for t in (x, y):
        require_dtype(op, t, (DType.INT8,))
    shape = list(x.shape)
    axes = sorted(set(a.axes))
    if any(ax < 0 or ax >= len(shape) for ax in axes):
        refuse(op, f"axes {a.axes} out of range for a {len(shape)}-D input")
    if x.num_elements == 0:
        refuse(op, "reduction over an empty tensor")
    return a, shape, axes


def _emit_reduce(ctx: EmitContext, op: Op) -> KernelCall:
    _, shape, axes = _reduce_io(ctx, op)
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    (si, zi), (so, zo) = qparams(op, x), qparams(op, y)
    count = int(np.prod([shape[k] for k in axes])) if axes else 1
    try:
        if op.kind is OpKind.MEAN:
            mult, shift = quant_ops.mean_params(si, so, count)
        else:
            mult, shift = quant_ops.ratio_params(si, so)
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    loops = _reduce_loops(op, shape, axes)
    q = int32_array(ctx, f"op{op.index}_reduce_q", [_wrap_i32(zi * count), mult, shift, zo])
    code = (f"mcu_reduce_sum_s8({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, "
            f"{_loop_args(ctx, op, loops)}, {q});")
    return KernelCall(code, ("mean",))


def _emit_extreme(fn: str) -> EmitFn:
    """REDUCE_MAX / REDUCE_MIN: the stored values compared (validate ensured one
    quantization), so no parameters beyond the loops."""
    def emit(ctx: EmitContext, op: Op) -> KernelCall:
        _, shape, axes = _reduce_io(ctx, op)
        loops = _reduce_loops(op, shape, axes)
        code = f"{fn}({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, {_loop_args(ctx, op, loops)});"
        return KernelCall(code, ("reduce_minmax",))
    return emit


def _emit_arg(fn: str) -> EmitFn:
    """ARG_MAX / ARG_MIN: the input seen as [outer, axis, inner], int32 indices out."""
    def emit(ctx: EmitContext, op: Op) -> KernelCall:
        a = op.attrs
        if not isinstance(a, AxisAttrs):
            refuse(op, "missing axis")
        x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
        require_dtype(op, x, (DType.INT8,))
        require_dtype(op, y, (DType.INT32,))
        shape = list(x.shape)
        outer, inner = math.prod(shape[:a.axis]), math.prod(shape[a.axis + 1:])
        code = (f"{fn}({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, {outer}, "
                f"{shape[a.axis]}, {inner});")
        return KernelCall(code, ("arg_minmax",))
    return emit


register(
    OpRecord(OpKind.MEAN, B.MEAN, reader.read_reduce, validate.reduce_rule, opspec.REDUCE, _emit_reduce),
    OpRecord(OpKind.SUM, B.SUM, reader.read_reduce, validate.reduce_rule, opspec.REDUCE, _emit_reduce),
    OpRecord(OpKind.REDUCE_MAX, B.REDUCE_MAX, reader.read_reduce, validate.reduce_extreme_rule,
             opspec.REDUCE, _emit_extreme("mcu_reduce_max_s8")),
    OpRecord(OpKind.REDUCE_MIN, B.REDUCE_MIN, reader.read_reduce, validate.reduce_extreme_rule,
             opspec.REDUCE, _emit_extreme("mcu_reduce_min_s8")),
    OpRecord(OpKind.ARG_MAX, B.ARG_MAX, reader.read_arg_axis, validate.arg_rule, opspec.REDUCE,
             _emit_arg("mcu_arg_max_s8")),
    OpRecord(OpKind.ARG_MIN, B.ARG_MIN, reader.read_arg_axis, validate.arg_rule, opspec.REDUCE,
             _emit_arg("mcu_arg_min_s8")),
)

