"""Generation-time arithmetic of the non-convolution int8 ops, exactly as TFLite Micro does it.

Two kinds of things live here:

* Parameter computation (multipliers, shifts, radii) with TFLM's evaluation
  order: some kernels compute their real multipliers in double (ADD, MUL, MEAN, PRELU,
  QUANTIZE), others in float32 first (SUB, LEAKY_RELU, HARD_SWISH, RELU); the difference
  shows up in the last bit of a multiplier, so each function says which it follows.
* Look-up tables for the element-wise unary ops. An int8 (or uint8) input has 256 possible
  values and the output of LOGISTIC / TANH / HARD_SWISH / LEAKY_RELU / RELU / RELU6 /
  DEQUANTIZE (and requantising QUANTIZE) depends on nothing else, so the generator runs the
  reference kernel's integer algorithm (gemmlowp fixed point, int16 hard-swish arithmetic)
  once per possible input here, and the C kernel is a table look-up: bit-exact by
  construction and faster than evaluating the polynomial per element. Tables are indexed by
  the input byte read as uint8 (`table[(uint8_t)x]`).

Facts from tensorflow/tflite-micro (micro/kernels/*_common.cc, kernels/internal/reference/
{integer_ops/,}*.h, kernels/internal/quantization_util.cc, gemmlowp fixedpoint.h); the code
is our own. The primitives (QuantizeMultiplier, the fused-activation clamp, gemmlowp's
int32 helpers, the QUANTIZE requantisation table) are `engine/quantization.py`'s. Nothing
here imports TensorFlow or the converter.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np

from engine.quantization import (
    INT32_MAX,
    INT32_MIN,
    UnsupportedQuantization,
    byte_inputs,
    fully_connected_effective_scale,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    requantize_multiplier,
    round_half_away,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)

F32 = np.float32


def _f32(x: float) -> np.float32:
    return np.float32(x)


def _qm(real: float) -> tuple[int, int]:
    try:
        return quantize_multiplier(real)
    except ValueError as e:  # a multiplier TFLite cannot represent
        raise UnsupportedQuantization(str(e)) from None


# ---------------------------------------------------------------------------------------------
# Binary arithmetic parameters


@dataclasses.dataclass(frozen=True)
class AddParams:
    """ADD / SUB: both inputs are brought to a common scale after a left shift of 20 bits."""

    in1_offset: int
    in1_multiplier: int
    in1_shift: int
    in2_offset: int
    in2_multiplier: int
    in2_shift: int
    out_offset: int
    out_multiplier: int
    out_shift: int
    left_shift: int = 20


def _smaller_than_one(real: float) -> tuple[int, int]:
    if not 0.0 < real < 1.0:
        raise UnsupportedQuantization(f"rescale factor {real!r} is outside (0, 1)")
    m, s = _qm(real)
    if s > 0:
        raise UnsupportedQuantization(f"rescale factor {real!r} rounds to a left shift")
    return m, s


def add_params(s1: float, zp1: int, s2: float, zp2: int, so: float, zpo: int) -> AddParams:
    """ADD (add_common.cc): real multipliers in double from float32 scales."""
    s1d, s2d, sod = float(_f32(s1)), float(_f32(s2)), float(_f32(so))
    twice_max = 2.0 * max(s1d, s2d)
    m1, sh1 = _smaller_than_one(s1d / twice_max)
    m2, sh2 = _smaller_than_one(s2d / twice_max)
    mo, sho = _smaller_than_one(twice_max / ((1 << 20) * sod))
    return AddParams(-int(zp1), m1, sh1, -int(zp2), m2, sh2, int(zpo), mo, sho)


def sub_params(s1: float, zp1: int, s2: float, zp2: int, so: float, zpo: int) -> AddParams:
    """SUB: the same parameters as ADD, real multipliers in double from the float32 scales.

    The sub_common.cc revision in public source (2023 revert of tflite-micro PR #1501) divides
    in float32 and only then widens to double; the tflite-micro wheel the project is pinned
    to (built from commit 8f6596d) matches the double form on every int8 input pair we
    checked (tests/test_kernel_add.py), and the float32 form misses it by one LSB on ties
    (225 of 65,536 pairs for scales 0.05 / 0.02 -> 0.06). The kernel arithmetic itself
    (reference/sub.h: offset, << 20, SRDHM + RoundingDivideByPOT per input, subtract, the
    same rescale to the output) is ADD's with a minus sign."""
    return add_params(s1, zp1, s2, zp2, so, zpo)


def squared_difference_params(s1: float, zp1: int, s2: float, zp2: int, so: float,
                              zpo: int) -> AddParams:
    """SQUARED_DIFFERENCE int8 (TFLM squared_difference.cc): ADD's input rescale with a left
    shift of 7 instead of 20 (in double from the float32 scales), and an output multiplier
    (2 max(s1, s2))^2 / (2^14 so) for the squared difference, by QuantizeMultiplier (it may
    exceed one: a left shift)."""
    s1d, s2d = float(_f32(s1)), float(_f32(s2))
    twice_max = 2.0 * max(s1d, s2d)
    m1, sh1 = _smaller_than_one(s1d / twice_max)
    m2, sh2 = _smaller_than_one(s2d / twice_max)
    mo, sho = _qm(twice_max * twice_max / float(_f32((1 << 14) * _f32(so))))
    return AddParams(-int(zp1), m1, sh1, -int(zp2), m2, sh2, int(zpo), mo, sho, left_shift=7)


def squared_difference_reference(p: AddParams, x, y) -> np.ndarray:
    """The int8 result for int8 operands x, y (numpy, broadcasting)."""
    def scaled(v, offset: int, m: int, sh: int) -> np.ndarray:
        shifted = (np.asarray(v, dtype=np.int64) + offset) << p.left_shift
        return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m), -sh)
    d = (scaled(x, p.in1_offset, p.in1_multiplier, p.in1_shift).astype(np.int64)
         - scaled(y, p.in2_offset, p.in2_multiplier, p.in2_shift))
    out = multiply_by_quantized_multiplier(d * d, p.out_multiplier, p.out_shift)
    return _clamp(out.astype(np.int64) + p.out_offset, -128, 127)


def mul_params(s1: float, s2: float, so: float) -> tuple[int, int]:
    """MUL (mul_common.cc): double(s1) * double(s2) / double(so)."""
    return _qm(float(_f32(s1)) * float(_f32(s2)) / float(_f32(so)))


@dataclasses.dataclass(frozen=True)
class DivParams:
    """DIV int8 (div.cc, reference div.h): offsets (minus the input zero points, the output
    zero point) and the output multiplier of s1 / (s2 * so)."""

    in1_offset: int
    in2_offset: int
    out_offset: int
    multiplier: int
    shift: int


def div_params(s1: float, zp1: int, s2: float, zp2: int, so: float, zpo: int) -> DivParams:
    """DIV: the real multiplier s1 / (s2 * so) in double from the float32 scales.

    The public div.cc divides in float32 and only then widens to double; the tflite-micro
    wheel the project is pinned to (built from commit 8f6596d) matches the double form on all
    65,536 int8 input pairs of each quantization we checked (tests/test_kernel_div.py), and
    the float32 form misses it by one LSB on hundreds of them (scales 0.05 / 0.01 -> 0.2:
    839 of 65,536)."""
    m, sh = _qm(float(_f32(s1)) / (float(_f32(s2)) * float(_f32(so))))
    return DivParams(-int(zp1), -int(zp2), int(zpo), m, sh)


def _clz32(v: np.ndarray) -> np.ndarray:
    """Leading zeros of non-negative int32 values as uint32 (32 for 0)."""
    v = np.asarray(v, dtype=np.int64)
    out = np.full(v.shape, 32, dtype=np.int64)
    nz = v != 0
    out[nz] = 31 - np.floor(np.log2(v[nz].astype(np.float64))).astype(np.int64)  # exact below 2^31
    return out


def _clrsb32(v: np.ndarray) -> np.ndarray:
    """CountLeadingSignBits of int32 values (31 for 0 and -1)."""
    v = np.asarray(v, dtype=np.int64)
    return _clz32(np.where(v >= 0, v, ~v)) - 1


def _div_terms(p: DivParams, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(numerator, the int32 before the final RoundingDivideByPOT, its exponent) of TFLM's
    int8 DIV for int8 operands x, y (numpy, broadcasting). The divisor is made positive by
    flipping both signs; its reciprocal is GetReciprocal(d, 31) (d = 0, which TFLM only
    DCHECKs against, gives 1 / (1 + (-1)) from a shifted value of INT32_MIN and a shift of -1,
    as TFLM's release build computes it); the numerator is shifted left by its headroom."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.int64))
    n, d = x + p.in1_offset, y + p.in2_offset
    n, d = np.where(d < 0, -n, n), np.abs(d)
    lz = _clz32(d)
    inv = one_over_one_plus_x_for_x_in_0_1(_w32((d << np.minimum(lz, 31)) - (1 << 31)))
    headroom = _clrsb32(n)
    unscaled = _srdhm(_w32(n << headroom), inv)
    exponent = (31 - lz) + headroom - p.shift
    return n, _srdhm(unscaled, p.multiplier), exponent


def div_reference(p: DivParams, x, y, act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """TFLM's int8 DIV result for int8 operands x, y (numpy, broadcasting), where
    `div_shift_problem` finds none. A zero numerator whose exponent is 32..63 gives 1, not
    0: gemmlowp's RoundingDivideByPOT builds its mask as (1ll << exponent) - 1, all ones in
    int32, and 0 is above its threshold -1 (TFLM's bytes on x86-64 and on Arm alike)."""
    n, v, e = _div_terms(p, x, y)
    r = np.where(n == 0, (e > 31).astype(np.int64), _rdbpot(v, np.clip(e, 0, 31)))
    return _clamp(r + p.out_offset, act_min, act_max)


def div_shift_problem(p: DivParams, x_values, y_values) -> Optional[str]:
    """Why TFLM's int8 DIV is undefined for some pair of these operand values (each an array
    of the int8 values the input can hold), or None. Its last step is RoundingDivideByPOT by
    recip_shift + headroom - output_shift, which TFLM never bounds: outside [0, 31] the C++
    shifts are undefined, and x86-64 and Arm give different bytes (for a zero numerator only
    the 32..63 range is the same on both, see div_reference)."""
    xs = np.unique(np.asarray(x_values, dtype=np.int64))
    ys = np.unique(np.asarray(y_values, dtype=np.int64))
    n, _v, e = _div_terms(p, xs[:, None], ys[None, :])
    bad = np.where(n == 0, (e < 0) | (e > 63), (e < 0) | (e > 31))
    if not bad.any():
        return None
    i, j = (int(k[0]) for k in np.nonzero(bad))
    return (f"TFLM's int8 DIV shifts by {int(e[i, j])} (outside 0..31) for input values "
            f"{int(xs[i])} / {int(ys[j])}: undefined behaviour in its RoundingDivideByPOT, "
            "whose x86-64 and Arm builds then disagree (output scale too large for the "
            "quotient's range)")


@dataclasses.dataclass(frozen=True)
class BatchMatMulParams:
    """BATCH_MATMUL int8 (micro/kernels/batch_matmul.cc, reference batch_matmul.h): minus the
    LHS and RHS zero points (both added to every operand before the product), the output
    zero point, and the output multiplier of s_lhs * s_rhs / s_out."""

    lhs_offset: int
    rhs_offset: int
    out_offset: int
    multiplier: int
    shift: int


# The int32 accumulator of K products (l - zl) * (r - zr), each at most 255 * 255 in size,
# cannot overflow below this depth (TFLM's would: signed overflow, undefined).
BATCH_MATMUL_MAX_DEPTH = INT32_MAX // (255 * 255)


def batch_matmul_params(s_lhs: float, zp_lhs: int, s_rhs: float, zp_rhs: int, s_out: float,
                        zp_out: int) -> BatchMatMulParams:
    """BATCH_MATMUL: TFLM's batch_matmul.cc takes its multiplier from the same
    GetQuantizedConvolutionMultipler as per-tensor FULLY_CONNECTED, so the same order
    (engine.quantization.fully_connected_effective_scale: in double, as the pinned wheel;
    tests/test_kernel_batch_matmul.py checks every int8 operand pair)."""
    m, sh = _qm(fully_connected_effective_scale(s_lhs, s_rhs, s_out))
    return BatchMatMulParams(-int(zp_lhs), -int(zp_rhs), int(zp_out), m, sh)


def batch_matmul_reference(p: BatchMatMulParams, lhs, rhs, adj_x: bool = False,
                           adj_y: bool = False) -> np.ndarray:
    """TFLM's int8 BATCH_MATMUL of int8 arrays (numpy; batch dimensions broadcast): per
    output element sum_k (l + lhs_offset) * (r + rhs_offset) in int32, MultiplyByQuantized
    Multiplier, plus the output zero point, clamped to int8 (the op has no fused
    activation)."""
    a = np.asarray(lhs, dtype=np.int64) + p.lhs_offset
    b = np.asarray(rhs, dtype=np.int64) + p.rhs_offset
    if adj_x:
        a = np.swapaxes(a, -1, -2)
    if adj_y:
        b = np.swapaxes(b, -1, -2)
    acc = np.matmul(a, b)
    out = multiply_by_quantized_multiplier(acc, p.multiplier, p.shift).astype(np.int64)
    return _clamp(out + p.out_offset, -128, 127)


def prelu_params(s_in: float, s_alpha: float, s_out: float) -> tuple[int, int, int, int]:
    """PRELU (prelu_common.cc): (mult_identity, shift_identity, mult_alpha, shift_alpha)."""
    si, sa, so = float(_f32(s_in)), float(_f32(s_alpha)), float(_f32(s_out))
    m1, sh1 = _qm(si / so)
    m2, sh2 = _qm(si * sa / so)
    return m1, sh1, m2, sh2


def ratio_params(s_in: float, s_out: float) -> tuple[int, int]:
    """double(s_in) / double(s_out): MEAN/SUM, QUANTIZE requantisation."""
    try:
        return requantize_multiplier(s_in, s_out)
    except ValueError as e:  # a multiplier TFLite cannot represent
        raise UnsupportedQuantization(str(e)) from None


def mean_params(s_in: float, s_out: float, num_reduced: int) -> tuple[int, int]:
    """MEAN (reference QuantizedMeanOrSum): the 1/n of the mean is folded into the
    multiplier, shifted up by floor(log2 n) bits (at most 32, and keeping shift >= -31) and
    divided with integer truncation."""
    mult, shift = ratio_params(s_in, s_out)
    if num_reduced <= 0:
        raise UnsupportedQuantization("MEAN over an empty axis")
    extra = min(num_reduced.bit_length() - 1, 32, 31 + shift)
    mult = (mult << extra) // num_reduced
    return int(mult), int(shift - extra)


@dataclasses.dataclass(frozen=True)
class SoftmaxParams:
    input_multiplier: int
    input_left_shift: int
    diff_min: int


def softmax_params(s_in: float, beta: float, s_out: float, zp_out: int) -> SoftmaxParams:
    """int8 -> int8 SOFTMAX (softmax_common.cc): the output must be scale 1/256, zero point
    -128 exactly; beta * input_scale is scaled to the 5 integer bits of the exp argument."""
    if zp_out != -128 or float(_f32(s_out)) != 1.0 / 256:
        raise UnsupportedQuantization(
            f"int8 SOFTMAX needs output scale 1/256 and zero point -128 (TFLM requires it), got "
            f"scale {s_out!r} zero point {zp_out}")
    return _softmax_input_scaling(float(_f32(beta)) * float(_f32(s_in)))


def _softmax_input_scaling(beta_scale: float) -> SoftmaxParams:
    """PreprocessSoftmaxScaling with 5 integer bits and CalculateInputRadius (SOFTMAX and
    LOG_SOFTMAX): beta * input_scale in double, scaled by 2^26 and capped at 2^31 - 1, as a
    multiplier above one; differences below -radius underflow the exponential."""
    real = min(beta_scale * float(1 << 26), float((1 << 31) - 1))
    if real <= 1.0:
        raise UnsupportedQuantization(f"beta * input_scale * 2^26 = {real!r} is not above 1")
    mult, shift = _qm(real)
    radius = math.floor(31.0 * float(1 << 26) / float(1 << shift))
    return SoftmaxParams(mult, shift, -radius)


@dataclasses.dataclass(frozen=True)
class LogSoftmaxParams:
    exp: SoftmaxParams  # the input scaling (beta 1), as SOFTMAX's
    reverse_scaling_divisor: int
    reverse_scaling_shift: int  # <= 0: a right shift


LOG_SOFTMAX_OUTPUT = (16.0 / 256, 127)  # the int8 output quantization TFLM requires


def log_softmax_params(s_in: float, s_out: float, zp_out: int) -> LogSoftmaxParams:
    """int8 LOG_SOFTMAX (TFLM log_softmax.cc, PreprocessLogSoftmaxScalingExp): SOFTMAX's input
    scaling with beta 1, plus the reverse scaling 2^(31 - left_shift) / multiplier (as a
    multiplier below one) that maps a Q5.26 value back to input steps."""
    if zp_out != LOG_SOFTMAX_OUTPUT[1] or float(_f32(s_out)) != LOG_SOFTMAX_OUTPUT[0]:
        raise UnsupportedQuantization(
            f"int8 LOG_SOFTMAX needs output scale 16/256 and zero point 127 (TFLM requires it), "
            f"got scale {s_out!r} zero point {zp_out}")
    p = _softmax_input_scaling(float(_f32(s_in)))
    rev, rev_shift = _smaller_than_one(float(1 << (31 - p.input_left_shift)) / p.input_multiplier)
    return LogSoftmaxParams(p, rev, rev_shift)


# ---------------------------------------------------------------------------------------------
# gemmlowp fixed point on int32 raw values, vectorised (int64 carriers, int32 wrap-around)


def _w32(x: np.ndarray | int) -> np.ndarray:
    """Wrap int64 values to int32 as the C++ int32 additions do."""
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) % (1 << 32)) - (1 << 31)


def _srdhm(a, b) -> np.ndarray:
    return saturating_rounding_doubling_high_mul(a, b).astype(np.int64)


def _rdbpot(x, e) -> np.ndarray:
    return rounding_divide_by_pot(x, e).astype(np.int64)


def _sat_shl(x: np.ndarray | int, e: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT with a positive exponent (Rescale to fewer integer
    bits)."""
    thr = (1 << (31 - e)) - 1
    x = np.asarray(x, dtype=np.int64)
    return np.where(x > thr, INT32_MAX, np.where(x < -thr, INT32_MIN, x << e))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    const_term, one_third = 1895147668, 715827883
    x = _w32(a + (1 << 28))
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbpot(x4, 2)
    poly = _rdbpot(_w32(_srdhm(_w32(x4_over_4 + x3), one_third) + x2), 1)
    return _w32(const_term + _srdhm(const_term, _w32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: FixedPoint<int32, integer_bits> -> FixedPoint<0>."""
    if integer_bits > 5:
        raise NotImplementedError("exp clamp for more than 5 integer bits is not needed")
    a = np.asarray(a, dtype=np.int64)
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = _w32((a & (quarter - 1)) - quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(_sat_shl(a_mod, integer_bits))
    remainder = _w32(a_mod - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where((remainder & bit) != 0, _srdhm(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_f2(a: np.ndarray) -> np.ndarray:
    """The shared Newton-Raphson core of one_over_one_plus_x / one_minus_x_over_one_plus_x:
    x ~= 1 / ((1 + a) / 2) in FixedPoint<2>."""
    a = np.asarray(a, dtype=np.int64)
    s = a + INT32_MAX
    half_den = np.where(s >= 0, (s + 1) // 2, -((-(s - 1)) // 2))  # (sum + sign) / 2, truncating
    x = _w32(1515870810 + _srdhm(half_den, -1010580540))
    for _ in range(3):
        hdx = _srdhm(half_den, x)
        one_minus = _w32((1 << 29) - hdx)
        x = _w32(x + _sat_shl(_srdhm(x, one_minus), 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    return _sat_shl(_newton_reciprocal_f2(a), 1)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    return _sat_shl(_w32(_newton_reciprocal_f2(a) - (1 << 29)), 2)


def fixed_logistic(a, integer_bits: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    abs_a = np.where(a > 0, a, _w32(-a))
    pos = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(_w32(-abs_a), integer_bits))
    neg = _w32(INT32_MAX - pos)
    return np.where(a == 0, 1 << 30, np.where(a > 0, pos, neg))


def fixed_tanh(a, integer_bits: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    n = np.where(a < 0, a, _w32(-a))
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(a < 0, _w32(-t), t))


# ---------------------------------------------------------------------------------------------
# Look-up tables of the unary ops


def _clamp(v: np.ndarray, lo: int, hi: int, dtype: str = "int8") -> np.ndarray:
    return np.clip(v, lo, hi).astype(dtype)


def _input_multiplier_q4(scale: float) -> tuple[int, int, int]:
    """LOGISTIC / TANH int8 (logistic_common.cc, tanh.cc): input scaled to Q4.27.
    Returns (multiplier, left_shift, input_range_radius)."""
    real = float(_f32(scale)) * float(1 << 27)
    q, shift = math.frexp(real)
    mult = round_half_away(q * (1 << 31))
    if mult >= (1 << 31):
        # TFLM casts 2^31 to int32 here: the result depends on the platform.
        raise UnsupportedQuantization(f"input scale {scale!r} gives a multiplier of 2^31")
    if shift < 0:
        raise UnsupportedQuantization(f"input scale {scale!r} is too small")
    radius = math.floor(15.0 * float(1 << 27) / float(1 << shift))
    return mult, shift, radius


def logistic_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    if zp_out != -128:
        raise UnsupportedQuantization(f"int8 LOGISTIC needs output zero point -128, got {zp_out}")
    mult, shift, radius = _input_multiplier_q4(s_in)
    x = byte_inputs() - zp_in
    q4 = multiply_by_quantized_multiplier(np.clip(x, -radius + 1, radius - 1), mult, shift)
    y = _rdbpot(fixed_logistic(q4, 4), 23) - 128
    y = np.where(x <= -radius, -128, np.where(x >= radius, 127, y))
    return _clamp(y, -128, 127)


def tanh_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """int8 TANH: TFLM writes round(tanh * 128) without the output zero point (it assumes
    scale 1/128, zero point 0 and does not check)."""
    mult, shift, radius = _input_multiplier_q4(s_in)
    x = byte_inputs() - zp_in
    q4 = multiply_by_quantized_multiplier(np.clip(x, -radius + 1, radius - 1), mult, shift)
    y = _rdbpot(fixed_tanh(q4, 4), 24)
    y = np.where(x <= -radius, -128, np.where(x >= radius, 127, y))
    return _clamp(y, -128, 127)


# int16 gemmlowp helpers for HARD_SWISH (the reference kernel works on int16 values)


def _i16(x) -> np.ndarray:
    return ((np.asarray(x, dtype=np.int64) + (1 << 15)) % (1 << 16)) - (1 << 15)


def _srdhm16(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    s = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.where(s >= 0, s >> 15, -((-s) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, _i16(q))


def _sdhm16(a, b) -> np.ndarray:
    """hard_swish.h SaturatingDoublingHighMul: no rounding nudge, truncating division."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    q = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, _i16(q))


def _rdbpot16(x, e: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT on int16 (the mask is an int16, so exponents of 16 and
    more behave as the C++ template does)."""
    x = np.asarray(x, dtype=np.int64)
    mask = int(_i16((1 << e) - 1))
    remainder = _i16(x & mask)
    threshold = _i16((mask >> 1) + (x < 0))
    return _i16((x >> e) + (remainder > threshold))


def _sat_lshift16(x, amount: int) -> np.ndarray:
    return np.clip(np.asarray(x, dtype=np.int64) * (1 << amount), -32768, 32767)


def _downscale_to_int16(m: int) -> int:
    if m >= INT32_MAX - (1 << 15):
        return 32767
    return (m + (1 << 15)) >> 16


def hard_swish_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """HARD_SWISH (hard_swish_common.cc + reference hard_swish.h), scales in float32."""
    hires = _f32(_f32(1.0 / 128.0) * _f32(s_in))
    out_m32, out_exp = _qm(float(_f32(hires / _f32(s_out))))
    relu_m32, relu_exp = _qm(float(_f32(hires / _f32(3.0 / 32768.0))))
    if out_exp > 0:
        raise UnsupportedQuantization("HARD_SWISH output multiplier above 1 (TFLM refuses it)")
    out_m16, relu_m16 = _downscale_to_int16(out_m32), _downscale_to_int16(relu_m32)
    v = _i16(byte_inputs() - zp_in)
    hires_v = _i16(v * 128)
    pre_out = _srdhm16(hires_v, out_m16)
    r = hires_v
    if relu_exp > 0:
        r = _sat_lshift16(r, relu_exp - 1)
    r = _srdhm16(r, relu_m16)
    if relu_exp > 0:
        r = _sat_lshift16(r, 1)
    if relu_exp < 0:
        r = _rdbpot16(r, -relu_exp)
    r = _i16((r + (1 << 15)) >> 1)
    y = _rdbpot16(_sdhm16(r, pre_out), -out_exp)
    y = _i16(y + zp_out)
    return _clamp(y, -128, 127)


def leaky_relu_table(s_in: float, zp_in: int, s_out: float, zp_out: int,
                     alpha: float) -> np.ndarray:
    """LEAKY_RELU (leaky_relu_common.cc): both ratios evaluated in float32."""
    fi, fo = _f32(s_in), _f32(s_out)
    m_alpha, sh_alpha = _qm(float(_f32(_f32(fi * _f32(alpha)) / fo)))
    m_id, sh_id = _qm(float(_f32(fi / fo)))
    x = byte_inputs() - zp_in
    pos = multiply_by_quantized_multiplier(x, m_id, sh_id).astype(np.int64)
    neg = multiply_by_quantized_multiplier(x, abs(m_alpha), sh_alpha).astype(np.int64)
    neg = -neg if m_alpha < 0 else neg
    return _clamp(zp_out + np.where(x >= 0, pos, neg), -128, 127)


def abs_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """ABS (TFLM elementwise.cc): |x - zp_in|, rescaled by the float32 ratio of the scales
    only when the two float32 scales differ, plus the output zero point."""
    x = np.abs(byte_inputs() - zp_in)
    if _f32(s_in) == _f32(s_out):
        return _clamp(x.astype(np.int64) + zp_out, -128, 127)
    m, sh = _qm(float(_f32(_f32(s_in) / _f32(s_out))))
    return _clamp(multiply_by_quantized_multiplier(x, m, sh).astype(np.int64) + zp_out, -128, 127)


def relu_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """RELU (activations_common.cc CalculateReluOpData): rescale, then clamp below at the
    output zero point."""
    m, sh = _qm(float(_f32(_f32(s_in) / _f32(s_out))))
    x = byte_inputs() - zp_in
    y = zp_out + multiply_by_quantized_multiplier(x, m, sh).astype(np.int64)
    lo = max(-128, zp_out + round_half_away(float(_f32(0.0) / _f32(s_out))))
    return _clamp(y, lo, 127)


def relu6_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """RELU6 in TFLM clamps the input bytes to [zero, six] of the *input* quantization and
    never rescales (it assumes the output quantization equals the input's)."""
    six = int(np.clip(round_half_away(float(_f32(6.0) / _f32(s_in))) + zp_in, -128, 127))
    x = byte_inputs()
    return np.where(x > six, six, np.where(x < zp_in, zp_in, x)).astype(np.int8)


def _inv_sqrt_multiplier(v: int) -> tuple[int, int]:
    """TFLite GetInvSqrtQuantizedMultiplierExp(v, reverse_shift=-1) for v >= 0: a Q0.31
    mantissa and a left shift with 1/sqrt(v) ~= mantissa * 2^shift / 2^31. v is brought into
    [2^27, 2^29) by even shifts, then five Newton-Raphson steps x <- (3x - v x^3) / 2 from
    x = 1 in gemmlowp FixedPoint<int32, 3> (products add integer bits, Rescale back to 3 is a
    saturating left shift), times sqrt(2)/2 in Q0.31. 0 and 1 give (INT32_MAX, 0)."""
    if v <= 1:
        return INT32_MAX, 0
    shift = 11
    while v >= (1 << 29):
        v //= 4
        shift += 1
    pairs = ((32 - int(v).bit_length()) - 1) // 2 - 1
    shift -= pairs
    v <<= 2 * pairs

    def mul(a: int, b: int) -> int:
        return int(saturating_rounding_doubling_high_mul(a, b))

    half_input = int(rounding_divide_by_pot(v >> 1, 1))
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28  # 1.0 with 3 integer bits
    for _ in range(5):
        x3 = int(_sat_shl(mul(mul(x, x), x), 6))  # 9 integer bits -> 3
        x = int(_sat_shl(int(_w32(mul(half_three, x) - mul(half_input, x3))), 3))  # 6 -> 3
    x = mul(x, 1518500250)  # * sqrt(2)/2 (Q0.31): still 3 integer bits
    if shift < 0:
        x = int(_w32(x << -shift))
        shift = 0
    return x, -shift


def rsqrt_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """RSQRT int8 (TFLM elementwise.cc): for v = x - zp_in > 0, 1/sqrt(v) as a quantized
    multiplier (_inv_sqrt_multiplier) applied to 1 with 20 extra bits, then rescaled by
    QuantizeMultiplier(1 / double(sqrtf(s_in) * s_out)) with 20 bits less, plus zp_out,
    clamped. v == 0 gives 127. v < 0 is outside the domain: TFLM's invoke fails on such an
    input; the table holds 127 there too (it cannot fail)."""
    k_shift = 20
    m, sh = _qm(1.0 / float(F32(np.sqrt(_f32(s_in))) * _f32(s_out)))
    out = np.full(256, 127, dtype=np.int8)
    for i, q in enumerate(byte_inputs()):
        v = int(q) - zp_in
        if v <= 0:
            continue
        inv, inv_shift = _inv_sqrt_multiplier(v)
        data = int(multiply_by_quantized_multiplier(1, inv, inv_shift + k_shift))
        y = int(multiply_by_quantized_multiplier(data, m, sh - k_shift)) + zp_out
        out[i] = min(max(y, -128), 127)
    return out


def dequantize_table(in_dtype: str, s_in: float, zp_in: int) -> np.ndarray:
    """DEQUANTIZE to float32: static_cast<float>(double(scale) * (q - zero_point))."""
    x = byte_inputs(in_dtype) - zp_in
    return (float(_f32(s_in)) * x.astype(np.float64)).astype(np.float32)


def softmax_exp_table(params: SoftmaxParams) -> np.ndarray:
    """exp(beta * scale * diff) in gemmlowp Q0.31 for diff = 0, -1, ..., max(diff_min, -255):
    entry k is for diff = -k. Differences below diff_min contribute nothing."""
    n = min(255, -params.diff_min) + 1
    diffs = -np.arange(n, dtype=np.int64)
    scaled = multiply_by_quantized_multiplier(diffs, params.input_multiplier,
                                              params.input_left_shift)
    return exp_on_negative_values(scaled, 5).astype(np.int32)


UnaryTableFn = Callable[..., np.ndarray]


# ---------------------------------------------------------------------------------------------
# ADD / SUB same-shape fast form (engine/kernels/add.c mcu_add_fast_s8)


@dataclasses.dataclass(frozen=True)
class AddFastParams:
    """The one-rounding-pass form of ADD / SUB. An input with a rounding step (rs >= 1):
    t = (x + offset) * 2^21, s = floor((t * mult + 2^31) / 2^32 + rnd - [t < 0]) >> rs (one
    SMMLAR and one shift), which is TFLite's RoundingDivideByPOT(SRDHM(x' * 2^20, mult), rs)
    for mult >= 0: SRDHM of x' * 2^20 is exactly floor((2 * x' * 2^20 * mult + 2^31) / 2^32),
    and the rounding step's sign term [y < 0] equals [t < 0] except where y = 0, where both
    give 0 for rs >= 1. An input without one (rs = 0, which TFLite only produces for the
    rescale factor 1/2, mult = 2^30) is the identity SRDHM(x' * 2^20, 2^30) = x' * 2^19: the
    kernel then adds 2s = x * 2^20 + offset_t directly (offset_t = offset * 2^20; otherwise
    offset * 2^21). The output stage is the same form on raw = s1 +- s2, with rnd folding in
    the output zero point."""

    in1_offset_t: int
    in1_multiplier: int
    in1_rnd: int
    in1_rs: int
    in2_offset_t: int
    in2_multiplier: int
    in2_rnd: int
    in2_rs: int
    out_multiplier: int
    out_rnd: int
    out_rs: int
    act_min: int
    act_max: int

    @property
    def variant(self) -> int:
        """Kernel instantiation: bit 0/1 input 1/2 has a rounding step (else it is the
        identity), bit 2 the activation range is all of int8."""
        full = self.act_min <= -128 and self.act_max >= 127
        return (self.in1_rs > 0) | ((self.in2_rs > 0) << 1) | (full << 2)

    def as_list(self) -> list[int]:
        return [self.in1_offset_t, self.in1_multiplier, self.in1_rnd, self.in1_rs,
                self.in2_offset_t, self.in2_multiplier, self.in2_rnd, self.in2_rs,
                self.out_multiplier, self.out_rnd, self.out_rs, self.act_min, self.act_max]


ADD_FAST_T_SHIFT = 21
# |floor(2 * raw * M / 2^32)| stays below 2^29 for |raw| < 2^29 and M < 2^31.
_ADD_FAST_SMMLAR_MARGIN = 1 << 29


def add_fast_params(p: AddParams, act_min: int, act_max: int) -> Optional[AddFastParams]:
    """The fast form's constants, or None when one of its preconditions fails (the generic
    kernel is then used): non-negative multipliers, right shifts only, every SMMLAR sum and
    rounding constant inside int32."""
    if p.left_shift != 20:
        return None
    ins = []
    for off, mult, shift in ((p.in1_offset, p.in1_multiplier, p.in1_shift),
                             (p.in2_offset, p.in2_multiplier, p.in2_shift)):
        rs = -shift
        if mult < 0 or not 0 <= rs <= 30 or not -255 <= off <= 255:
            return None
        if rs == 0:
            if mult != 1 << 30:  # not the identity: no exact one-instruction form here
                return None
            ins.append((off << (ADD_FAST_T_SHIFT - 1), mult, 0, 0))
        else:
            ins.append((off << ADD_FAST_T_SHIFT, mult, 1 << (rs - 1), rs))
    ro = -p.out_shift
    if p.out_multiplier < 0 or not 1 <= ro <= 30:
        return None
    rnd_o = (1 << (ro - 1)) + p.out_offset * (1 << ro)
    if abs(rnd_o) + _ADD_FAST_SMMLAR_MARGIN + 1 >= 1 << 31:
        return None
    return AddFastParams(*ins[0], *ins[1], p.out_multiplier, rnd_o, ro, int(act_min),
                         int(act_max))


def add_reference(p: AddParams, x, y, sign: int, act_min: int, act_max: int) -> np.ndarray:
    """TFLite's int8 ADD (sign +1) / SUB (sign -1) on int8 arrays x, y."""
    def scale(v, off, mult, shift):
        shifted = (np.asarray(v, np.int64) + off) * (1 << p.left_shift)
        return _rdbpot(_srdhm(shifted, mult), -shift)
    sx = scale(x, p.in1_offset, p.in1_multiplier, p.in1_shift)
    sy = scale(y, p.in2_offset, p.in2_multiplier, p.in2_shift)
    out = _rdbpot(_srdhm(sx + sign * sy, p.out_multiplier), -p.out_shift) + p.out_offset
    return np.clip(out, act_min, act_max)


def add_fast_eval(f: AddFastParams, x, y, sign: int) -> np.ndarray:
    """The fast form exactly as add.c computes it (int64 carriers; no sum leaves int32)."""
    def smmlar(a, b, c):
        return ((a * b + (1 << 31)) >> 32) + c

    def twice_scaled(v, off_t, mult, rnd, rs):
        v = np.asarray(v, np.int64)
        if rs == 0:
            return (v << (ADD_FAST_T_SHIFT - 1)) + off_t
        t = (v << ADD_FAST_T_SHIFT) + off_t
        return (smmlar(t, mult, rnd + (t >> 31)) >> rs) * 2
    sx2 = twice_scaled(x, f.in1_offset_t, f.in1_multiplier, f.in1_rnd, f.in1_rs)
    sy2 = twice_scaled(y, f.in2_offset_t, f.in2_multiplier, f.in2_rnd, f.in2_rs)
    raw2 = sx2 + sign * sy2
    out = smmlar(raw2, f.out_multiplier, f.out_rnd + (raw2 >> 31)) >> f.out_rs
    return np.clip(out, f.act_min, f.act_max)
