"""SOFTMAX and LOG_SOFTMAX int8 -> int8 over the last dimension (engine/kernels/softmax.c,
log_softmax.c)."""
from __future__ import annotations

from engine import quant_ops
from tflite_converter import opspec, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops import float32
from tflite_converter.codegen.ops._common import int32_array, qparams, refuse, require_dtype
from tflite_converter.ir import DType, Op, OpKind, SoftmaxAttrs
from tflite_converter.op_registry import OpRecord, register

B = schema.BuiltinOperator



def _rows(ctx: EmitContext, op: Op) -> tuple[float, float, int, str]:
    """Checks shared by SOFTMAX and LOG_SOFTMAX; (input scale, output scale, output zero
    point, the C arguments in, out, rows, depth)."""
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    for t in (x, y):
        require_dtype(op, t, (DType.INT8,))
    if not x.shape:
        refuse(op, "softmax of a scalar")
    (si, _zi), (so, zo) = qparams(op, x), qparams(op, y)
    depth = x.shape[-1]
    rows = x.num_elements // depth if depth else 0
    return si, so, zo, f"{ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, {rows}, {depth}"


def _emit_softmax(ctx: EmitContext, op: Op) -> KernelCall:
    si, so, zo, args = _rows(ctx, op)
    beta = op.attrs.beta if isinstance(op.attrs, SoftmaxAttrs) else 1.0
    try:
        p = quant_ops.softmax_params(si, beta, so, zo)
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    table = quant_ops.softmax_exp_table(p)
    name = ctx.const_array(f"op{op.index}_softmax_exp", table, "int32_t")
    return KernelCall(f"mcu_softmax_s8({args}, {name}, {table.size});", ("softmax",))


def _emit_log_softmax(ctx: EmitContext, op: Op) -> KernelCall:
    si, so, zo, args = _rows(ctx, op)
    try:
        p = quant_ops.log_softmax_params(si, so, zo)
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    table = quant_ops.softmax_exp_table(p.exp)
    name = ctx.const_array(f"op{op.index}_log_softmax_exp", table, "int32_t")
    q = int32_array(ctx, f"op{op.index}_log_softmax_q", [
        p.exp.input_multiplier, p.exp.input_left_shift, p.reverse_scaling_divisor,
        p.reverse_scaling_shift, p.exp.diff_min])
    return KernelCall(f"mcu_log_softmax_s8({args}, {q}, {name}, {table.size});", ("log_softmax",))

# SOFTMAX reads a whole row (max, then sum of exponentials) before writing: not in place
register(OpRecord(OpKind.SOFTMAX, B.SOFTMAX, reader.read_softmax, validate.softmax_rule,
                  opspec.PER_OUTPUT, _emit_softmax, float32=float32.SOFTMAX),
         OpRecord(OpKind.LOG_SOFTMAX, B.LOG_SOFTMAX, reader.fixed_attrs(), validate.log_softmax_rule,
                  opspec.PER_OUTPUT, _emit_log_softmax, float32=float32.SOFTMAX))
