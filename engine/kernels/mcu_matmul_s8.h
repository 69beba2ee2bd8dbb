/* The int8 matrix-product core shared by CONV_2D (1x1 directly, kxk after im2col) and
 * FULLY_CONNECTED: two input columns against every weight row, two rows at a time, then
 * TFLite's per-channel requantisation.
 *
 *   out_j[c] = requant(bias[c] + sum_k w[c*K + k] * col_j[k]),  j = 0, 1
 *
 * The input zero point is not subtracted here: the generator folds it into the bias
 * (bias[c] - zp_in * sum_k w[c][k]), and callers make padded taps hold zp_in, so the sums
 * are exactly TFLite's sum of w * (x - zp_in) over the taps inside the image.
 *
 * Columns come in the "operand" format of the build:
 *   portable: int8, K values as they are;
 *   DSP:      int16, every group of 4 values x0..x3 stored as x0,x2,x1,x3 (the order SXTB16
 *             splits a word of weights into), a K % 4 tail stored in order. This expansion is
 *             done once per column (mcu_expand_s8) and reused by every output channel, so
 *             the inner loop only splits the weights: 1 LDR + 3 ALU per 4 weights.
 */
#ifndef MCU_MATMUL_S8_H
#define MCU_MATMUL_S8_H

#include "mcu_common.h"

#if MCU_USE_DSP
typedef int16_t mcu_col_t;
#else
typedef int8_t mcu_col_t;
#endif

/* Copy n int8 values into the build's column format. For the DSP build dst may overlap src
 * when dst <= src <= dst + n (each group of 4 is read before its 8 bytes are written and
 * never overtakes unread input), which lets im2col gather int8 into the upper half of a
 * column and widen it in place. */
MCU_INLINE void mcu_expand_s8(const int8_t *src, mcu_col_t *dst, int n) {
#if MCU_USE_DSP
    const int whole = n & ~3;
    for (int i = 0; i < whole; i += 4) {
        const uint32_t x = mcu_read_u32(src + i);
        mcu_write_u32(dst + i, mcu_sxtb16(x));
        mcu_write_u32(dst + i + 2, mcu_sxtb16_ror8(x));
    }
    for (int i = whole; i < n; ++i) {
        const int8_t v = src[i];
        dst[i] = v;
    }
#else
    if ((const void *)src != (const void *)dst) {
        memmove(dst, src, (size_t)n);
    }
#endif
}

MCU_INLINE int32_t mcu_dot_tail(const int8_t *w, const mcu_col_t *x, int n, int32_t acc) {
    for (int i = 0; i < n; ++i) {
        acc += (int32_t)w[i] * (int32_t)x[i];
    }
    return acc;
}

/* One column (an odd last pixel, or a single FULLY_CONNECTED row). */
MCU_INLINE void mcu_matmul_s8_1col(const mcu_col_t *MCU_RESTRICT col, int K,
                                   const int8_t *MCU_RESTRICT w, const int32_t *bias,
                                   const int32_t *mult, const int32_t *shift, int per_channel,
                                   int n_rows, int8_t *MCU_RESTRICT out, int32_t out_zp,
                                   int32_t act_min, int32_t act_max) {
    for (int c = 0; c < n_rows; ++c) {
        const int8_t *wr = w + (size_t)c * (size_t)K;
        int32_t acc = bias[c];
        int k = 0;
#if MCU_USE_DSP
        for (; k < (K & ~3); k += 4) {
            const uint32_t wv = mcu_read_u32(wr + k);
            acc = mcu_smlad(mcu_sxtb16(wv), mcu_read_u32(col + k), acc);
            acc = mcu_smlad(mcu_sxtb16_ror8(wv), mcu_read_u32(col + k + 2), acc);
        }
#else
        for (; k < (K & ~3); k += 4) {
            acc += (int32_t)wr[k] * col[k] + (int32_t)wr[k + 1] * col[k + 1] +
                   (int32_t)wr[k + 2] * col[k + 2] + (int32_t)wr[k + 3] * col[k + 3];
        }
#endif
        acc = mcu_dot_tail(wr + k, col + k, K - k, acc);
        const int q = per_channel ? c : 0;
        out[c] = mcu_requantize_s8(acc, mult[q], shift[q], out_zp, act_min, act_max);
    }
}

/* Two columns, two weight rows per step: four accumulators share every load. */
MCU_INLINE void mcu_matmul_s8_2col(const mcu_col_t *MCU_RESTRICT col0,
                                   const mcu_col_t *MCU_RESTRICT col1, int K,
                                   const int8_t *MCU_RESTRICT w, const int32_t *bias,
                                   const int32_t *mult, const int32_t *shift, int per_channel,
                                   int n_rows, int8_t *MCU_RESTRICT out0,
                                   int8_t *MCU_RESTRICT out1, int32_t out_zp, int32_t act_min,
                                   int32_t act_max) {
    int c = 0;
    for (; c < (n_rows & ~1); c += 2) {
        const int8_t *w0 = w + (size_t)c * (size_t)K;
        const int8_t *w1 = w0 + K;
        int32_t a00 = bias[c], a01 = bias[c];         /* row c:   columns 0, 1 */
        int32_t a10 = bias[c + 1], a11 = bias[c + 1]; /* row c+1: columns 0, 1 */
        int k = 0;
#if MCU_USE_DSP
        for (; k < (K & ~3); k += 4) {
            const uint32_t x0e = mcu_read_u32(col0 + k), x0o = mcu_read_u32(col0 + k + 2);
            const uint32_t x1e = mcu_read_u32(col1 + k), x1o = mcu_read_u32(col1 + k + 2);
            const uint32_t wa = mcu_read_u32(w0 + k);
            const uint32_t wae = mcu_sxtb16(wa), wao = mcu_sxtb16_ror8(wa);
            a00 = mcu_smlad(wae, x0e, a00);
            a01 = mcu_smlad(wae, x1e, a01);
            a00 = mcu_smlad(wao, x0o, a00);
            a01 = mcu_smlad(wao, x1o, a01);
            const uint32_t wb = mcu_read_u32(w1 + k);
            const uint32_t wbe = mcu_sxtb16(wb), wbo = mcu_sxtb16_ror8(wb);
            a10 = mcu_smlad(wbe, x0e, a10);
            a11 = mcu_smlad(wbe, x1e, a11);
            a10 = mcu_smlad(wbo, x0o, a10);
            a11 = mcu_smlad(wbo, x1o, a11);
        }
#else
        for (; k < (K & ~1); k += 2) {
            const int32_t x00 = col0[k], x01 = col0[k + 1];
            const int32_t x10 = col1[k], x11 = col1[k + 1];
            const int32_t wa0 = w0[k], wa1 = w0[k + 1];
            const int32_t wb0 = w1[k], wb1 = w1[k + 1];
            a00 += wa0 * x00 + wa1 * x01;
            a01 += wa0 * x10 + wa1 * x11;
            a10 += wb0 * x00 + wb1 * x01;
            a11 += wb0 * x10 + wb1 * x11;
        }
#endif
        for (; k < K; ++k) {
            const int32_t x0 = col0[k], x1 = col1[k];
            a00 += (int32_t)w0[k] * x0;
            a01 += (int32_t)w0[k] * x1;
            a10 += (int32_t)w1[k] * x0;
            a11 += (int32_t)w1[k] * x1;
        }
        const int q0 = per_channel ? c : 0;
        const int q1 = per_channel ? c + 1 : 0;
        out0[c] = mcu_requantize_s8(a00, mult[q0], shift[q0], out_zp, act_min, act_max);
        out1[c] = mcu_requantize_s8(a01, mult[q0], shift[q0], out_zp, act_min, act_max);
        out0[c + 1] = mcu_requantize_s8(a10, mult[q1], shift[q1], out_zp, act_min, act_max);
        out1[c + 1] = mcu_requantize_s8(a11, mult[q1], shift[q1], out_zp, act_min, act_max);
    }
    if (c < n_rows) {
        const int8_t *wl = w + (size_t)c * (size_t)K;
        const int32_t *bl = bias + c;
        const int32_t *ml = per_channel ? mult + c : mult;
        const int32_t *sl = per_channel ? shift + c : shift;
        mcu_matmul_s8_1col(col0, K, wl, bl, ml, sl, per_channel, 1, out0 + c, out_zp, act_min,
                           act_max);
        mcu_matmul_s8_1col(col1, K, wl, bl, ml, sl, per_channel, 1, out1 + c, out_zp, act_min,
                           act_max);
    }
}

#if MCU_USE_DSP
/* DSP variants reading raw int8 columns (1x1 convolution straight from the arena, no
 * scratch): the input words are split by SXTB16 too, once per step for both weight rows. */
MCU_INLINE void mcu_matmul_s8_1col_raw(const int8_t *MCU_RESTRICT col, int K,
                                       const int8_t *MCU_RESTRICT w, const int32_t *bias,
                                       const int32_t *mult, const int32_t *shift,
                                       int per_channel, int n_rows, int8_t *MCU_RESTRICT out,
                                       int32_t out_zp, int32_t act_min, int32_t act_max) {
    for (int c = 0; c < n_rows; ++c) {
        const int8_t *wr = w + (size_t)c * (size_t)K;
        int32_t acc = bias[c];
        int k = 0;
        for (; k < (K & ~3); k += 4) {
            const uint32_t wv = mcu_read_u32(wr + k);
            const uint32_t xv = mcu_read_u32(col + k);
            acc = mcu_smlad(mcu_sxtb16(wv), mcu_sxtb16(xv), acc);
            acc = mcu_smlad(mcu_sxtb16_ror8(wv), mcu_sxtb16_ror8(xv), acc);
        }
        for (; k < K; ++k) {
            acc += (int32_t)wr[k] * (int32_t)col[k];
        }
        const int q = per_channel ? c : 0;
        out[c] = mcu_requantize_s8(acc, mult[q], shift[q], out_zp, act_min, act_max);
    }
}

MCU_INLINE void mcu_matmul_s8_2col_raw(const int8_t *MCU_RESTRICT col0,
                                       const int8_t *MCU_RESTRICT col1, int K,
                                       const int8_t *MCU_RESTRICT w, const int32_t *bias,
                                       const int32_t *mult, const int32_t *shift,
                                       int per_channel, int n_rows, int8_t *MCU_RESTRICT out0,
                                       int8_t *MCU_RESTRICT out1, int32_t out_zp,
                                       int32_t act_min, int32_t act_max) {
    int c = 0;
    for (; c < (n_rows & ~1); c += 2) {
        const int8_t *w0 = w + (size_t)c * (size_t)K;
        const int8_t *w1 = w0 + K;
        int32_t a00 = bias[c], a01 = bias[c];
        int32_t a10 = bias[c + 1], a11 = bias[c + 1];
        int k = 0;
        /* pointers walk, the second row and column are register offsets: keeps the four
         * accumulators, four input halves and two weight halves in registers */
        const int8_t *pw = w0, *px = col0;
        const ptrdiff_t dx = col1 - col0;
        for (const int8_t *end = w0 + (K & ~3); pw < end; pw += 4, px += 4) {
            const uint32_t xa = mcu_read_u32(px), xb = mcu_read_u32(px + dx);
            const uint32_t x0e = mcu_sxtb16(xa), x0o = mcu_sxtb16_ror8(xa);
            const uint32_t x1e = mcu_sxtb16(xb), x1o = mcu_sxtb16_ror8(xb);
            uint32_t wv = mcu_read_u32(pw);
            uint32_t we = mcu_sxtb16(wv), wo = mcu_sxtb16_ror8(wv);
            a00 = mcu_smlad(we, x0e, a00);
            a01 = mcu_smlad(we, x1e, a01);
            a00 = mcu_smlad(wo, x0o, a00);
            a01 = mcu_smlad(wo, x1o, a01);
            wv = mcu_read_u32(pw + K);
            we = mcu_sxtb16(wv);
            wo = mcu_sxtb16_ror8(wv);
            a10 = mcu_smlad(we, x0e, a10);
            a11 = mcu_smlad(we, x1e, a11);
            a10 = mcu_smlad(wo, x0o, a10);
            a11 = mcu_smlad(wo, x1o, a11);
        }
        k = K & ~3;
        for (; k < K; ++k) {
            const int32_t x0 = col0[k], x1 = col1[k];
            a00 += (int32_t)w0[k] * x0;
            a01 += (int32_t)w0[k] * x1;
            a10 += (int32_t)w1[k] * x0;
            a11 += (int32_t)w1[k] * x1;
        }
        const int q0 = per_channel ? c : 0;
        const int q1 = per_channel ? c + 1 : 0;
        out0[c] = mcu_requantize_s8(a00, mult[q0], shift[q0], out_zp, act_min, act_max);
        out1[c] = mcu_requantize_s8(a01, mult[q0], shift[q0], out_zp, act_min, act_max);
        out0[c + 1] = mcu_requantize_s8(a10, mult[q1], shift[q1], out_zp, act_min, act_max);
        out1[c + 1] = mcu_requantize_s8(a11, mult[q1], shift[q1], out_zp, act_min, act_max);
    }
    if (c < n_rows) {
        const int8_t *wl = w + (size_t)c * (size_t)K;
        const int32_t *ml = per_channel ? mult + c : mult;
        const int32_t *sl = per_channel ? shift + c : shift;
        mcu_matmul_s8_1col_raw(col0, K, wl, bias + c, ml, sl, per_channel, 1, out0 + c, out_zp,
                               act_min, act_max);
        mcu_matmul_s8_1col_raw(col1, K, wl, bias + c, ml, sl, per_channel, 1, out1 + c, out_zp,
                               act_min, act_max);
    }
}
#else
/* Portable columns are int8 already. */
#define mcu_matmul_s8_1col_raw mcu_matmul_s8_1col
#define mcu_matmul_s8_2col_raw mcu_matmul_s8_2col
#endif

#endif /* MCU_MATMUL_S8_H */
