/* LOG_SOFTMAX int8 -> int8 over the last dimension (TFLite's reference int8 LogSoftmax, as
 * TFLM runs it); output scale 16/256, zero point 127.
 *
 * Per row: the differences to the row maximum are scaled into Q5.26 (the multiplier and left
 * shift of SOFTMAX's input scaling with beta 1) and exponentiated; the exponentials of the
 * differences >= diff_min are summed in Q12.19 (each rounded down by 2^12, wrapping adds).
 * log(sum) is taken in Q5.26 (mcu_log_softmax_log below). Each difference above
 * max(diff_min - 1, (log - 2^31) rescaled back to input steps by the reverse scaling
 * multiplier) gives 127 + (scaled difference - log) / 2^22 rounded, clamped to int8; the
 * others give -128.
 *
 * The exponentials depend only on the difference, so the generator tabulates them as for
 * SOFTMAX (engine/quant_ops.py softmax_exp_table: entry k for difference -k, k < table_len
 * exactly when the difference is >= diff_min). */
#include "mcu_fixedpoint.h"

/* Parameters, one const int32 array in this order (engine/quant_ops.py log_softmax_params). */
enum {
    MCU_LSM_INPUT_MULT, MCU_LSM_INPUT_SHIFT, MCU_LSM_REV_MULT, MCU_LSM_REV_SHIFT,
    MCU_LSM_DIFF_MIN, MCU_LSM_NUM_PARAMS
};

MCU_INLINE int32_t mcu_lsm_mul(int32_t a, int32_t b) {
    return mcu_saturating_rounding_doubling_high_mul(a, b);
}

MCU_INLINE int32_t mcu_lsm_saturating_add(int32_t a, int32_t b) {
    const int64_t s = (int64_t)a + (int64_t)b;
    return s > INT32_MAX ? INT32_MAX : (s < INT32_MIN ? INT32_MIN : (int32_t)s);
}

/* TFLite log_x_for_x_greater_than_or_equal_to_1 with 12 input and 5 output integer bits:
 * x = 2^z * r with r in [sqrt(1/2), sqrt(2)) chosen from two normalisations (of x and of
 * x * sqrt(1/2)), z in Q6.25 with +-1/4 adjustments; log r from a rational approximation in
 * q = 2 (r - 2^(-1/4)) with the constants below (Q0.31), the reciprocal of its denominator by
 * one_over_one_plus_x; result z log 2 + num / denom, rescaled from 6 to 5 integer bits. */
MCU_INLINE int32_t mcu_log_softmax_log(int32_t x) {
    enum { IN_BITS = 12, ACC_BITS = 6 };
    const int32_t log_2 = 1488522236, sqrt_sqrt_half = 1805811301, sqrt_half = 1518500250;
    const int32_t alpha_n = 117049297, alpha_d = 127690142, alpha_i = 1057819769,
                  alpha_f = 638450708;
    const int32_t shifted_quarter = mcu_rounding_divide_by_pot(536870912, ACC_BITS);
    const int za_headroom_plus_1 = mcu_fp_count_leading_zeros((uint32_t)x);
    const int32_t ra_tmp = mcu_fp_saturating_shl(x, za_headroom_plus_1 - 1);
    const int32_t ra = mcu_fp_saturating_shl(mcu_lsm_mul(ra_tmp, sqrt_half), 1);
    const int32_t za_pow = mcu_lsm_saturating_add(
        mcu_fp_saturating_shl(IN_BITS - za_headroom_plus_1, 31 - ACC_BITS), shifted_quarter);
    const int32_t zb = mcu_lsm_mul(x, sqrt_half);
    const int zb_headroom = mcu_fp_count_leading_zeros((uint32_t)zb) - 1;
    const int32_t rb = mcu_fp_saturating_shl(x, zb_headroom);
    const int32_t zb_pow = mcu_lsm_saturating_add(
        mcu_fp_saturating_shl(IN_BITS - zb_headroom, 31 - ACC_BITS), -shifted_quarter);
    const int32_t r = ra < rb ? ra : rb;
    const int32_t z_pow = za_pow > zb_pow ? za_pow : zb_pow;
    const int32_t p = mcu_fp_rounding_half_sum(r, sqrt_sqrt_half);
    const int32_t q0 = mcu_fp_sub(r, sqrt_sqrt_half);
    const int32_t q = mcu_fp_add(q0, q0);
    const int32_t q_sq = mcu_lsm_mul(q, q);
    const int32_t num = mcu_fp_add(mcu_lsm_mul(q, r), mcu_lsm_mul(mcu_lsm_mul(q, q_sq), alpha_n));
    const int32_t den_minus_one = mcu_fp_add(
        mcu_lsm_mul(p, mcu_fp_add(mcu_fp_add(alpha_i, q), mcu_lsm_mul(alpha_d, q_sq))),
        mcu_lsm_mul(alpha_f, q));
    const int32_t recip = mcu_fp_one_over_one_plus_x(den_minus_one);
    const int32_t num_scaled = mcu_rounding_divide_by_pot(num, ACC_BITS);
    return mcu_fp_saturating_shl(
        mcu_fp_add(mcu_lsm_mul(z_pow, log_2), mcu_lsm_mul(num_scaled, recip)), 1);
}

MCU_KERNEL void mcu_log_softmax_s8(const int8_t *in, int8_t *out, int32_t rows, int32_t depth,
                                   const int32_t *q, const int32_t *exp_table,
                                   int32_t table_len) {
    int32_t row, c;
    for (row = 0; row < rows; ++row) {
        const int8_t *x = in + (size_t)row * depth;
        int8_t *y = out + (size_t)row * depth;
        int32_t max = -128, sum = 0, log_sum, adjusted_min, rescaled;
        for (c = 0; c < depth; ++c) {
            max = x[c] > max ? x[c] : max;
        }
        for (c = 0; c < depth; ++c) {
            const int32_t k = max - x[c];
            if (k < table_len) {
                sum = mcu_fp_add(sum, mcu_rounding_divide_by_pot(exp_table[k], 12));
            }
        }
        log_sum = mcu_log_softmax_log(sum);
        rescaled = mcu_multiply_by_quantized_multiplier(mcu_fp_add(log_sum, INT32_MIN),
                                                        q[MCU_LSM_REV_MULT], q[MCU_LSM_REV_SHIFT]);
        adjusted_min = q[MCU_LSM_DIFF_MIN] - 1;
        adjusted_min = rescaled > adjusted_min ? rescaled : adjusted_min;
        for (c = 0; c < depth; ++c) {
            const int32_t diff = x[c] - max;
            if (diff > adjusted_min) {
                const int32_t scaled = mcu_multiply_by_quantized_multiplier(
                    diff, q[MCU_LSM_INPUT_MULT], q[MCU_LSM_INPUT_SHIFT]);
                y[c] = mcu_clamp_s8(
                    mcu_rounding_divide_by_pot(mcu_fp_sub(scaled, log_sum), 22) + 127);
            } else {
                y[c] = -128;
            }
        }
    }
}
