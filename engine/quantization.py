"""TFLite's quantization arithmetic, in one place.

Everything that turns float scales into the integer multipliers the kernels use, computed
with the same float/double evaluation order as TensorFlow Lite Micro, plus numpy reference
versions of the integer helpers of `engine/kernels/mcu_common.h` (for tests).

Facts taken from TFLM (tensorflow/tflite-micro, tensorflow/lite/kernels/internal/
quantization_util.cc, kernel_util.cc, micro/kernels/fully_connected_common.cc):

- QuantizeMultiplier: frexp of the double multiplier, the mantissa times 2^31 rounded half
  away from zero; a mantissa that rounds to 2^31 is halved with the exponent incremented; an
  exponent below -31 flushes to (0, 0). TFLITE_SINGLE_ROUNDING is off by default, so no clamp
  of the shift at 30.
- CONV_2D / DEPTHWISE_CONV_2D (PopulateConvolutionQuantizationParams) and per-channel
  FULLY_CONNECTED: double(input_scale) * double(filter_scale[c]) / double(output_scale), each
  scale a float32; a single filter scale is broadcast to every channel.
- Per-tensor FULLY_CONNECTED (GetQuantizedConvolutionMultipler): the product
  input_scale * filter_scale is taken in float32 first, then widened and divided in double.
- CalculateActivationRangeQuantized: each clamp bound is zero_point + round(f / scale), the
  division in float32, then clamped into the output type's range.
- QUANTIZE between 8-bit types (quantize_common.cc, reference requantize.h): multiplier of
  double(input_scale) / double(output_scale), MultiplyByQuantizedMultiplier, clamp.

The per-op parameter computations built on these primitives live in `engine/quant_ops.py`;
the converter's passes and code generator import both (engine never imports the converter).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence, Union

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

ArrayLike = Union[int, np.ndarray, Sequence[int]]


class UnsupportedQuantization(ValueError):
    """Quantization parameters TFLM itself rejects (or evaluates with undefined behaviour);
    the emitters turn this into a refusal naming the op."""


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound: ties away from zero (Python's round() rounds ties to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: (multiplier, shift) with real ~= multiplier * 2^(shift-31).

    shift > 0 is a left shift. Negative multipliers are allowed (as TFLite allows them).
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    q_fixed = round_half_away(mantissa * (1 << 31))  # exact: a double times a power of 2
    if q_fixed > (1 << 31):
        raise ValueError(f"multiplier {real!r} rounds beyond 2^31")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if q_fixed > INT32_MAX:
        raise ValueError(f"multiplier {real!r} does not fit int32")
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def conv_effective_scales(input_scale: float, filter_scales: Sequence[float] | np.ndarray,
                          output_scale: float, num_channels: int) -> list[float]:
    """The per-channel real multipliers of CONV_2D / DEPTHWISE_CONV_2D (and per-channel
    FULLY_CONNECTED), in TFLM's evaluation order. A single filter scale is broadcast."""
    fs = np.asarray(filter_scales, dtype=np.float32).reshape(-1)
    if fs.size not in (1, num_channels):
        raise ValueError(f"{fs.size} filter scales for {num_channels} channels")
    in_s = float(np.float32(input_scale))
    out_s = float(np.float32(output_scale))
    return [in_s * float(fs[c if fs.size > 1 else 0]) / out_s for c in range(num_channels)]


def conv_multipliers(input_scale: float, filter_scales: Sequence[float] | np.ndarray,
                     output_scale: float, num_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier int32[C], shift int32[C]) as PopulateConvolutionQuantizationParams
    computes them."""
    pairs = [quantize_multiplier(r) for r in
             conv_effective_scales(input_scale, filter_scales, output_scale, num_channels)]
    mult = np.array([m for m, _ in pairs], dtype=np.int32)
    shift = np.array([s for _, s in pairs], dtype=np.int32)
    return mult, shift


def fully_connected_effective_scale(input_scale: float, filter_scale: float,
                                    output_scale: float) -> float:
    """Per-tensor FULLY_CONNECTED: the scales widened to double, multiplied, divided, as the
    pinned tflite-micro wheel computes it. (TFLM's source of August 2026 reads as a float32
    product, `static_cast<double>(input->params.scale * filter->params.scale)`, but the wheel
    follows the double order wherever the two give different multipliers:
    tests/test_kernel_fully_connected.py test_multiplier_order_is_the_wheels.)"""
    return float(np.float32(input_scale)) * float(np.float32(filter_scale)) / float(
        np.float32(output_scale))


def fully_connected_multiplier(input_scale: float, filter_scale: float,
                               output_scale: float) -> tuple[int, int]:
    return quantize_multiplier(
        fully_connected_effective_scale(input_scale, filter_scale, output_scale))


# ---------------------------------------------------------------------------------------------
# Fused activation clamp (kernel_util.cc CalculateActivationRangeQuantized)

# Real-valued bounds of each fused activation that is an output clamp (None: the type's limit).
_ACTIVATION_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "NONE": (None, None),
    "RELU": (0.0, None),
    "RELU6": (0.0, 6.0),
    "RELU_N1_TO_1": (-1.0, 1.0),
}


def activation_range(activation: str, scale: float, zero_point: int,
                     qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """(act_min, act_max) of a fused activation named as TFLite names it ("RELU6", ...).

    Each bound is q(f) = zero_point + round(f / scale), f / scale a float32 division rounded
    half away from zero, then clamped into [qmin, qmax]: RELU gives [max(qmin, q(0)), qmax],
    RELU6 [max(qmin, q(0)), min(qmax, q(6))], RELU_N1_TO_1 [max(qmin, q(-1)), min(qmax, q(1))],
    NONE [qmin, qmax]. Other activations (TANH, SIGN_BIT) are not clamps and raise
    UnsupportedQuantization, as does a bound whose round(f / scale) leaves int32 (TFLM casts
    it to int32: undefined behaviour).
    """
    if activation not in _ACTIVATION_BOUNDS:
        raise UnsupportedQuantization(f"fused activation {activation} is not an output clamp")
    lo_f, hi_f = _ACTIVATION_BOUNDS[activation]

    def q(f: float) -> int:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            t = float(np.float32(f) / np.float32(scale))
        if not (math.isfinite(t) and INT32_MIN <= round_half_away(t) <= INT32_MAX):
            raise UnsupportedQuantization(
                f"activation bound {f} overflows int32 at scale {float(np.float32(scale))}")
        return int(zero_point) + round_half_away(t)

    lo = qmin if lo_f is None else max(qmin, q(lo_f))
    hi = qmax if hi_f is None else min(qmax, q(hi_f))
    return lo, hi


# ---------------------------------------------------------------------------------------------
# numpy references of the integer helpers (mcu_common.h), vectorised


def saturating_rounding_doubling_high_mul(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values."""
    a64 = np.asarray(a, dtype=np.int64)
    b64 = np.asarray(b, dtype=np.int64)
    ab = a64 * b64
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    s = ab + nudge
    # C++ integer division truncates toward zero.
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    overflow = (a64 == INT32_MIN) & (b64 == INT32_MIN)
    return np.where(overflow, INT32_MAX, q).astype(np.int32)


def rounding_divide_by_pot(x: ArrayLike, exponent: ArrayLike) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT, exponent in [0, 31]."""
    x64 = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x64 & mask
    threshold = (mask >> 1) + (x64 < 0)
    return ((x64 >> e) + (remainder > threshold)).astype(np.int32)


def multiply_by_quantized_multiplier(x: ArrayLike, multiplier: ArrayLike,
                                     shift: ArrayLike) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (double rounding); the left shift wraps in int32."""
    x64 = np.asarray(x, dtype=np.int64)
    sh = np.asarray(shift, dtype=np.int64)
    left = np.maximum(sh, 0)
    right = np.maximum(-sh, 0)
    shifted = np.asarray((x64 << left) & 0xFFFFFFFF, dtype=np.uint32).view(np.int32)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier),
                                  right)


def multiply_by_quantized_multiplier_single_rounding(x: ArrayLike, multiplier: int,
                                                     shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier of TFLITE_SINGLE_ROUNDING builds (not TFLM's default):
    one rounding of x * multiplier / 2^(31 - shift). Such builds also saturate a shift above
    30 in QuantizeMultiplier; that is applied here so `quantize_multiplier` stays the default
    build's. Returns int64 (the callers' inputs are small; no int32 wrap is modelled)."""
    if shift > 30:
        shift, multiplier = 30, INT32_MAX
    total = 31 - shift
    return (np.asarray(x, dtype=np.int64) * multiplier + (1 << (total - 1))) >> total


def requantize(acc: ArrayLike, multiplier: ArrayLike, shift: ArrayLike, out_zp: int,
               act_min: int = -128, act_max: int = 127) -> np.ndarray:
    """int32 accumulator -> int8 output, as every conv-like TFLite kernel ends."""
    v = multiply_by_quantized_multiplier(acc, multiplier, shift).astype(np.int64) + out_zp
    return np.clip(v, act_min, act_max).astype(np.int8)


# ---------------------------------------------------------------------------------------------
# The one-pass ("fast") requantisation of the kernels (mcu_common.h mcu_requant_fast): its
# rounding constant, its exactness proof, and a numpy model of what the C computes

# |acc| must stay within this (inclusive below, exclusive above) for 2 * acc to fit int32.
FAST_REQUANT_ACC_LIMIT = 1 << 30


def fast_requant_rnd(rs: ArrayLike, out_zp: ArrayLike) -> np.ndarray:
    """The fast form's rounding constant 2^(rs-1) + out_zp * 2^rs (int64, not wrapped), for a
    right shift rs >= 1; mcu_common.h mcu_requant_rnd computes the same modulo 2^32."""
    rs64 = np.asarray(rs, dtype=np.int64)
    return (np.int64(1) << (rs64 - 1)) + np.asarray(out_zp, dtype=np.int64) * (np.int64(1) << rs64)


@dataclasses.dataclass(frozen=True)
class FastRequant:
    """`fast_requant`'s verdict per channel: where mcu_requant_fast is exact, and the two
    constants the C takes there (`rs`, `rnd`; rnd is 0 where rs is not in [1, 31])."""

    exact: np.ndarray  # bool[C]
    rs: np.ndarray     # int64[C]: the right shift, -shift
    rnd: np.ndarray    # int64[C]: fast_requant_rnd(rs, zp), inside int32 wherever exact

    @property
    def all_exact(self) -> bool:
        """True when there is at least one channel and the fast form is exact on every one
        (a kernel takes one requantisation mode for a whole layer)."""
        return bool(self.exact.size) and bool(np.all(self.exact))


def fast_requant(multiplier: ArrayLike, shift: ArrayLike, out_zp: ArrayLike, acc_lo: ArrayLike,
                 acc_hi: ArrayLike) -> FastRequant:
    """Decide, per channel, whether the kernels' one-pass requantisation

        mcu_requant_fast(2 acc, acc, M, rnd, rs) = (SMMLAR(2 acc, M, rnd - [acc < 0])) >> rs
                   (or its SMMULR spelling: x = SMMULR(2 acc, M), (x + rnd - [x < 0]) >> rs)

    with rs = -shift and rnd = fast_requant_rnd(rs, out_zp), equals TFLite's
    MultiplyByQuantizedMultiplier(acc, M, shift) + out_zp for every int32 accumulator
    acc_lo <= acc <= acc_hi. All arguments broadcast to one shape (per channel); out_zp may be
    a per-channel array (CONV_2D folds a constant channel's value into it).

    The proof. SMMLAR(a, b, c) is floor((a * b + 2^31) / 2^32) + c modulo 2^32 (SMMULR the
    same with c = 0); x = SaturatingRoundingDoublingHighMul(acc, M).

    1. |2 acc| fits int32 (acc in [-2^30, 2^30)): the doubled operand is exact, and acc is
       never INT32_MIN, so SRDHM's one saturating case cannot occur. SRDHM adds the nudge
       2^30 (product >= 0) or 1 - 2^30 (product < 0) and divides by 2^31 truncating; for a
       negative product p, trunc((p + 1 - 2^30) / 2^31) = ceil((p + 1 - 2^30) / 2^31) =
       floor((p + 2^30) / 2^31), which is the non-negative case's formula, so
       x = floor((acc M + 2^30) / 2^31) = floor((2 acc M + 2^31) / 2^32) for either sign:
       the high word SMMLAR / SMMULR round from 2 acc and M.
    2. rs in [1, 31]: TFLite then computes RoundingDivideByPOT(x, rs) (a right shift; shift
       >= 0 is a left shift before the multiply, with no one-pass form). With x = q 2^rs + r,
       0 <= r < 2^rs, gemmlowp's result is q + [r > 2^(rs-1) - 1 + [x < 0]], which is
       floor((x + 2^(rs-1) - [x < 0]) / 2^rs); the zero point joins as zp 2^rs inside the
       floor, so the result plus zp is floor((x + rnd - [x < 0]) / 2^rs): one arithmetic
       shift of x + rnd - [x < 0].
    3. 0 <= M <= INT32_MAX: acc >= 0 gives x >= 0, acc < 0 gives 2 acc M <= 0 and x <= 0, so
       [acc < 0] differs from [x < 0] only where x = 0, and there floor((rnd - 1) / 2^rs) =
       floor(rnd / 2^rs) = zp (rs >= 1: 0 <= 2^(rs-1) - 1 < 2^(rs-1) < 2^rs). SMMLAR may
       therefore add rnd - [acc < 0] (known before the multiply) to the high word; the
       integer sum moves inside the floor exactly. (The SMMULR spelling uses x's own sign and
       needs no such step.) A negative M breaks this: acc > 0 with x = -1 rounds differently.
    4. The sum is taken modulo 2^32, so the shift sees the true x + rnd - [acc < 0] only if it
       lies in int32 for every acc in range; it is non-decreasing in acc (x is, for M >= 0,
       and so is -[acc < 0]), so checking acc_lo and acc_hi covers the range. rnd itself, and
       rnd - 1 (the C's int32 rnd + (acc >> 31)), must lie in int32 too.

    No other condition is needed; each one is necessary for some accumulator (tests/
    test_quantization.py builds counterexamples). Callers pass the tightest accumulator
    bounds they know (bias plus the extreme sums of w * x over int8 inputs); kernels that
    choose at run time (depthwise_conv2d.c mcu_dw_rqs_usable: rs <= 22, |acc| < 2^29,
    int8 zero points) check a sufficient subset."""
    m, sh, zp, lo, hi = np.broadcast_arrays(*(np.asarray(v, dtype=np.int64) for v in
                                              (multiplier, shift, out_zp, acc_lo, acc_hi)))
    rs = -sh
    shift_ok = (rs >= 1) & (rs <= 31)
    rnd = np.where(shift_ok,
                   fast_requant_rnd(np.where(shift_ok, rs, 1), np.where(shift_ok, zp, 0)), 0)
    ok = (shift_ok & (m >= 0) & (m <= INT32_MAX)
          & (lo >= -FAST_REQUANT_ACC_LIMIT) & (hi < FAST_REQUANT_ACC_LIMIT)
          & (rnd - 1 >= INT32_MIN) & (rnd <= INT32_MAX))
    # step 4 at both ends (inputs zeroed where already refused, so the int32 helpers apply)
    m_ok, lo_ok, hi_ok = (np.where(ok, v, 0) for v in (m, lo, hi))
    x_lo = saturating_rounding_doubling_high_mul(lo_ok, m_ok).astype(np.int64)
    x_hi = saturating_rounding_doubling_high_mul(hi_ok, m_ok).astype(np.int64)
    sum_lo = x_lo + rnd - (lo_ok < 0)
    sum_hi = x_hi + rnd - (hi_ok < 0)
    ok &= (sum_lo >= INT32_MIN) & (sum_hi <= INT32_MAX)
    return FastRequant(exact=np.asarray(ok, dtype=bool), rs=rs.astype(np.int64),
                       rnd=rnd.astype(np.int64))


def _wrap32(x: ArrayLike) -> np.ndarray:
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) % (1 << 32)) - (1 << 31)


def fast_requant_eval(acc2: ArrayLike, acc: ArrayLike, multiplier: ArrayLike, rnd: ArrayLike,
                      rs: ArrayLike) -> np.ndarray:
    """mcu_requant_fast (MCU_RQF_FUSED) exactly as the DSP build computes it, int32 wrap
    included: SMMLAR(acc2, M, rnd + (acc >> 31)) >> rs, acc2 the (int32) doubled accumulator
    and acc a value with the accumulator's sign. Returns int64 (the value before any clamp);
    equals TFLite's requantisation plus zp only where `fast_requant` says so."""
    a2 = _wrap32(acc2)
    c = _wrap32(np.asarray(rnd, dtype=np.int64) + (np.asarray(acc, dtype=np.int64) >> 31))
    high = (a2 * np.asarray(multiplier, dtype=np.int64) + (1 << 31)) >> 32
    return _wrap32(high + c) >> np.asarray(rs, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# 8-bit requantisation (QUANTIZE int8/uint8 -> int8/uint8) as a 256-entry table


def byte_inputs(dtype: str = "int8") -> np.ndarray:
    """The 256 possible values of an 8-bit type, ordered by their byte (table index) value:
    entry b is the value whose byte is b, so a C kernel reads `table[(uint8_t)x]`."""
    return np.arange(256, dtype=np.uint8).view(np.dtype(dtype)).astype(np.int64)


def requantize_multiplier(input_scale: float, output_scale: float) -> tuple[int, int]:
    """double(input_scale) / double(output_scale), each a float32, quantized: QUANTIZE's
    requantisation and MEAN / SUM's rescale."""
    return quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))


def requantize_table(in_dtype: str, s_in: float, zp_in: int, out_dtype: str, s_out: float,
                     zp_out: int, single_rounding: bool = False) -> np.ndarray:
    """QUANTIZE between 8-bit types for every input byte (indexed as `byte_inputs`), in the
    output dtype. `single_rounding` gives a TFLITE_SINGLE_ROUNDING build's result (the
    converter proves rewrites under both builds)."""
    m, sh = requantize_multiplier(s_in, s_out)
    x = byte_inputs(in_dtype) - int(zp_in)
    if single_rounding:
        scaled = multiply_by_quantized_multiplier_single_rounding(x, m, sh)
    else:
        scaled = multiply_by_quantized_multiplier(x, m, sh).astype(np.int64)
    info = np.iinfo(np.dtype(out_dtype))
    return np.clip(scaled + int(zp_out), int(info.min), int(info.max)).astype(out_dtype)
