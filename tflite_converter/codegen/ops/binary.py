"""ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, PRELU and SQUARED_DIFFERENCE: int8 element-wise with
broadcasting (engine/kernels/add.c, mul.c, div.c, maximum_minimum.c, prelu.c,
squared_difference.c).
The operand shapes are folded into six dimensions with per-input strides; the quantization
parameters go to a const array."""
from __future__ import annotations

import numpy as np

from engine import quant_ops
from tflite_converter import opspec, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, EmitFn, KernelCall
from tflite_converter.codegen.ops import float32
from tflite_converter.codegen.ops._common import (
    act_range,
    broadcast_layout,
    int32_array,
    qparams,
    refuse,
    require_dtype,
)
from tflite_converter.ir import Activation, DType, ElementwiseAttrs, Op, OpKind
from tflite_converter.op_registry import OpRecord, ReadFn, register
from tflite_converter.schema import S

B = schema.BuiltinOperator


def _operands(ctx: EmitContext, op: Op):
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        refuse(op, "expects two inputs and one output")
    a, b, o = (ctx.tensor(i) for i in (*op.inputs, op.outputs[0]))
    for t in (a, b, o):
        require_dtype(op, t, (DType.INT8,))
    dims, sa, sb = broadcast_layout(op, o.shape, a.shape, b.shape)
    head = (f"{ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, {ctx.ptr(op.outputs[0])}, "
            f"{int32_array(ctx, f'op{op.index}_dims', dims)}, "
            f"{int32_array(ctx, f'op{op.index}_a_strides', sa)}, "
            f"{int32_array(ctx, f'op{op.index}_b_strides', sb)}")
    return a, b, o, head


def _activation(op: Op) -> Activation:
    attrs = op.attrs
    return attrs.activation if isinstance(attrs, ElementwiseAttrs) else Activation.NONE


# ADD / SUB dispatch: parameter maths, generic (broadcasting) kernel, same-shape fast kernel.
_PARAMS = {OpKind.ADD: quant_ops.add_params, OpKind.SUB: quant_ops.sub_params}
_GENERIC_KERNEL = {OpKind.ADD: "mcu_add_s8", OpKind.SUB: "mcu_sub_s8"}
_FAST_KERNEL = {OpKind.ADD: "mcu_add_fast_s8", OpKind.SUB: "mcu_sub_fast_s8"}


def _emit_add_sub(ctx: EmitContext, op: Op) -> KernelCall:
    a, b, o, head = _operands(ctx, op)
    (s1, z1), (s2, z2), (so, zo) = qparams(op, a), qparams(op, b), qparams(op, o)
    lo, hi = act_range(op, _activation(op), o)
    fn = _PARAMS[op.kind]
    try:
        p = fn(s1, z1, s2, z2, so, zo)
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    fast = quant_ops.add_fast_params(p, lo, hi)
    if fast is not None and tuple(a.shape) == tuple(b.shape) == tuple(o.shape):
        # Same shape: the one-rounding-pass loop over the flat arrays (ADD and SUB alike).
        q = int32_array(ctx, f"op{op.index}_addf_q", fast.as_list())
        n = int(np.prod(o.shape, dtype=np.int64))
        fast_name = _FAST_KERNEL[op.kind]
        return KernelCall(f"{fast_name}({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, "
                          f"{ctx.ptr(op.outputs[0])}, {n}, {q}, {fast.variant});", ("add",))
    q = int32_array(ctx, f"op{op.index}_add_q", [
        p.in1_offset, p.in1_multiplier, p.in1_shift, p.in2_offset, p.in2_multiplier,
        p.in2_shift, p.out_offset, p.out_multiplier, p.out_shift, lo, hi])
    return KernelCall(f"{_GENERIC_KERNEL[op.kind]}({head}, {q});", ("add",))


def _emit_mul(ctx: EmitContext, op: Op) -> KernelCall:
    a, b, o, head = _operands(ctx, op)
    (s1, z1), (s2, z2), (so, zo) = qparams(op, a), qparams(op, b), qparams(op, o)
    lo, hi = act_range(op, _activation(op), o)
    try:
        m, sh = quant_ops.mul_params(s1, s2, so)
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    q = int32_array(ctx, f"op{op.index}_mul_q", [-z1, -z2, zo, m, sh, lo, hi])
    return KernelCall(f"mcu_mul_s8({head}, {q});", ("mul",))


def _emit_div(ctx: EmitContext, op: Op) -> KernelCall:
    a, b, o, head = _operands(ctx, op)
    lo, hi = act_range(op, _activation(op), o)
    try:
        p = quant_ops.div_params(*qparams(op, a), *qparams(op, b), *qparams(op, o))
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    q = int32_array(ctx, f"op{op.index}_div_q", [
        p.in1_offset, p.in2_offset, p.out_offset, p.multiplier, p.shift, lo, hi])
    return KernelCall(f"mcu_div_s8({head}, {q});", ("div",))


def _emit_squared_difference(ctx: EmitContext, op: Op) -> KernelCall:
    a, b, o, head = _operands(ctx, op)
    try:
        p = quant_ops.squared_difference_params(*qparams(op, a), *qparams(op, b), *qparams(op, o))
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    q = int32_array(ctx, f"op{op.index}_sqd_q", [
        p.in1_offset, p.in1_multiplier, p.in1_shift, p.in2_offset, p.in2_multiplier,
        p.in2_shift, p.out_offset, p.out_multiplier, p.out_shift])
    return KernelCall(f"mcu_squared_difference_s8({head}, {q});", ("squared_difference",))


def _emit_max_min(ctx: EmitContext, op: Op) -> KernelCall:
    _a, _b, _o, head = _operands(ctx, op)
    name = "mcu_maximum_s8" if op.kind is OpKind.MAXIMUM else "mcu_minimum_s8"
    return KernelCall(f"{name}({head});", ("maximum_minimum",))


def _emit_prelu(ctx: EmitContext, op: Op) -> KernelCall:
    x, alpha, o, head = _operands(ctx, op)
    (si, zi), (sa, za), (so, zo) = qparams(op, x), qparams(op, alpha), qparams(op, o)
    try:
        m1, sh1, m2, sh2 = quant_ops.prelu_params(si, sa, so)
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    q = int32_array(ctx, f"op{op.index}_prelu_q", [-zi, -za, zo, m1, sh1, m2, sh2])
    return KernelCall(f"mcu_prelu_s8({head}, {q});", ("prelu",))



def _binary_op(kind: OpKind, read: ReadFn, emit: EmitFn) -> OpRecord:
    f32 = float32.BINARY if kind in FLOAT32_BINARY else None
    return OpRecord(kind, getattr(B, kind.value), read, validate.binary_rule, opspec.BINARY, emit,
                    float32=f32)


# the ones TFLM also runs on float32 (codegen/ops/float32.py)
FLOAT32_BINARY = frozenset({OpKind.ADD, OpKind.SUB, OpKind.MUL, OpKind.DIV, OpKind.MAXIMUM,
                            OpKind.MINIMUM})


register(
    _binary_op(OpKind.ADD, reader.read_elementwise(S.AddOptionsT), _emit_add_sub),
    _binary_op(OpKind.SUB, reader.read_elementwise(S.SubOptionsT), _emit_add_sub),
    _binary_op(OpKind.MUL, reader.read_elementwise(S.MulOptionsT), _emit_mul),
    _binary_op(OpKind.DIV, reader.read_elementwise(S.DivOptionsT), _emit_div),
    _binary_op(OpKind.MAXIMUM, reader.fixed_attrs(), _emit_max_min),
    _binary_op(OpKind.MINIMUM, reader.fixed_attrs(), _emit_max_min),
    _binary_op(OpKind.SQUARED_DIFFERENCE, reader.fixed_attrs(), _emit_squared_difference),
    OpRecord(OpKind.PRELU, B.PRELU, reader.fixed_attrs(), validate.prelu_rule, opspec.PRELU,
             _emit_prelu),
)
