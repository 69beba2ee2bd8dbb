"""DEPTHWISE_CONV_2D int8 -> engine/kernels/depthwise_conv2d.c.

When the memory plan runs the op in place (the output has the input's arena offset) the
channel-by-channel kernel uses the planned one-channel buffer (opspec.
depthwise_inplace_scratch_bytes); otherwise the direct kernel needs no scratch. Weights are
re-ordered from TFLite's [1][kh][kw][Cout] to [Cout][kh*kw] so each channel's taps are
contiguous. Per-channel scales are read along the output channels whatever the stored
quantized dimension says (TFLM does the same: it sizes them by the filter's last dimension),
which is what the old per-channel layout of tflm_person_detect needs.
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
from tflite_converter.ir import ConvAttrs, Op, OpKind


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
    rows = np.ascontiguousarray(np.asarray(w.data).reshape(k_h * k_w, out_c).T)  # [Cout][taps]
    bias = folded_bias(op, bias_values(ctx, op, optional_input(op, 2), out_c), rows, zp_in)
    bias_name = ctx.const_array(f"op{op.index}_bias", bias, "int32_t")
    weights = ctx.const_array(f"op{op.index}_dw_weights", rows.astype(np.int8), "int8_t")

    x_ptr, y_ptr = ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])
    in_place = x_ptr == y_ptr
    if in_place and (n != 1 or depth_mult != 1):
        refuse(op, "planned in place, but in-place depthwise needs batch 1 and depth "
                   "multiplier 1")
    in_img, out_img = in_h * in_w * in_c, out_h * out_w * out_c
    calls = []
    for b in range(n):
        xi, yi = offset_ptr(x_ptr, b * in_img), offset_ptr(y_ptr, b * out_img)
        args = (f"{xi}, {in_h}, {in_w}, {in_c}, {depth_mult}, {k_h}, {k_w}, {a.stride_h}, "
                f"{a.stride_w}, {a.dilation_h}, {a.dilation_w}, {p.top}, {p.left}, {zp_in}, "
                f"{weights}, {bias_name}, {rq.mult}, {rq.shift}, {rq.per_channel}, {yi}, "
                f"{out_h}, {out_w}, {zp_out}, {act_min}, {act_max}")
        if in_place:
            calls.append(f"mcu_depthwise_conv2d_s8({args}, {ctx.scratch(op)});")
        else:
            calls.append(f"mcu_depthwise_conv2d_direct_s8({args});")
    return KernelCall(code="\n".join(calls), kernels=("depthwise_conv2d",))
