"""SOFTMAX int8 -> int8 over the last dimension (engine/kernels/softmax.c)."""
from __future__ import annotations

from engine import quant_ops
from tflite_converter import opspec, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._common import qparams, refuse, require_dtype
from tflite_converter.ir import DType, Op, OpKind, SoftmaxAttrs
from tflite_converter.op_registry import OpRecord, register

B = schema.BuiltinOperator



def _emit_softmax(ctx: EmitContext, op: Op) -> KernelCall:
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    for t in (x, y):
        require_dtype(op, t, (DType.INT8,))
    if not x.shape:
        refuse(op, "softmax of a scalar")
    (si, _zi), (so, zo) = qparams(op, x), qparams(op, y)
    beta = op.attrs.beta if isinstance(op.attrs, SoftmaxAttrs) else 1.0
    try:
        p = quant_ops.softmax_params(si, beta, so, zo)
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))
    table = quant_ops.softmax_exp_table(p)
    name = ctx.const_array(f"op{op.index}_softmax_exp", table, "int32_t")
    depth = x.shape[-1]
    rows = x.num_elements // depth if depth else 0
    return KernelCall(f"mcu_softmax_s8({ctx.ptr(op.inputs[0])}, {ctx.ptr(op.outputs[0])}, "
                      f"{rows}, {depth}, {name}, {table.size});", ("softmax",))

# SOFTMAX reads a whole row (max, then sum of exponentials) before writing: not in place
register(OpRecord(OpKind.SOFTMAX, B.SOFTMAX, reader.read_softmax, validate.softmax_rule,
                  opspec.PER_OUTPUT, _emit_softmax))
