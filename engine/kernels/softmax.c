/* SOFTMAX int8 -> int8 over the last dimension (TFLite's reference int8 softmax, as TFLM
 * runs it): differences to the row maximum are scaled by beta * input_scale into Q5.26 and
 * exponentiated with gemmlowp's exp_on_negative_values; the sum is accumulated in Q12.19,
 * inverted with GetReciprocal and every exponential scaled by it to the output's 1/256 steps,
 * with zero point -128. Differences below diff_min contribute nothing and give -128.
 *
 * The exponentials depend only on the difference (0 .. -255), so the generator tabulates them
 * (exp_table[k] = exp for difference -k, for k up to -diff_min, at most 255) with the same
 * arithmetic (engine/quant_ops.py). */
#include "mcu_fixedpoint.h"

#define MCU_SOFTMAX_ACCUM_INTEGER_BITS 12

MCU_KERNEL void mcu_softmax_s8(const int8_t *in, int8_t *out, int32_t rows, int32_t depth,
                               const int32_t *exp_table, int32_t table_len) {
    int32_t r, c;
    for (r = 0; r < rows; ++r) {
        const int8_t *x = in + (size_t)r * depth;
        int8_t *y = out + (size_t)r * depth;
        int32_t max = -128, sum = 0, scale;
        int bits_over_unit, exponent;
        for (c = 0; c < depth; ++c) {
            max = x[c] > max ? x[c] : max;
        }
        for (c = 0; c < depth; ++c) {
            const int32_t k = max - x[c];
            if (k < table_len) {
                sum = mcu_fp_add(sum, mcu_rounding_divide_by_pot(exp_table[k],
                                                                 MCU_SOFTMAX_ACCUM_INTEGER_BITS));
            }
        }
        scale = mcu_fp_reciprocal(sum, MCU_SOFTMAX_ACCUM_INTEGER_BITS, &bits_over_unit);
        exponent = bits_over_unit + 31 - 8;
        for (c = 0; c < depth; ++c) {
            const int32_t k = max - x[c];
            if (k < table_len) {
                const int32_t v = mcu_rounding_divide_by_pot(
                    mcu_saturating_rounding_doubling_high_mul(scale, exp_table[k]), exponent);
                y[c] = mcu_clamp_s8(v - 128);
            } else {
                y[c] = -128;
            }
        }
    }
}
