"""The float32 heads and tails of int8 models, as TFLM's float reference kernels compute them
(engine/kernels/float_binary.c, float_unary.c, float_softmax.c).

A classifier often ends in DEQUANTIZE followed by float32 SOFTMAX, LOG_SOFTMAX, ADD or MUL,
and a model may begin with a float32 normalisation before its first QUANTIZE. Each family
module gives its record these `Float32Impl`s (op_registry.rule_and_emitter picks them when
the op's data input is float32); EXP, LOG and SQRT, which TFLM runs on float32 only, are
registered below. Convolutions and FULLY_CONNECTED have none: float32 or
hybrid arithmetic in the int8 body stays refused.
"""
from __future__ import annotations

import numpy as np

from tflite_converter import opspec, reader, schema, validate
from tflite_converter.codegen import c_writer
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._common import broadcast_layout, int32_array
from tflite_converter.ir import Activation, ElementwiseAttrs, Op, OpKind, SoftmaxAttrs
from tflite_converter.op_registry import Float32Impl, OpRecord, register

B = schema.BuiltinOperator

_BINARY_KERNEL = {OpKind.ADD: "mcu_add_f32", OpKind.SUB: "mcu_sub_f32", OpKind.MUL: "mcu_mul_f32",
                  OpKind.DIV: "mcu_div_f32", OpKind.MAXIMUM: "mcu_maximum_f32",
                  OpKind.MINIMUM: "mcu_minimum_f32"}
_UNARY_KERNEL: dict[OpKind, str] = {OpKind.LOGISTIC: "mcu_logistic_f32", OpKind.TANH: "mcu_tanh_f32",
                 OpKind.RELU: "mcu_relu_f32", OpKind.RELU6: "mcu_relu6_f32",
                 OpKind.ABS: "mcu_abs_f32", OpKind.EXP: "mcu_exp_f32", OpKind.LOG: "mcu_log_f32",
                 OpKind.SQRT: "mcu_sqrt_f32", OpKind.RSQRT: "mcu_rsqrt_f32"}


def _emit_binary(ctx: EmitContext, op: Op) -> KernelCall:
    a, b, o = (ctx.tensor(i) for i in (*op.inputs, op.outputs[0]))
    dims, sa, sb = broadcast_layout(op, o.shape, a.shape, b.shape)
    args = (f"{ctx.ptr(op.inputs[0])}, {ctx.ptr(op.inputs[1])}, {ctx.ptr(op.outputs[0])}, "
            f"{int32_array(ctx, f'op{op.index}_dims', dims)}, "
            f"{int32_array(ctx, f'op{op.index}_a_strides', sa)}, "
            f"{int32_array(ctx, f'op{op.index}_b_strides', sb)}")
    if op.kind in (OpKind.MAXIMUM, OpKind.MINIMUM):
        return KernelCall(f"{_BINARY_KERNEL[op.kind]}({args});", ("float_binary",))
    act = op.attrs.activation if isinstance(op.attrs, ElementwiseAttrs) else Activation.NONE
    lo, hi = validate.FLOAT_ACTIVATION_RANGE[act]
    rng = ctx.const_array(f"op{op.index}_range", np.array([lo, hi], np.float32), "float")
    return KernelCall(f"{_BINARY_KERNEL[op.kind]}({args}, {rng});", ("float_binary",))


def _emit_unary(ctx: EmitContext, op: Op) -> KernelCall:
    n = ctx.tensor(op.inputs[0]).num_elements
    return KernelCall(f"{_UNARY_KERNEL[op.kind]}({ctx.ptr(op.inputs[0])}, "
                      f"{ctx.ptr(op.outputs[0])}, {n});", ("float_unary",))


def _emit_softmax(ctx: EmitContext, op: Op) -> KernelCall:
    x = ctx.tensor(op.inputs[0])
    depth = x.shape[-1]
    rows = x.num_elements // depth if depth else 0
    args = f"{ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, {rows}, {depth}"
    if op.kind is OpKind.LOG_SOFTMAX:
        return KernelCall(f"mcu_log_softmax_f32({args});", ("float_softmax",))
    beta = op.attrs.beta if isinstance(op.attrs, SoftmaxAttrs) else 1.0
    return KernelCall(f"mcu_softmax_f32({args}, {c_writer.float_literal(beta)});", ("float_softmax",))


UNARY_KINDS = frozenset(_UNARY_KERNEL)
BINARY = Float32Impl(validate.float_binary_rule, _emit_binary)
UNARY = Float32Impl(validate.float_unary_rule, _emit_unary)
SOFTMAX = Float32Impl(validate.float_softmax_rule, _emit_softmax)


register(
    *(OpRecord(k, getattr(B, k.value), reader.fixed_attrs(), validate.float32_only, opspec.UNARY,
               _emit_unary, float32=UNARY) for k in (OpKind.EXP, OpKind.LOG, OpKind.SQRT)),
)
