"""What the CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED emitters share: checks that refuse
with the op's name and index, requantisation arrays, and the input-zero-point folding.

Folding: TFLite accumulates sum over taps inside the image of w * (x - zp_in), plus bias. The
kernels accumulate sum over all taps of w * x with padded taps holding zp_in, plus
bias' = bias - zp_in * sum(w). Both are the same integer: the padded taps add zp_in * w and
bias' removes zp_in * w for every tap, leaving -zp_in * w for the inside ones only.
"""
from __future__ import annotations

import dataclasses
import enum

import numpy as np

from engine import quantization
from tflite_converter.codegen.api import EmitContext
from tflite_converter.codegen.ops._common import offset_ptr, refuse
from tflite_converter.conv2d_spec import REG_1X1_DEPTHS
from tflite_converter.ir import Activation, ConvAttrs, DType, Op, Tensor


def int8_activation(ctx: EmitContext, op: Op, index: int, role: str) -> Tensor:
    """An int8 per-tensor quantized activation tensor (input or output)."""
    t = ctx.tensor(index)
    if t.dtype is not DType.INT8:
        refuse(op, f"{role} '{t.name}' is {t.dtype.value}; only int8 is supported")
    if t.quant is None or t.quant.scale.size != 1:
        refuse(op, f"{role} '{t.name}' needs per-tensor quantization")
    return t


def int8_weights(ctx: EmitContext, op: Op, index: int, channels: int) -> Tensor:
    t = ctx.tensor(index)
    if not t.is_constant:
        refuse(op, f"weights '{t.name}' are not constant")
    if t.dtype is not DType.INT8:
        refuse(op, f"weights '{t.name}' are {t.dtype.value}; only int8 is supported")
    if t.quant is None or t.quant.scale.size not in (1, channels):
        refuse(op, f"weights '{t.name}' need 1 or {channels} scales")
    return t

def conv_operands(ctx: EmitContext, op: Op) -> tuple[ConvAttrs, Tensor, Tensor, Tensor]:
    """The attributes, the 4-D (NHWC) int8 input and output, and the int8 weights of a
    CONV_2D / DEPTHWISE_CONV_2D, the op refused by name where one is not as the kernels need."""
    a = op.attrs
    if not isinstance(a, ConvAttrs):
        refuse(op, "missing convolution attributes")
    x = int8_activation(ctx, op, op.inputs[0], "input")
    y = int8_activation(ctx, op, op.outputs[0], "output")
    if len(x.shape) != 4 or len(y.shape) != 4:
        refuse(op, "input and output must be 4-D (NHWC)")
    return a, x, y, int8_weights(ctx, op, op.inputs[1], y.shape[3])


def bias_values(ctx: EmitContext, op: Op, index: int, channels: int) -> np.ndarray:
    """The int32 bias as int64 (zeros when absent)."""
    if index < 0:
        return np.zeros(channels, dtype=np.int64)
    t = ctx.tensor(index)
    if not t.is_constant:
        refuse(op, f"bias '{t.name}' is not constant")
    if t.dtype is not DType.INT32:
        refuse(op, f"bias '{t.name}' is {t.dtype.value}; only int32 is supported")
    if t.num_elements != channels:
        refuse(op, f"bias '{t.name}' has {t.num_elements} values for {channels} channels")
    return np.asarray(t.data, dtype=np.int64).reshape(-1)


def folded_bias(op: Op, bias: np.ndarray, weight_rows: np.ndarray, zp_in: int) -> np.ndarray:
    """bias - zp_in * sum(w[c]) as int32; `weight_rows` is [channels][taps]."""
    folded = bias - np.int64(zp_in) * weight_rows.astype(np.int64).sum(axis=1)
    if folded.size and (folded.min() < quantization.INT32_MIN or folded.max() > quantization.INT32_MAX):
        refuse(op, "bias with the input zero point folded in overflows int32")
    return folded.astype(np.int32)


@dataclasses.dataclass(frozen=True)
class Requant:
    """C names of the multiplier / shift arrays and whether they are per channel."""

    mult: str
    shift: str
    per_channel: int


def requant_arrays(ctx: EmitContext, op: Op, mult: np.ndarray, shift: np.ndarray) -> Requant:
    """Define the arrays; when every channel has the same pair, one entry is enough."""
    if np.all(mult == mult[0]) and np.all(shift == shift[0]):
        mult, shift = mult[:1], shift[:1]
        per_channel = 0
    else:
        per_channel = 1
    return Requant(ctx.const_array(f"op{op.index}_mult", mult.astype(np.int32), "int32_t"),
                   ctx.const_array(f"op{op.index}_shift", shift.astype(np.int32), "int32_t"),
                   per_channel)


# Blocks of packed weight rows: CONV_2D's core (mcu_matmul_s8.h MCU_MM_RB) and
# FULLY_CONNECTED's (fully_connected.c MCU_FC_RB).
CONV_ROW_BLOCK = 2
FC_ROW_BLOCK = 4


def pack_weight_rows(rows: np.ndarray, block: int) -> np.ndarray:
    """[channels][K] int8 -> the packed layout of engine/kernels/mcu_matmul_s8.h: K padded with
    zeros to a multiple of 4, rows in blocks of `block` (the last block holds the leftover
    rows), each block stored as [K4/4 groups][rows of the block][4 weights]."""
    n, k = rows.shape
    k4 = (k + 3) // 4 * 4
    padded = np.zeros((n, k4), dtype=np.int8)
    padded[:, :k] = rows
    parts = []
    for start in range(0, n, block):
        b = padded[start:start + block]  # [r][k4]
        parts.append(b.reshape(b.shape[0], k4 // 4, 4).transpose(1, 0, 2).reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int8)


# Rows per block of the widened one-pixel weights (mcu_matmul_s8.h MCU_MM_WIDE_RB).
WIDE_ROW_BLOCK = 4
# Inside a group of 4 taps, the order of the DSP column format (x0, x2, x1, x3: SXTB16 halves).
_WIDE_TAP_ORDER = (0, 2, 1, 3)


def pack_wide_weight_rows(rows: np.ndarray, block: int = WIDE_ROW_BLOCK) -> np.ndarray:
    """[channels][K] int8 -> int16 weights for mcu_mm_wide_px1: K padded with zeros to a
    multiple of 4, each group of 4 taps in the order (0, 2, 1, 3), then blocked like
    pack_weight_rows ([K4/4 groups][rows of the block][4])."""
    n, k = rows.shape
    k4 = (k + 3) // 4 * 4
    padded = np.zeros((n, k4), dtype=np.int8)
    padded[:, :k] = rows
    order = (np.arange(k4) // 4 * 4).reshape(-1, 4) + np.array(_WIDE_TAP_ORDER)
    return pack_weight_rows(padded[:, order.reshape(-1)], block).astype(np.int16)


def requant_values(bias: np.ndarray, weight_rows: np.ndarray, mult: np.ndarray,
                   shift: np.ndarray, zp_out: int) -> tuple[np.ndarray, int]:
    """The {bias, multiplier, shift} int32 table per output channel that the matrix kernels
    read ([channels][3]), and fast. fast = 1 when engine.quantization.fast_requant proves the
    one-pass requantisation (mcu_common.h mcu_requant_fast) exactly TFLite's on every channel
    over its accumulator range (bias + sum w * x over int8 inputs); the shift column then
    holds the right shift. Otherwise fast = 0 and the column holds TFLite's shift for the
    generic arithmetic."""
    n = bias.size
    mult = np.broadcast_to(np.asarray(mult, dtype=np.int64), (n,))
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), (n,))
    lo, hi = _accumulator_range(bias, weight_rows)
    proof = quantization.fast_requant(mult, shift, zp_out, lo, hi)
    fast = proof.all_exact
    table = np.stack([bias.astype(np.int64), mult, proof.rs if fast else shift], axis=1)
    return table.astype(np.int32), int(fast)


def requant_table(ctx: EmitContext, op: Op, bias: np.ndarray, weight_rows: np.ndarray,
                  mult: np.ndarray, shift: np.ndarray, zp_out: int) -> tuple[str, int]:
    """Define requant_values' table as op<index>_rq; return (its C name, fast)."""
    table, fast = requant_values(bias, weight_rows, mult, shift, zp_out)
    return ctx.const_array(f"op{op.index}_rq", table, "int32_t"), fast


class ConvRequantMode(enum.IntEnum):
    """CONV_2D's requantisation (engine/kernels/mcu_matmul_s8.h MCU_RQ_*)."""

    GENERIC = 0    # TFLite's MultiplyByQuantizedMultiplier, any table
    FAST = 1       # one SMMLAR + shift, then the activation clamp
    FAST_FULL = 2  # the same, the activation range being all of int8 (one SSAT)


CONV_RQ_STRIDE = 4  # int32 per channel of the CONV_2D table (mcu_matmul_s8.h MCU_RQ_STRIDE)


@dataclasses.dataclass(frozen=True)
class ConvRequant:
    """The CONV_2D requantisation table's C name and the mode the kernel runs it in."""

    table: str
    mode: ConvRequantMode


def _accumulator_range(bias: np.ndarray, weight_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest bias + sum w * x over int8 inputs x, per channel (int64)."""
    w = weight_rows.astype(np.int64)
    lo = bias.astype(np.int64) + np.minimum(w * -128, w * 127).sum(axis=1)
    hi = bias.astype(np.int64) + np.maximum(w * -128, w * 127).sum(axis=1)
    return lo, hi


def conv_requant_table(ctx: EmitContext, op: Op, bias: np.ndarray, weight_rows: np.ndarray,
                       mult: np.ndarray, shift: np.ndarray, zp_out: int, act_min: int,
                       act_max: int) -> ConvRequant:
    """Define CONV_2D's table of CONV_RQ_STRIDE int32 per output channel (conv_requant_values)
    and return its C name with the mode."""
    table, mode = conv_requant_values(bias, weight_rows, mult, shift, zp_out, act_min, act_max)
    return ConvRequant(ctx.const_array(f"op{op.index}_rq", table, "int32_t"), mode)


def conv_requant_values(bias: np.ndarray, weight_rows: np.ndarray, mult: np.ndarray,
                        shift: np.ndarray, zp_out: int, act_min: int,
                        act_max: int) -> tuple[np.ndarray, ConvRequantMode]:
    """CONV_2D's table of CONV_RQ_STRIDE int32 per output channel ([channels][4] int32) and
    the requantisation mode it is exact in.

    Fast modes: {bias, multiplier, rnd = 2^(rs-1) + zp_out * 2^rs, rs} where
    engine.quantization.fast_requant proves the one-pass requantisation (mcu_common.h
    mcu_requant_fast) exact on every channel over its accumulator range.
    TFLite's requantisation is monotonic in the accumulator, so a channel whose smallest and
    largest possible accumulators give the same output c is constant; it becomes
    {0, 0, 2c + 1, 1}: multiplier 0, right shift 1 and zero point c, whose rounding constant
    is 2c + 1 and whose fast result is c for any accumulator (trained models carry such dead
    channels, with huge biases or zero multipliers, that would otherwise force the generic
    arithmetic on the whole layer). Generic mode: {bias, multiplier, TFLite shift, 0}."""
    n = bias.size
    mult = np.broadcast_to(np.asarray(mult, dtype=np.int64), (n,)).copy()
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), (n,)).copy()
    bias64 = bias.astype(np.int64)
    lo, hi = _accumulator_range(bias64, weight_rows)
    out_lo = quantization.requantize(lo, mult, shift, zp_out, act_min, act_max)
    out_hi = quantization.requantize(hi, mult, shift, zp_out, act_min, act_max)
    # monotonic only without TFLite's int32 wrap: no left shift (or a zero multiplier)
    constant = (out_lo == out_hi) & (mult >= 0) & ((shift <= 0) | (mult == 0)) \
        & (lo >= quantization.INT32_MIN) & (hi <= quantization.INT32_MAX)
    f_bias, f_mult, f_shift = bias64.copy(), mult.copy(), shift.copy()
    f_bias[constant], f_mult[constant], f_shift[constant] = 0, 0, -1
    f_zp = np.where(constant, out_lo.astype(np.int64), np.int64(zp_out))
    f_lo, f_hi = _accumulator_range(f_bias, weight_rows)
    proof = quantization.fast_requant(f_mult, f_shift, f_zp, f_lo, f_hi)
    fast = proof.all_exact
    if fast:
        table = np.stack([f_bias, f_mult, proof.rnd, proof.rs], axis=1)
        mode = ConvRequantMode.FAST_FULL if (act_min, act_max) == (-128, 127) \
            else ConvRequantMode.FAST
    else:
        table = np.stack([bias64, mult, shift, np.zeros(n, dtype=np.int64)], axis=1)
        mode = ConvRequantMode.GENERIC
    return table.astype(np.int32), mode


# The register-resident 1x1 kernel (conv2d.c mcu_conv2d_1x1_reg_s8, input depths
# conv2d_spec.REG_1X1_DEPTHS): one pixel's inputs stay widened in K/2 registers while every
# output channel's record streams by (K = 24, 32: in a stack array, each LDRD of it shared by
# two output channels; ~13 instructions per output fewer than the matrix core).


def conv1x1_register_records(weight_rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per output channel the record mcu_conv2d_1x1_reg_s8 reads, K in REG_1X1_DEPTHS:
    {2 bias, K/2 words of doubled weights, multiplier, rnd, rs} as int32.

    The weights are widened at generation time into the halfword pairs SXTB16 splits an input
    word into: (w[4g], w[4g+2]) then (w[4g+1], w[4g+3]) for group g, so the loop has no
    SXTB16 of weights. Bias and weights are doubled, so the accumulator is 2 acc, the SMMLAR
    operand mcu_mm_requant_fast would otherwise compute with a shift (|2 w| <= 256 fits int16,
    and the FAST modes guarantee |acc| < 2^30, so 2 acc fits int32 with acc's sign). `table`
    is conv_requant_values' FAST table {bias, multiplier, rnd, rs}."""
    n, k = weight_rows.shape
    if k not in REG_1X1_DEPTHS:
        raise ValueError(f"register 1x1 records need K in {REG_1X1_DEPTHS}, got {k}")
    w2 = weight_rows.astype(np.int64).reshape(n, k // 4, 2, 2, order="C") * 2
    # w2[c][g][a][b] = 2 w[4g + 2a + b]; pair word (g, b) holds lanes a = 0 (low), 1 (high)
    lo = w2[:, :, 0, :] & 0xFFFF           # [c][g][b]: 2 w[4g + b]
    hi = (w2[:, :, 1, :] & 0xFFFF) << 16   # 2 w[4g + 2 + b]
    words = (lo | hi).reshape(n, k // 2).astype(np.uint32).view(np.int32).astype(np.int64)
    t = table.astype(np.int64)
    rec = np.concatenate([2 * t[:, :1], words, t[:, 1:4]], axis=1)
    return rec.astype(np.int32)


def output_clamp(op: Op, activation: Activation, out: Tensor) -> tuple[int, int]:
    """The int8 output clamp of a fused activation (engine.quantization.activation_range)."""
    assert out.quant is not None
    try:
        return quantization.activation_range(activation.value, float(out.quant.scalar_scale),
                                             scalar_zero_point(out))
    except quantization.UnsupportedQuantization as e:
        refuse(op, f"fused activation {activation.value}: {e}")


def spatial_out(op: Op, size: int, pad_before: int, pad_after: int, k: int, stride: int,
                dilation: int, out_size: int, axis: str) -> None:
    """Check the output size against the explicit pads (the kernels trust it)."""
    if stride < 1 or dilation < 1:
        refuse(op, f"stride {stride} / dilation {dilation} along {axis} must be >= 1")
    effective = (k - 1) * dilation + 1
    expected = (size + pad_before + pad_after - effective) // stride + 1
    if expected != out_size or out_size < 1:
        refuse(op, f"output {axis} {out_size} does not match input {size}, kernel {k}, "
                   f"stride {stride}, dilation {dilation}, pads ({pad_before}, {pad_after})")


def scalar_zero_point(t: Tensor) -> int:
    assert t.quant is not None
    return int(t.quant.zero_point.reshape(-1)[0])


def filter_scales(t: Tensor) -> np.ndarray:
    assert t.quant is not None
    return np.asarray(t.quant.scale, dtype=np.float32).reshape(-1)


def optional_input(op: Op, i: int) -> int:
    return op.inputs[i] if len(op.inputs) > i else -1


__all__ = ["CONV_RQ_STRIDE", "ConvRequant", "ConvRequantMode", "conv_requant_table",
           "conv_requant_values", "conv1x1_register_records", "REG_1X1_DEPTHS",
           "WIDE_ROW_BLOCK", "pack_wide_weight_rows", "CONV_ROW_BLOCK", "FC_ROW_BLOCK",
           "pack_weight_rows", "requant_table", "requant_values", "refuse", "int8_activation",
           "int8_weights", "bias_values", "folded_bias", "Requant",
           "requant_arrays", "output_clamp", "offset_ptr", "spatial_out", "scalar_zero_point",
           "filter_scales", "optional_input"]
