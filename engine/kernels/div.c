/* DIV int8 with broadcasting: TFLite Micro's reference arithmetic (micro/kernels/div.cc,
 * kernels/internal/reference/div.h). Per element: n = x - zp1, d = y - zp2, both signs
 * flipped when d < 0; the reciprocal of d is TFLite's GetReciprocal(d, 31) (a Q0.31 mantissa
 * and a shift), n is shifted left by its headroom (count of leading sign bits) and multiplied
 * by it (rounding doubling high multiply), then by the output multiplier of
 * s1 / (s2 * so), and divided by 2^(recip_shift + headroom - output_shift) with
 * RoundingDivideByPOT; plus the output zero point, clamped to the fused activation range.
 *
 * The generator refuses quantizations where that exponent leaves [0, 31] for a nonzero
 * numerator (engine/quant_ops.py div_shift_problem: TFLM's shift is then undefined and its
 * x86-64 and Arm builds disagree). A zero numerator with an exponent of 32..63 gives 1, as
 * TFLM's RoundingDivideByPOT does on both (its mask (1ll << e) - 1 is then all ones in
 * int32). A divisor at its zero point (d = 0, a precondition TFLM only DCHECKs) is computed
 * as TFLM's release build computes it: the reciprocal of 1 + (-1) with a shift of -1. */
#include "mcu_broadcast.h"
#include "mcu_fixedpoint.h"

/* Quantization parameters, one const int32 array in this order (quant_ops.div_params). */
enum {
    MCU_DIV_IN1_OFFSET, MCU_DIV_IN2_OFFSET, MCU_DIV_OUT_OFFSET, MCU_DIV_MULT, MCU_DIV_SHIFT,
    MCU_DIV_ACT_MIN, MCU_DIV_ACT_MAX, MCU_DIV_NUM_PARAMS
};

/* TFLite CountLeadingSignBits (31 for 0 and -1). */
MCU_INLINE int mcu_div_leading_sign_bits(int32_t x) {
    return mcu_fp_count_leading_zeros((uint32_t)(x < 0 ? ~x : x)) - 1;
}

MCU_INLINE int8_t mcu_div_one(int32_t x, int32_t y, const int32_t *q) {
    int32_t n = x + q[MCU_DIV_IN1_OFFSET];
    int32_t d = y + q[MCU_DIV_IN2_OFFSET];
    int32_t inv, v;
    int recip_shift, headroom, exponent;
    if (d < 0) {
        n = -n;
        d = -d;
    }
    if (d == 0) {
        recip_shift = -1;
        inv = mcu_fp_one_over_one_plus_x(INT32_MIN);
    } else {
        inv = mcu_fp_reciprocal(d, 31, &recip_shift);
    }
    headroom = mcu_div_leading_sign_bits(n);
    exponent = recip_shift + headroom - q[MCU_DIV_SHIFT];
    if (n == 0) {
        v = exponent > 31 ? 1 : 0;
    } else {
        const int32_t unscaled =
            mcu_saturating_rounding_doubling_high_mul((int32_t)((uint32_t)n << headroom), inv);
        v = mcu_rounding_divide_by_pot(
            mcu_saturating_rounding_doubling_high_mul(unscaled, q[MCU_DIV_MULT]), exponent);
    }
    return (int8_t)mcu_clamp_i32(q[MCU_DIV_OUT_OFFSET] + v, q[MCU_DIV_ACT_MIN],
                                 q[MCU_DIV_ACT_MAX]);
}

MCU_KERNEL void mcu_div_s8(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *dims,
                           const int32_t *sa, const int32_t *sb, const int32_t *q) {
    MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, mcu_div_one(x, y, q));
}
