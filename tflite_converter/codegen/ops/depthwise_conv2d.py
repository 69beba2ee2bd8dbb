"""DEPTHWISE_CONV_2D int8 -> engine/kernels/depthwise_conv2d.c.

Five kernels (DwKernel; depthwise_spec.depthwise_variant chooses, the plan stores the choice): in
place (the output has the input's arena offset) the channel-plane kernel with the planned one-channel buffer
(depthwise_spec.depthwise_inplace_scratch_bytes), or, where depthwise_spec.depthwise_prefers_hwc says the
channel-group kernel (four channels a tap, valid taps only) is faster and the plan granted
its buffer (depthwise_spec.depthwise_hwc_scratch_bytes, a preferred scratch size), that one; out of
place with a single input channel, the plane kernel if the plan granted a whole plane, else
the band kernel (depthwise_spec.depthwise_band_bytes); out of place with depth multiplier 1 the
channel-group kernel reading the input directly; otherwise the direct kernel, no scratch.
Plane / band / direct weights are re-ordered from TFLite's [1][kh][kw][Cout] to
[Cout][kh][kw4]: each channel's taps contiguous, each kernel row zero-padded to kw4 = a
multiple of 4 taps so the DSP loops read whole words, with zp_in folded into the bias; the
channel-group kernel's are [ceil(Cout/4)][kh*kw][4] (hwc_weights) with TFLite's own bias.
Per-channel scales are read along the output channels whatever
the stored quantized dimension says (TFLM does the same: it sizes them by the filter's last
dimension), which is what the old per-channel layout of tflm_person_detect needs.

int4 filters (Tensor.packed_int4) keep the same layouts packed two a byte (int4.pack) and run
the *_s4 kernels, which unpack one channel's (channel group's, for the HWC kernel) weights at
a time into a stack buffer of DW_S4_MAX bytes before the int8 loops; where the planned
variant is the four-channel band kernel (int16 pair words), they run the single-channel band
kernel in the same band instead.
"""
from __future__ import annotations

import enum

import numpy as np

from engine import quantization
from tflite_converter import depthwise_spec, int4, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._conv_common import (
    bias_values,
    conv_operands,
    filter_scales,
    folded_bias,
    offset_ptr,
    optional_input,
    output_clamp,
    refuse,
    requant_arrays,
    scalar_zero_point,
    spatial_out,
)
from tflite_converter.ir import Op, OpKind
from tflite_converter.op_registry import OpRecord, register

B = schema.BuiltinOperator

# taps per stored kernel row are a multiple of this (MCU_DW_ROW in the kernel)
ROW_MULTIPLE = 4
# bytes of the int4 kernels' stack buffer for one channel's / group's weights (MCU_DW_S4_MAX)
DW_S4_MAX = 256


def padded_rows(rows: np.ndarray, k_h: int, k_w: int) -> np.ndarray:
    """[Cout][k_h*k_w] -> [Cout][k_h][kw4] flattened per channel, zero taps appended to each
    kernel row (kw4 = k_w rounded up to ROW_MULTIPLE), int8."""
    kw4 = -(-k_w // ROW_MULTIPLE) * ROW_MULTIPLE
    out = np.zeros((rows.shape[0], k_h, kw4), dtype=np.int8)
    out[:, :, :k_w] = rows.reshape(rows.shape[0], k_h, k_w)
    return out.reshape(rows.shape[0], k_h * kw4)


class DwKernel(enum.Enum):
    """The kernels of engine/kernels/depthwise_conv2d.c, by their depthwise_spec.depthwise_variant
    name (the plan stores which one runs)."""

    PLANE = "plane"  # mcu_depthwise_conv2d_s8: one padded channel plane at a time (in place too)
    BAND = "band"  # mcu_depthwise_conv2d_c1_s8: one input channel, a band of padded rows
    BAND4 = "band4"  # mcu_depthwise_conv2d_c1g4_s8: the band, four output channels a band word
    HWC = "hwc"  # mcu_depthwise_conv2d_hwc_s8: four channels, valid taps only
    DIRECT = "direct"  # mcu_depthwise_conv2d_direct_s8: bounds-tested taps, no scratch


# output channels mcu_depthwise_conv2d_c1g4_s8 computes from one band word
BAND4_CHANNELS = depthwise_spec.BAND4_CHANNELS


def band4_weights(rows: np.ndarray, k_h: int, k_w: int) -> np.ndarray:
    """[Cout][k_h*k_w] int8 -> uint32 words of two int16 taps (low half first),
    [Cout/4][k_h][k_w/4][4 channels][(tap 0, tap 2), (tap 1, tap 3)] flattened: the order
    in which the kernel's SXTB16 splits a band word into even and odd taps."""
    g = BAND4_CHANNELS
    c = rows.shape[0]
    w = rows.astype(np.int32).reshape(c // g, g, k_h, k_w // 4, 4)
    w = w.transpose(0, 2, 3, 1, 4)  # [group][ky][quad][channel][tap]
    lo = np.stack([w[..., 0], w[..., 1]], axis=-1) & 0xFFFF
    hi = np.stack([w[..., 2], w[..., 3]], axis=-1) & 0xFFFF
    return (lo | (hi << 16)).astype(np.uint32).reshape(-1)


def hwc_weights(rows: np.ndarray) -> np.ndarray:
    """[Cout][taps] -> [ceil(Cout/4)][taps][4] flattened, the last group zero-padded, int8:
    the channel-group kernel reads one word of four channels' weights per tap."""
    g = depthwise_spec.DEPTHWISE_GROUP
    c, taps = rows.shape
    groups = -(-c // g)
    out = np.zeros((groups * g, taps), dtype=np.int8)
    out[:c] = rows
    return np.ascontiguousarray(out.reshape(groups, g, taps).transpose(0, 2, 1)).reshape(-1)



def _dw_weights(ctx: EmitContext, op: Op, layout: np.ndarray, s4: bool) -> str:
    """The int8 weight layout as a constant array, packed two a byte for an int4 filter."""
    if s4:
        return ctx.const_array(f"op{op.index}_dw_w4", int4.pack(layout), "uint8_t")
    return ctx.const_array(f"op{op.index}_dw_weights", layout, "int8_t")


def emit_depthwise_conv2d(ctx: EmitContext, op: Op) -> KernelCall:
    a, x, y, w = conv_operands(ctx, op)
    n, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
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
    raw_bias = bias_values(ctx, op, optional_input(op, 2), out_c)

    x_ptr, y_ptr = ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])
    in_place = ctx.inplace(op)
    if in_place != (ctx.offset(op.inputs[0]) == ctx.offset(op.outputs[0])):
        refuse(op, "the plan's in-place flag and the tensors' offsets disagree")
    if in_place and (n != 1 or depth_mult != 1):
        refuse(op, "planned in place, but in-place depthwise needs batch 1 and depth "
                   "multiplier 1")
    variant = ctx.variant(op)
    if variant is None:
        refuse(op, "no depthwise kernel runs in the planned scratch")
    kind = DwKernel(variant)
    s4 = w.packed_int4
    if s4:
        # the four-channel band kernel's int16 pairs have no int4 form: the band kernel
        # runs in the same band instead
        kind = DwKernel.BAND if kind is DwKernel.BAND4 else kind
        unpacked = 4 * k_h * k_w if kind is DwKernel.HWC else k_h * -(-k_w // ROW_MULTIPLE) * ROW_MULTIPLE
        if unpacked > DW_S4_MAX:
            refuse(op, f"int4 {k_h}x{k_w} depthwise filter: the {kind.value} kernel would unpack "
                       f"{unpacked} weights at a time, more than its {DW_S4_MAX}-byte buffer")
    if kind is DwKernel.HWC:
        # TFLite's own int32 bias: this kernel subtracts zp_in from the inputs instead
        bias_name = ctx.const_array(f"op{op.index}_bias", raw_bias.astype(np.int32), "int32_t")
        weights = _dw_weights(ctx, op, hwc_weights(rows), s4)
    elif kind is DwKernel.BAND4:
        bias_name = ctx.const_array(f"op{op.index}_bias", folded_bias(op, raw_bias, rows, zp_in),
                                    "int32_t")
        weights = ctx.const_array(f"op{op.index}_dw_weights", band4_weights(rows, k_h, k_w),
                                  "uint32_t")
    else:
        bias_name = ctx.const_array(f"op{op.index}_bias", folded_bias(op, raw_bias, rows, zp_in),
                                    "int32_t")
        weights = _dw_weights(ctx, op, padded_rows(rows, k_h, k_w), s4)
    in_img, out_img = in_h * in_w * in_c, out_h * out_w * out_c
    sfx = "s4" if s4 else "s8"
    calls = []
    for b in range(n):
        xi, yi = offset_ptr(x_ptr, b * in_img), offset_ptr(y_ptr, b * out_img)
        tail = (f"{k_h}, {k_w}, {a.stride_h}, "
                f"{a.stride_w}, {a.dilation_h}, {a.dilation_w}, {p.top}, {p.left}, {zp_in}, "
                f"{weights}, {bias_name}, {rq.mult}, {rq.shift}, {rq.per_channel}, {yi}, "
                f"{out_h}, {out_w}, {zp_out}, {act_min}, {act_max}")
        if kind is DwKernel.HWC:
            scratch = ctx.scratch(op) if in_place else "(int8_t *)0"
            calls.append(f"mcu_depthwise_conv2d_hwc_{sfx}({xi}, {in_h}, {in_w}, {in_c}, {tail}, "
                         f"{scratch});")
        elif kind is DwKernel.PLANE:
            calls.append(f"mcu_depthwise_conv2d_{sfx}({xi}, {in_h}, {in_w}, {in_c}, {depth_mult}, "
                         f"{tail}, {ctx.scratch(op)});")
        elif kind is DwKernel.BAND4:
            calls.append(f"mcu_depthwise_conv2d_c1g4_s8({xi}, {in_h}, {in_w}, {depth_mult}, "
                         f"{k_h}, {k_w}, {a.stride_h}, {a.stride_w}, {p.top}, {p.left}, "
                         f"{zp_in}, {weights}, {bias_name}, {rq.mult}, {rq.shift}, "
                         f"{rq.per_channel}, {yi}, {out_h}, {out_w}, {zp_out}, {act_min}, "
                         f"{act_max}, {ctx.scratch(op)});")
        elif kind is DwKernel.BAND:
            calls.append(f"mcu_depthwise_conv2d_c1_{sfx}({xi}, {in_h}, {in_w}, {depth_mult}, "
                         f"{tail}, {ctx.scratch(op)});")
        else:
            calls.append(f"mcu_depthwise_conv2d_direct_{sfx}({xi}, {in_h}, {in_w}, {in_c}, "
                         f"{depth_mult}, {tail});")
    return KernelCall(code="\n".join(calls), kernels=("depthwise_conv2d",))

register(OpRecord(OpKind.DEPTHWISE_CONV_2D, B.DEPTHWISE_CONV_2D, reader.read_depthwise,
                  validate.conv_rule, depthwise_spec.SPEC, emit_depthwise_conv2d))
