"""FULLY_CONNECTED int8 -> engine/kernels/fully_connected.c.

Per-tensor weights take TFLM's FULLY_CONNECTED multiplier (input * filter scale in float32,
then divided in double); per-channel weights the convolution order (all in double). This is
where ai_edge_litert and TFLM may differ by one LSB; we match TFLM. Rows of the input
(everything but its last dimension, as TFLM counts batches from the output shape) are
independent products; keep_num_dims only changes the output's shape, not its bytes. Weights
are packed four rows at a time for the kernel's inner loop (pack_weight_rows), bias,
multiplier and shift go into one per-unit table (requant_table).
"""
from __future__ import annotations

import numpy as np

from engine import quantization
from tflite_converter.codegen.api import EmitContext, KernelCall, emitter
from tflite_converter.codegen.ops._conv_common import (
    bias_values,
    filter_scales,
    folded_bias,
    int8_activation,
    int8_weights,
    FC_ROW_BLOCK,
    optional_input,
    output_clamp,
    pack_weight_rows,
    refuse,
    requant_table,
    scalar_zero_point,
)
from tflite_converter.ir import FullyConnectedAttrs, Op, OpKind


@emitter(OpKind.FULLY_CONNECTED)
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
    bias = folded_bias(op, bias_values(ctx, op, optional_input(op, 2), units), w.data, zp_in)
    rq, fast = requant_table(ctx, op, bias, w.data, mult, shift, zp_out)
    weights = ctx.const_array(f"op{op.index}_wpk", pack_weight_rows(w.data, FC_ROW_BLOCK),
                              "int8_t")
    code = (f"mcu_fully_connected_s8({ctx.ptr(op.inputs[0])}, {batches}, {depth}, {weights}, "
            f"{rq}, {fast}, {ctx.ptr(op.outputs[0])}, {units}, {zp_out}, {act_min}, {act_max});")
    return KernelCall(code=code, kernels=("fully_connected",))
