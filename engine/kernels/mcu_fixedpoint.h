/* gemmlowp-style fixed-point helpers used by SOFTMAX (TFLite's int8 reference softmax is
 * written on gemmlowp::FixedPoint). Values are raw int32 with an implied number of integer
 * bits; additions wrap like the C++ int32 ones. Same arithmetic as the numpy version in
 * engine/quant_ops.py. */
#ifndef MCU_FIXEDPOINT_H
#define MCU_FIXEDPOINT_H

#include "mcu_common.h"

MCU_INLINE int32_t mcu_fp_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
MCU_INLINE int32_t mcu_fp_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* SaturatingRoundingMultiplyByPOT with a positive exponent: a saturating left shift. */
MCU_INLINE int32_t mcu_fp_saturating_shl(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* RoundingHalfSum: (a + b) / 2 rounded half away from zero. */
MCU_INLINE int32_t mcu_fp_rounding_half_sum(int32_t a, int32_t b) {
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a) for a in [0, 1) as Q0.31, by three
 * Newton-Raphson steps from the 48/17 - 32/17 x initial guess, in Q2.29. */
MCU_INLINE int32_t mcu_fp_one_over_one_plus_x(int32_t a) {
    const int32_t half_denominator = mcu_fp_rounding_half_sum(a, INT32_MAX);
    int32_t x = mcu_fp_add(1515870810,
                           mcu_saturating_rounding_doubling_high_mul(half_denominator, -1010580540));
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t hdx = mcu_saturating_rounding_doubling_high_mul(half_denominator, x);
        const int32_t one_minus = mcu_fp_sub((int32_t)1 << 29, hdx);
        x = mcu_fp_add(x, mcu_fp_saturating_shl(
                              mcu_saturating_rounding_doubling_high_mul(x, one_minus), 2));
    }
    return mcu_fp_saturating_shl(x, 1);
}

MCU_INLINE int mcu_fp_count_leading_zeros(uint32_t x) {
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* TFLite GetReciprocal: for x with x_integer_bits integer bits, returns 1/x as a Q0.31
 * mantissa and the number of bits it must still be shifted by. */
MCU_INLINE int32_t mcu_fp_reciprocal(int32_t x, int x_integer_bits, int *num_bits_over_unit) {
    const int headroom_plus_one = mcu_fp_count_leading_zeros((uint32_t)x);
    const int32_t shifted_minus_one =
        (int32_t)(((uint32_t)x << headroom_plus_one) - ((uint32_t)1 << 31));
    *num_bits_over_unit = x_integer_bits - headroom_plus_one;
    return mcu_fp_one_over_one_plus_x(shifted_minus_one);
}

#endif /* MCU_FIXEDPOINT_H */
