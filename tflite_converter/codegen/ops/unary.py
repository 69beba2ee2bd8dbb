"""Element-wise unary ops on 8-bit tensors by table look-up (engine/kernels/lut.c):
LOGISTIC, TANH, HARD_SWISH, RELU, RELU6, ABS, LEAKY_RELU, RSQRT, QUANTIZE between int8 and uint8, and
DEQUANTIZE to float32; plus QUANTIZE from float32 (engine/kernels/quantize.c). The tables are
TFLite's integer arithmetic evaluated for all 256 inputs (engine/quant_ops.py, and
engine/quantization.py for QUANTIZE)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from engine import quant_ops, quantization
from tflite_converter import opspec, passes, reader, schema, validate
from tflite_converter.codegen import c_writer
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops import float32
from tflite_converter.codegen.ops._common import BYTE_TYPES, qparams, refuse, require_dtype
from tflite_converter.ir import DType, LeakyReluAttrs, Op, OpKind, Tensor
from tflite_converter.op_registry import Fold, OpRecord, ReadFn, register

B = schema.BuiltinOperator

TableFn = Callable[[Op, Tensor, Tensor], np.ndarray]


def _int8_table(fn: Callable[..., np.ndarray]) -> TableFn:
    def build(op: Op, x: Tensor, y: Tensor) -> np.ndarray:
        for t in (x, y):
            require_dtype(op, t, (DType.INT8,))
        (si, zi), (so, zo) = qparams(op, x), qparams(op, y)
        return fn(si, zi, so, zo)
    return build


def _leaky_relu(op: Op, x: Tensor, y: Tensor) -> np.ndarray:
    if not isinstance(op.attrs, LeakyReluAttrs):
        refuse(op, "missing alpha")
    alpha = op.attrs.alpha
    return _int8_table(lambda si, zi, so, zo: quant_ops.leaky_relu_table(
        si, zi, so, zo, alpha))(op, x, y)


def _requantize(op: Op, x: Tensor, y: Tensor) -> np.ndarray:
    for t in (x, y):
        require_dtype(op, t, BYTE_TYPES)
    (si, zi), (so, zo) = qparams(op, x), qparams(op, y)
    if x.dtype is DType.UINT8 and y.dtype is DType.UINT8:
        refuse(op, "uint8 -> uint8 QUANTIZE is not supported by TFLM")
    return quantization.requantize_table(x.dtype.value, si, zi, y.dtype.value, so, zo)


TABLES: dict[OpKind, TableFn] = {
    OpKind.LOGISTIC: _int8_table(quant_ops.logistic_table),
    OpKind.TANH: _int8_table(quant_ops.tanh_table),
    OpKind.HARD_SWISH: _int8_table(quant_ops.hard_swish_table),
    OpKind.RELU: _int8_table(quant_ops.relu_table),
    OpKind.RELU6: _int8_table(quant_ops.relu6_table),
    OpKind.ABS: _int8_table(quant_ops.abs_table),
    OpKind.LEAKY_RELU: _leaky_relu,
    OpKind.RSQRT: _int8_table(quant_ops.rsqrt_table),
    OpKind.QUANTIZE: _requantize,
}


def _check_shapes(op: Op, x: Tensor, y: Tensor) -> None:
    if x.num_elements != y.num_elements:
        refuse(op, "input and output element counts differ")


def _emit_table(ctx: EmitContext, op: Op) -> KernelCall:
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    _check_shapes(op, x, y)
    if op.kind is OpKind.QUANTIZE and x.dtype is DType.FLOAT32:
        return _emit_quantize_float(ctx, op, x, y)
    try:
        table = TABLES[op.kind](op, x, y)
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    name = ctx.const_array(f"op{op.index}_{op.kind.value.lower()}_lut",
                           np.asarray(table).view(np.uint8), "uint8_t")
    return KernelCall(f"mcu_lut_8({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, "
                      f"{x.num_elements}, {name});", ("lut",))


def _emit_quantize_float(ctx: EmitContext, op: Op, x: Tensor, y: Tensor) -> KernelCall:
    require_dtype(op, y, BYTE_TYPES)
    scale, zp = qparams(op, y)
    fn = "mcu_quantize_f32_s8" if y.dtype is DType.INT8 else "mcu_quantize_f32_u8"
    return KernelCall(f"{fn}({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, "
                      f"{x.num_elements}, {c_writer.float_literal(scale)}, {zp});", ("quantize",))


def _emit_dequantize(ctx: EmitContext, op: Op) -> KernelCall:
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    _check_shapes(op, x, y)
    require_dtype(op, x, BYTE_TYPES)
    require_dtype(op, y, (DType.FLOAT32,))
    scale, zp = qparams(op, x)
    table = quant_ops.dequantize_table(x.dtype.value, scale, zp)
    name = ctx.const_array(f"op{op.index}_dequantize_lut", table, "float")
    return KernelCall(f"mcu_lut_f32({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, "
                      f"{x.num_elements}, {name});", ("lut",))



_NO_ATTRS = reader.fixed_attrs()


def _table_op(kind: OpKind, read: ReadFn = _NO_ATTRS) -> OpRecord:
    """An int8 element-wise op computed through its 256-entry table (TABLES above)."""
    f32 = float32.UNARY if kind in float32.UNARY_KINDS else None
    return OpRecord(kind, getattr(B, kind.value), read, validate.unary_same_shape_rule, opspec.UNARY,
                    _emit_table, float32=f32)


register(
    *(_table_op(k) for k in (OpKind.LOGISTIC, OpKind.TANH, OpKind.HARD_SWISH, OpKind.RELU,
                             OpKind.RELU6, OpKind.ABS, OpKind.RSQRT)),
    _table_op(OpKind.LEAKY_RELU, reader.read_leaky_relu),
    # in place only when the byte width is kept (int8 -> int8, uint8 <-> int8)
    OpRecord(OpKind.QUANTIZE, B.QUANTIZE, reader.fixed_attrs(), validate.quantize_rule,
             opspec.TYPE_CONVERSION, _emit_table),
    OpRecord(OpKind.DEQUANTIZE, B.DEQUANTIZE, reader.fixed_attrs(), validate.dequantize_rule,
             opspec.TYPE_CONVERSION, _emit_dequantize, Fold(passes.fold_dequantize, (0,))),
)
