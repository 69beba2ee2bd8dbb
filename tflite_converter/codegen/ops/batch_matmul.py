"""BATCH_MATMUL int8 -> engine/kernels/batch_matmul.c.

Both operands are padded to five dimensions as TFLM pads them; the three batch dimensions
broadcast (a stride of 0 where an operand has size 1), and the kernel reads each matrix
through an element stride per row / column and per tap, so adj_x and adj_y need neither a
transpose nor scratch (TFLM transposes into persistent buffers: the same integer sums). A
constant operand is stored with its taps innermost (transposed at generation time where its
adj flag says otherwise), so the kernel's inner loop runs over contiguous bytes of it. A
computed operand with its taps second last (an LHS with adj_x, an RHS without adj_y: the
usual `scores @ v`) is read with a stride per tap; where the plan has the room free at the op
(planner.scratch.grant_scratch: the arena does not grow), the "taps_last" variant copies one
batch's matrix of it at a time into scratch with its taps innermost instead, and every
product is contiguous (the DSP build's four taps a step). Quantization as TFLM:
quant_ops.batch_matmul_params."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from engine import quant_ops
from tflite_converter import opspec, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._common import int32_array, qparams, refuse, require_dtype
from tflite_converter.ir import BatchMatMulAttrs, DType, Graph, Op, OpKind, Tensor
from tflite_converter.op_registry import OpRecord, register

B = schema.BuiltinOperator
RANK = 5  # TFLM's reference BatchMatMul works on 5-D shapes


def _padded(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (1,) * (RANK - len(shape)) + tuple(shape)


def _batch_strides(stored: tuple[int, ...]) -> list[int]:
    """Per batch dimension of a 5-D stored shape: its stride in elements, 0 where size 1."""
    return [0 if stored[d] == 1 else math.prod(stored[d + 1:]) for d in range(RANK - 2)]


def _operand(ctx: EmitContext, op: Op, index: int, transposed: bool, taps_last: bool
             ) -> tuple[str, list[int], tuple[int, int]]:
    """(C pointer, batch strides, (stride per row or column, stride per tap)) of one operand.
    `transposed`: its matrices are stored with the row / column index last (the taps second
    last); a constant one is re-laid out with its taps last instead."""
    t = ctx.tensor(index)
    stored = _padded(t.shape)
    if t.is_constant and transposed:
        data = np.swapaxes(np.asarray(t.data).reshape(stored), -1, -2)
        ptr = ctx.const_array(f"op{op.index}_{'lhs' if taps_last else 'rhs'}_taps_last",
                              np.ascontiguousarray(data), t.dtype.c_type)
        stored = stored[:-2] + (stored[-1], stored[-2])
        transposed = False
    else:
        ptr = ctx.ptr(index)
    inner = stored[-1]
    # stored [.., a, b]: a = rows / columns and b = taps, or (transposed) the other way round
    steps = (1, inner) if transposed else (inner, 1)
    return ptr, _batch_strides(stored), steps


def _emit(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, BatchMatMulAttrs):
        refuse(op, "missing BATCH_MATMUL attributes")
    if len(op.inputs) != 2 or len(op.outputs) != 1:
        refuse(op, "expects two inputs and one output")
    lhs, rhs, y = (ctx.tensor(i) for i in (*op.inputs, op.outputs[0]))
    for t in (lhs, rhs, y):
        require_dtype(op, t, (DType.INT8,))
    out_shape, m, n, k = validate.batch_matmul_shapes(lhs.shape, rhs.shape, a)
    if tuple(y.shape) != out_shape:
        refuse(op, f"output shape {list(y.shape)} is not {list(out_shape)}", y)
    # the LHS holds rows i with taps k ([.., M, K]), stored [.., K, M] with adj_x; the RHS
    # columns j with taps k, stored [.., K, N] (taps second last) unless adj_y
    lp, ls, (li, lk) = _operand(ctx, op, op.inputs[0], a.adj_x, True)
    rp, rs, (rj, rk) = _operand(ctx, op, op.inputs[1], not a.adj_y, False)
    batch = list(_padded(out_shape)[:RANK - 2])
    p = _params(op, lhs, rhs, y)
    dims = int32_array(ctx, f"op{op.index}_bmm_dims",
                       batch + ls + rs + [m, n, k, li, lk, rj, rk])
    q = int32_array(ctx, f"op{op.index}_bmm_q",
                    [p.lhs_offset, p.rhs_offset, p.out_offset, p.multiplier, p.shift])
    head = f"{lp}, {rp}, {ctx.ptr(op.outputs[0])}, {dims}, {q}"
    if ctx.variant(op) == TAPS_LAST_VARIANT:
        return KernelCall(f"mcu_batch_matmul_taps_last_s8({head}, {ctx.scratch(op)});",
                          ("batch_matmul",))
    return KernelCall(f"mcu_batch_matmul_s8({head});", ("batch_matmul",))


def _params(op: Op, lhs: Tensor, rhs: Tensor, y: Tensor) -> quant_ops.BatchMatMulParams:
    try:
        return quant_ops.batch_matmul_params(*qparams(op, lhs), *qparams(op, rhs),
                                             *qparams(op, y))
    except quant_ops.UnsupportedQuantization as e:
        refuse(op, str(e))


def batch_matmul_macs(graph: Graph, op: Op) -> int:
    """K multiply-accumulates per output element."""
    a = op.attrs if isinstance(op.attrs, BatchMatMulAttrs) else BatchMatMulAttrs()
    lhs, rhs = (graph.tensors[i].shape for i in op.inputs[:2])
    return opspec.out_elems(graph, op) * validate.batch_matmul_dims(lhs, rhs, a)[1]


# The variant that copies strided computed operands taps-last into scratch, one matrix each.
TAPS_LAST_VARIANT = "taps_last"


def taps_last_bytes(graph: Graph, op: Op) -> int:
    """The scratch mcu_batch_matmul_taps_last_s8 runs with: M * K bytes for a computed LHS
    with adj_x, plus K * N for a computed RHS without adj_y; 0 when both are read along
    their taps already (or the op is not one the emitter accepts)."""
    a = op.attrs
    if not isinstance(a, BatchMatMulAttrs) or len(op.inputs) != 2 or min(op.inputs) < 0:
        return 0
    lhs, rhs = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if not (2 <= len(lhs.shape) <= RANK and 2 <= len(rhs.shape) <= RANK):
        return 0
    m, k, _, n = validate.batch_matmul_dims(lhs.shape, rhs.shape, a)
    need = m * k if a.adj_x and not lhs.is_constant else 0
    return need + (k * n if not a.adj_y and not rhs.is_constant else 0)


def _taps_last_scratch(graph: Graph, op: Op, inplace: bool) -> int:
    return taps_last_bytes(graph, op)


def _taps_last_variant(graph: Graph, op: Op, inplace: bool, scratch: int) -> Optional[str]:
    need = taps_last_bytes(graph, op)
    return TAPS_LAST_VARIANT if need and scratch >= need else None


# No scratch needed; the taps-last copies where the plan has the room free.
SPEC = opspec.OpSpec(macs=batch_matmul_macs, preferred_scratch=_taps_last_scratch,
                     variant=_taps_last_variant)

register(OpRecord(OpKind.BATCH_MATMUL, B.BATCH_MATMUL, reader.read_batch_matmul,
                  validate.batch_matmul_rule, SPEC, _emit))
