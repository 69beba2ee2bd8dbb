"""FULLY_CONNECTED int8 -> engine/kernels/fully_connected.c.

Per-tensor weights take TFLM's FULLY_CONNECTED multiplier (input * filter scale in float32,
then divided in double); per-channel weights the convolution order (all in double). This is
where ai_edge_litert and TFLM may differ by one LSB; we match TFLM. Rows of the input
(everything but its last dimension, as TFLM counts batches from the output shape) are
independent products; keep_num_dims only changes the output's shape, not its bytes. Weights
are packed four rows at a time for the kernel's inner loop (pack_weight_rows), bias,
multiplier and shift go into one per-unit table (requant_table).

Where every unit's accumulator provably stays within +-2^23 (always so far: |bias| + 128 *
sum|w| < 2^23), the weights are stored as offset bytes for mcu_fc_offset_s8 (one sign
extension per weight word instead of two, see fully_connected.c); otherwise the plain layout
and mcu_fully_connected_s8.

int4 filters (Tensor.packed_int4, per tensor as TFLM requires) keep the plain layout, the
units padded to whole blocks of four rows, packed two a byte in the word layout
(int4.pack_words) and run mcu_fully_connected_s4, which widens each group of weights as it
reads it: no scratch, the same requantisation table.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from engine import quantization
from tflite_converter import int4, opspec, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._conv_common import (
    FC_ROW_BLOCK,
    bias_values,
    filter_scales,
    folded_bias,
    int8_activation,
    int8_weights,
    optional_input,
    output_clamp,
    pack_weight_rows,
    refuse,
    requant_table,
    requant_values,
    scalar_zero_point,
)
from tflite_converter.ir import FullyConnectedAttrs, Graph, Op, OpKind
from tflite_converter.op_registry import OpRecord, register

B = schema.BuiltinOperator

# mcu_fc_offset_s8 keeps 256 * (bias + sum w*x) in an int32: exact below this bound.
OFFSET_ACC_LIMIT = 1 << 23
# Q's low bytes are _Q_OFFSET - x (fully_connected.c MCU_FCO_Q_FLIP), the unsigned weight
# bytes w + _BYTE_OFFSET.
_Q_OFFSET = 127
_BYTE_OFFSET = 128
# Rows per block of the offset-byte weights (fully_connected.c MCU_FCO_RB: eight accumulators).
FCO_ROW_BLOCK = 8


def offset_kernel_exact(bias: np.ndarray, weight_rows: np.ndarray) -> bool:
    """True when |bias + sum_k w[c][k] * x[k]| < 2^23 for every int8 input x and unit c."""
    bound = np.abs(bias.astype(np.int64)) + 128 * np.abs(weight_rows.astype(np.int64)).sum(axis=1)
    return bool(bound.size) and bool(np.all(bound < OFFSET_ACC_LIMIT))


def pack_offset_weights(weight_rows: np.ndarray) -> np.ndarray:
    """pack_weight_rows(.., FCO_ROW_BLOCK) with each group w0..w3 stored as the bytes
    [w1+128, w0, w3+128, w2] (fully_connected.c, the offset-byte kernel)."""
    g = pack_weight_rows(weight_rows, FCO_ROW_BLOCK).astype(np.int16).reshape(-1, 4)
    out = np.stack([g[:, 1] + _BYTE_OFFSET, g[:, 0], g[:, 3] + _BYTE_OFFSET, g[:, 2]], axis=1)
    return (out.reshape(-1) & 0xFF).astype(np.uint8).view(np.int8)


def offset_start_values(bias: np.ndarray, weight_rows: np.ndarray) -> np.ndarray:
    """The accumulators' start values 256 * bias - 127 * (sum over the odd taps of each row,
    padded to a multiple of 4 with zero weights, of w + 128), wrapped to int32 as the kernel's
    modulo-2^32 sums expect (fully_connected.c: the terms the Q lanes add per row)."""
    odd = weight_rows[:, 1::2].astype(np.int64).sum(axis=1)
    padded_odd_taps = (weight_rows.shape[1] + 3) // 4 * 2
    start = bias.astype(np.int64) * 256 - _Q_OFFSET * (odd + _BYTE_OFFSET * padded_odd_taps)
    return ((start + (1 << 31)) % (1 << 32)) - (1 << 31)


def offset_table(rq3: np.ndarray, bias: np.ndarray, weight_rows: np.ndarray, fast: int,
                 zp_out: int) -> np.ndarray:
    """requant_values' {bias, multiplier, shift} rows as mcu_fc_offset_s8's {start value,
    multiplier, shift, rnd}: rnd = 2^(rs-1) + zp_out * 2^rs (wrapped to int32 as the C
    computes it) when fast, else 0."""
    t3 = np.asarray(rq3, dtype=np.int64).reshape(-1, 3)
    rnd = np.zeros(t3.shape[0], dtype=np.int64)
    if fast:
        rs = t3[:, 2]
        rnd = (np.left_shift(1, rs - 1) + np.int64(zp_out) * np.left_shift(1, rs)) % (1 << 32)
        rnd = np.where(rnd >= 1 << 31, rnd - (1 << 32), rnd)
    table = np.stack([offset_start_values(bias, weight_rows), t3[:, 1], t3[:, 2], rnd], axis=1)
    return table.astype(np.int32)



# The variant of mcu_fc_offset_s8 that precomputes each input row's lanes into scratch.
LANES_VARIANT = "lanes"


def graph_offset_kernel_exact(graph: Graph, op: Op) -> Optional[bool]:
    """offset_kernel_exact of the op's folded bias, read from the graph's constant tensors
    (the emitter's test, for the planner and the latency model, which have no EmitContext);
    None where the weights or the bias are not constant 2-D / per-unit values (the search's
    graphs carry no weights)."""
    w = graph.tensors[op.inputs[1]]
    if w.data is None or len(w.shape) != 2 or np.asarray(w.data).size != w.num_elements:
        return None
    rows = np.asarray(w.data).reshape(w.shape).astype(np.int64)
    b = optional_input(op, 2)
    bias = np.zeros(w.shape[0], dtype=np.int64)
    if b >= 0:
        bt = graph.tensors[b]
        if bt.data is None or bt.num_elements != w.shape[0]:
            return None
        bias = np.asarray(bt.data, dtype=np.int64).reshape(-1)
    x = graph.tensors[op.inputs[0]]
    zp_in = int(x.quant.zero_point.reshape(-1)[0]) if x.quant is not None else 0
    return offset_kernel_exact(bias - zp_in * rows.sum(axis=1), rows)


def offset_lanes_bytes(graph: Graph, op: Op) -> int:
    """The scratch mcu_fc_offset_lanes_s8 runs with: 8 bytes per whole group of 4 inputs (P
    and Q, fully_connected.c), for an op the emitter gives the offset kernel
    (offset_kernel_exact of its folded bias) with at least one whole 8-row block; 0 for any
    other op, which runs without it."""
    w = graph.tensors[op.inputs[1]]
    x = graph.tensors[op.inputs[0]]
    if (w.packed_int4 or len(w.shape) != 2 or w.shape[0] < FCO_ROW_BLOCK or w.shape[1] < 4
            or x.quant is None or x.quant.zero_point.size != 1):
        return 0
    return 8 * (w.shape[1] // 4) if graph_offset_kernel_exact(graph, op) else 0


def _lanes_scratch(graph: Graph, op: Op, inplace: bool) -> int:
    return offset_lanes_bytes(graph, op)


def _lanes_variant(graph: Graph, op: Op, inplace: bool, scratch: int) -> Optional[str]:
    need = offset_lanes_bytes(graph, op)
    return LANES_VARIANT if need and scratch >= need else None


# No scratch needed; the lanes where the plan has the room free (planner.scratch.grant_scratch).
SPEC = dataclasses.replace(opspec.FULLY_CONNECTED, preferred_scratch=_lanes_scratch,
                           variant=_lanes_variant)


def emit_fully_connected(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, FullyConnectedAttrs):
        refuse(op, "missing fully-connected attributes")
    x = int8_activation(ctx, op, op.inputs[0], "input")
    y = int8_activation(ctx, op, op.outputs[0], "output")
    if not y.shape:
        refuse(op, "output is a scalar")
    units = y.shape[-1]
    w = int8_weights(ctx, op, op.inputs[1], units)
    if len(w.shape) != 2 or w.shape[0] != units:
        refuse(op, f"weights shape {w.shape} is not [{units}, depth]")
    depth = w.shape[1]
    batches = y.num_elements // units
    if x.num_elements != batches * depth:
        refuse(op, f"input of {x.num_elements} values is not {batches} rows of {depth}")
    assert w.quant is not None and x.quant is not None and y.quant is not None
    per_channel_weights = w.quant.scale.size > 1
    if not per_channel_weights and int(w.quant.zero_point.reshape(-1)[0]) != 0:
        refuse(op, "weights with a non-zero zero point are not supported")

    if per_channel_weights:
        mult, shift = quantization.conv_multipliers(x.quant.scalar_scale, filter_scales(w),
                                                    y.quant.scalar_scale, units)
    else:
        m, s = quantization.fully_connected_multiplier(x.quant.scalar_scale,
                                                       float(filter_scales(w)[0]),
                                                       y.quant.scalar_scale)
        mult, shift = np.array([m], dtype=np.int32), np.array([s], dtype=np.int32)
    zp_in, zp_out = scalar_zero_point(x), scalar_zero_point(y)
    act_min, act_max = output_clamp(op, a.activation, y)
    assert w.data is not None  # int8_weights refuses non-constant weights
    rows = w.data
    bias = folded_bias(op, bias_values(ctx, op, optional_input(op, 2), units), rows, zp_in)
    scratch = ""
    if w.packed_int4:
        rq, fast = requant_table(ctx, op, bias, rows, mult, shift, zp_out)
        # whole blocks of FC_ROW_BLOCK rows (zero rows appended), in the word layout
        padded = np.zeros((-(-units // FC_ROW_BLOCK) * FC_ROW_BLOCK, depth), dtype=np.int8)
        padded[:units] = rows
        weights = ctx.const_array(f"op{op.index}_w4",
                                  int4.pack_words(pack_weight_rows(padded, FC_ROW_BLOCK)), "uint8_t")
        kernel = "mcu_fully_connected_s4"
    elif offset_kernel_exact(bias, rows):
        table, fast = requant_values(bias, rows, mult, shift, zp_out)
        rq = ctx.const_array(f"op{op.index}_rq", offset_table(table, bias, rows, fast, zp_out),
                             "int32_t")
        weights = ctx.const_array(f"op{op.index}_wpk", pack_offset_weights(rows), "int8_t")
        kernel = "mcu_fc_offset_s8"
        if ctx.variant(op) == LANES_VARIANT:
            kernel, scratch = "mcu_fc_offset_lanes_s8", f", {ctx.scratch(op)}"
    else:
        rq, fast = requant_table(ctx, op, bias, rows, mult, shift, zp_out)
        weights = ctx.const_array(f"op{op.index}_wpk", pack_weight_rows(rows, FC_ROW_BLOCK),
                                  "int8_t")
        kernel = "mcu_fully_connected_s8"
    code = (f"{kernel}({ctx.ptr(op.inputs[0])}, {batches}, {depth}, {weights}, "
            f"{rq}, {fast}, {ctx.ptr(op.outputs[0])}, {units}, {zp_out}, {act_min}, {act_max}"
            f"{scratch});")
    return KernelCall(code=code, kernels=("fully_connected",))

register(OpRecord(OpKind.FULLY_CONNECTED, B.FULLY_CONNECTED, reader.read_fully_connected,
                  validate.fully_connected_rule, SPEC, emit_fully_connected))
