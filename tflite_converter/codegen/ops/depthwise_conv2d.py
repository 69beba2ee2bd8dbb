"""DEPTHWISE_CONV_2D int8 -> engine/kernels/depthwise_conv2d.c.

When the op runs in place (the output has the input's arena offset) the channel-plane kernel
uses the planned one-channel buffer (opspec.depthwise_inplace_scratch_bytes); out of place
with a single input channel, the band kernel pads a few rows at a time in its planned buffer
(opspec.depthwise_band_bytes); otherwise the direct kernel needs no scratch. Weights are re-ordered from TFLite's [1][kh][kw][Cout] to [Cout][kh][kw4]: each
channel's taps contiguous, each kernel row zero-padded to kw4 = a multiple of 4 taps so the
DSP loops read whole words. Per-channel scales are read along the output channels whatever
the stored quantized dimension says (TFLM does the same: it sizes them by the filter's last
dimension), which is what the old per-channel layout of tflm_person_detect needs.
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
    offset_ptr,
    optional_input,
    output_clamp,
    refuse,
    requant_arrays,
    scalar_zero_point,
    spatial_out,
)
from tflite_converter import opspec
from tflite_converter.ir import ConvAttrs, Op, OpKind

# taps per stored kernel row are a multiple of this (MCU_DW_ROW in the kernel)
ROW_MULTIPLE = 4


def padded_rows(rows: np.ndarray, k_h: int, k_w: int) -> np.ndarray:
    """[Cout][k_h*k_w] -> [Cout][k_h][kw4] flattened per channel, zero taps appended to each
    kernel row (kw4 = k_w rounded up to ROW_MULTIPLE), int8."""
    kw4 = -(-k_w // ROW_MULTIPLE) * ROW_MULTIPLE
    out = np.zeros((rows.shape[0], k_h, kw4), dtype=np.int8)
    out[:, :, :k_w] = rows.reshape(rows.shape[0], k_h, k_w)
    return out.reshape(rows.shape[0], k_h * kw4)


@emitter(OpKind.DEPTHWISE_CONV_2D)
def emit_depthwise_conv2d(ctx: EmitContext, op: Op) -> KernelCall:
    a = op.attrs
    if not isinstance(a, ConvAttrs):
        refuse(op, "missing convolution attributes")
    x = int8_activation(ctx, op, op.inputs[0], "input")
    y = int8_activation(ctx, op, op.outputs[0], "output")
    if len(x.shape) != 4 or len(y.shape) != 4:
        refuse(op, "input and output must be 4-D (NHWC)")
    n, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    w = int8_weights(ctx, op, op.inputs[1], out_c)
    if len(w.shape) != 4 or w.shape[0] != 1 or w.shape[3] != out_c:
        refuse(op, f"weights shape {w.shape} is not [1, kh, kw, {out_c}]")
    if y.shape[0] != n:
        refuse(op, "input and output batch sizes differ")
    if out_c % in_c:
        refuse(op, f"{out_c} output channels are not a multiple of {in_c} input channels")
    depth_mult = out_c // in_c
    _, k_h, k_w, _ = w.shape
    p = a.pads
    spatial_out(op, in_h, p.top, p.bottom, k_h, a.stride_h, a.dilation_h, out_h, "height")
    spatial_out(op, in_w, p.left, p.right, k_w, a.stride_w, a.dilation_w, out_w, "width")

    assert x.quant is not None and y.quant is not None
    mult, shift = quantization.conv_multipliers(x.quant.scalar_scale, filter_scales(w),
                                                y.quant.scalar_scale, out_c)
    rq = requant_arrays(ctx, op, mult, shift)
    zp_in, zp_out = scalar_zero_point(x), scalar_zero_point(y)
    act_min, act_max = output_clamp(op, a.activation, y)
    if np.any(np.asarray(mult) < 0):
        # the kernels' one-step requantisation (mcu_dw_rq) relies on TFLite's non-negative
        # multipliers
        refuse(op, "negative requantisation multiplier")
    rows = np.ascontiguousarray(np.asarray(w.data).reshape(k_h * k_w, out_c).T)  # [Cout][taps]
    bias = folded_bias(op, bias_values(ctx, op, optional_input(op, 2), out_c), rows, zp_in)
    bias_name = ctx.const_array(f"op{op.index}_bias", bias, "int32_t")
    weights = ctx.const_array(f"op{op.index}_dw_weights", padded_rows(rows, k_h, k_w), "int8_t")

    x_ptr, y_ptr = ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])
    in_place = x_ptr == y_ptr
    if in_place and (n != 1 or depth_mult != 1):
        refuse(op, "planned in place, but in-place depthwise needs batch 1 and depth "
                   "multiplier 1")
    single = opspec.depthwise_single_channel(ctx.graph, op, in_place)
    in_img, out_img = in_h * in_w * in_c, out_h * out_w * out_c
    calls = []
    for b in range(n):
        xi, yi = offset_ptr(x_ptr, b * in_img), offset_ptr(y_ptr, b * out_img)
        tail = (f"{k_h}, {k_w}, {a.stride_h}, "
                f"{a.stride_w}, {a.dilation_h}, {a.dilation_w}, {p.top}, {p.left}, {zp_in}, "
                f"{weights}, {bias_name}, {rq.mult}, {rq.shift}, {rq.per_channel}, {yi}, "
                f"{out_h}, {out_w}, {zp_out}, {act_min}, {act_max}")
        if in_place:
            calls.append(f"mcu_depthwise_conv2d_s8({xi}, {in_h}, {in_w}, {in_c}, {depth_mult}, "
                         f"{tail}, {ctx.scratch(op)});")
        elif single:
            calls.append(f"mcu_depthwise_conv2d_c1_s8({xi}, {in_h}, {in_w}, {depth_mult}, "
                         f"{tail}, {ctx.scratch(op)});")
        else:
            calls.append(f"mcu_depthwise_conv2d_direct_s8({xi}, {in_h}, {in_w}, {in_c}, "
                         f"{depth_mult}, {tail});")
    return KernelCall(code="\n".join(calls), kernels=("depthwise_conv2d",))
