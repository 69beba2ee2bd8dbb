"""CONV_2D int8 -> engine/kernels/conv2d.c.

1x1 kernels without padding run as a matrix product of the input pixels (mcu_conv2d_1x1_s8);
everything else gathers the receptive fields first (mcu_conv2d_s8). Both widen blocks of
output pixels into the planned scratch (conv2d_spec.conv2d_block_scratch); a kxk convolution uses
the widest pixel block the plan granted room for (ctx.scratch_bytes, planner loop tiling). The weights are re-packed
for the kernels' inner loop (pack_weight_rows: rows of TFLite's [kh][kw][Cin] order, the
order im2col gathers, in pairs) and the bias, multiplier and shift of each output channel
go into one table (conv_requant_table), which also picks the requantisation mode proved
exact for this op.

Two special cases: pointwise layers of 8, 16, 24 or 32 input channels in the FAST_FULL mode
run mcu_conv2d_1x1_reg_s8 / mcu_conv2d_1x1_reg_strided_s8 (inputs in registers, one record
per output channel: conv1x1_register_records), and kxk layers granted room for one pixel only run
mcu_conv2d_px1_s8 on weights widened to int16 here (pack_wide_weight_rows).

int4 filters (Tensor.packed_int4) keep pack_weight_rows' layout packed two a byte in Flash
(int4.pack_words: eight values a word, which the kernels split with two ANDs) and run
mcu_conv2d_1x1_s4 / mcu_conv2d_s4, which unpack CONV_ROW_BLOCK rows at a time into the scratch
(conv2d_spec.conv2d_int4_rows_bytes) for the same core, or, where the plan granted room for it
(variant "px3w", conv2d_spec.conv2d_preferred_scratch), the whole filter once per invoke and
then run the int8 kernel; the register and widened-weight kernels, whose records hold the
weights widened, are not used for them.
"""
from __future__ import annotations

from engine import quantization
from tflite_converter import conv2d_spec, int4, reader, schema, validate
from tflite_converter.codegen.api import EmitContext, KernelCall
from tflite_converter.codegen.ops._conv_common import (
    CONV_ROW_BLOCK,
    REG_1X1_DEPTHS,
    ConvRequantMode,
    bias_values,
    conv1x1_register_records,
    conv_operands,
    conv_requant_values,
    filter_scales,
    folded_bias,
    offset_ptr,
    optional_input,
    output_clamp,
    pack_weight_rows,
    pack_wide_weight_rows,
    refuse,
    scalar_zero_point,
    spatial_out,
)
from tflite_converter.conv2d_spec import conv2d_variant_pixels, conv2d_variant_whole
from tflite_converter.ir import Op, OpKind, Pads
from tflite_converter.op_registry import OpRecord, register

B = schema.BuiltinOperator



def emit_conv2d(ctx: EmitContext, op: Op) -> KernelCall:
    a, x, y, w = conv_operands(ctx, op)
    n, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    if len(w.shape) != 4 or w.shape[0] != out_c:
        refuse(op, f"weights shape {w.shape} do not match {out_c} output channels")
    _, k_h, k_w, w_c = w.shape
    if w_c != in_c:
        refuse(op, f"grouped convolution ({in_c} input channels, filters of depth {w_c}) "
                   "is not supported")
    if y.shape[0] != n:
        refuse(op, "input and output batch sizes differ")
    p = a.pads
    spatial_out(op, in_h, p.top, p.bottom, k_h, a.stride_h, a.dilation_h, out_h, "height")
    spatial_out(op, in_w, p.left, p.right, k_w, a.stride_w, a.dilation_w, out_w, "width")

    assert x.quant is not None and y.quant is not None and w.data is not None
    mult, shift = quantization.conv_multipliers(x.quant.scalar_scale, filter_scales(w),
                                                y.quant.scalar_scale, out_c)
    zp_in, zp_out = scalar_zero_point(x), scalar_zero_point(y)
    act_min, act_max = output_clamp(op, a.activation, y)
    # TFLM's ConvPerChannel ignores the filter zero point (int8 weights are symmetric), so do we.
    rows = w.data.reshape(out_c, k_h * k_w * in_c)
    bias = folded_bias(op, bias_values(ctx, op, optional_input(op, 2), out_c), rows, zp_in)
    table, mode = conv_requant_values(bias, rows, mult, shift, zp_out, act_min, act_max)

    x_ptr, y_ptr = ctx.ptr(op.inputs[0]), ctx.ptr(op.outputs[0])
    in_img, out_img = in_h * in_w * in_c, out_h * out_w * out_c
    pointwise = k_h == 1 and k_w == 1 and p == Pads()
    s4 = w.packed_int4
    if not s4 and pointwise and in_c in REG_1X1_DEPTHS and mode is ConvRequantMode.FAST_FULL:
        # few input channels: the register-resident kernels (conv2d.c mcu_conv2d_1x1_reg_s8,
        # a run of pixels; mcu_conv2d_1x1_reg_strided_s8 steps input rows and pixels)
        rec = ctx.const_array(f"op{op.index}_rec", conv1x1_register_records(rows, table),
                              "int32_t")
        if a.stride_h == 1 and a.stride_w == 1:
            head, shape = "mcu_conv2d_1x1_reg_s8", f"{out_h * out_w}"
        else:
            head = "mcu_conv2d_1x1_reg_strided_s8"
            shape = f"{out_h}, {out_w}, {a.stride_h * in_w * in_c}, {a.stride_w * in_c}"
        calls = [f"{head}({offset_ptr(x_ptr, b * in_img)}, {shape}, {in_c}, {rec}, "
                 f"{offset_ptr(y_ptr, b * out_img)}, {out_c});" for b in range(n)]
        return KernelCall(code="\n".join(calls), kernels=("conv2d",))
    rq_table = ctx.const_array(f"op{op.index}_rq", table, "int32_t")
    scratch = ctx.scratch(op)
    variant = ctx.variant(op)
    if variant is None:
        refuse(op, f"{ctx.scratch_bytes(op)} bytes of planned scratch hold no pixel block")
    pixel_block = conv2d_variant_pixels(variant)
    # one pixel at a time uses each weight once per pixel: widen them here instead of in the
    # loop (twice this op's weight Flash; cifar10's op 1: 2.67M -> 1.62M instructions)
    one_pixel = not s4 and not pointwise and pixel_block == 1
    if s4:
        weights = ctx.const_array(f"op{op.index}_w4",
                                  int4.pack_words(pack_weight_rows(rows, CONV_ROW_BLOCK)),
                                  "uint8_t")
    elif one_pixel:
        weights = ctx.const_array(f"op{op.index}_wide", pack_wide_weight_rows(rows), "int16_t")
    else:
        weights = ctx.const_array(f"op{op.index}_wpk", pack_weight_rows(rows, CONV_ROW_BLOCK),
                                  "int8_t")
    suffix = "s4" if s4 else "s8"
    # the int4 kernels' `whole` argument: the plan granted room for the whole unpacked filter
    whole = f"{int(conv2d_variant_whole(variant))}, " if s4 else ""
    calls = []
    for b in range(n):
        xi, yi = offset_ptr(x_ptr, b * in_img), offset_ptr(y_ptr, b * out_img)
        tail = (f"{weights}, {rq_table}, {int(mode)}, {yi}, {out_h}, {out_w}, {out_c}, {zp_out}, "
                f"{act_min}, {act_max}")
        if pointwise:
            calls.append(f"mcu_conv2d_1x1_{suffix}({xi}, {in_w}, {in_c}, {a.stride_h}, {a.stride_w}, "
                         f"{tail}, {whole}{scratch});")
        elif one_pixel:
            calls.append(f"mcu_conv2d_px1_s8({xi}, {in_h}, {in_w}, {in_c}, {k_h}, {k_w}, "
                         f"{a.stride_h}, {a.stride_w}, {a.dilation_h}, {a.dilation_w}, "
                         f"{p.top}, {p.left}, {zp_in}, {tail}, {scratch});")
        else:
            calls.append(f"mcu_conv2d_{suffix}({xi}, {in_h}, {in_w}, {in_c}, {k_h}, {k_w}, "
                         f"{a.stride_h}, {a.stride_w}, {a.dilation_h}, {a.dilation_w}, "
                         f"{p.top}, {p.left}, {zp_in}, {tail}, {pixel_block}, {whole}{scratch});")
    return KernelCall(code="\n".join(calls), kernels=("conv2d",))

register(OpRecord(OpKind.CONV_2D, B.CONV_2D, reader.read_conv, validate.conv_rule, conv2d_spec.SPEC,
                  emit_conv2d))
