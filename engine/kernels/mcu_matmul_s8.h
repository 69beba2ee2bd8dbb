/* The int8 matrix-product core shared by CONV_2D (1x1 directly, kxk after im2col) and
 * FULLY_CONNECTED, with weights packed at generation time for the inner loop.
 *
 *   out_j[c] = requant(bias[c] + sum_k w[c][k] * col_j[k])
 *
 * The input zero point is not subtracted here: the generator folds it into the bias
 * (bias[c] - zp_in * sum_k w[c][k]), and callers make padded taps hold zp_in, so the sums are
 * exactly TFLite's sum of w * (x - zp_in) over the taps inside the image.
 *
 * Packed weights (tflite_converter/codegen/ops/_conv_common.py pack_weight_rows): K is
 * rounded up to K4 (a multiple of 4) with zero weights, and rows are taken in blocks of RB;
 * inside a block the bytes are [K4/4 groups][RB rows][4 weights], so one pointer walks all the
 * rows of a block with immediate offsets. The last block holds the Cout % RB leftover rows in
 * the same format.
 *
 * Per-channel table `rq`: three int32 per output channel {bias, multiplier, shift}, where the
 * shift is TFLite's (negative = right) for the exact generic requantisation, or the right
 * shift rs >= 1 for the fast one (mcu_common.h mcu_requant_fast), as the generator decided.
 *
 * Columns (conv) are int16 in groups of 4 per pixel, NP pixels interleaved: [K4/4][NP][4]
 * (mcu_col_put_s8 writes one pixel). The DSP build stores a group x0..x3 as x0,x2,x1,x3, the
 * order SXTB16 splits a word of weights into, so the inner loop is LDR + SMLAD only for the
 * input; the portable build keeps them in order.
 */
#ifndef MCU_MATMUL_S8_H
#define MCU_MATMUL_S8_H

#include "mcu_common.h"

/* Pixels per block of the convolution core: 3 pixels x 2 output channels = 6 accumulators,
 * which with the 4 weight halves and 3 pointers fills the Cortex-M register file without
 * spilling. */
#define MCU_MM_NP 3
/* Rows per block of packed convolution weights (FULLY_CONNECTED uses MCU_FC_RB). */
#define MCU_MM_RB 2

/* Bytes 1 and 3 sign-extended into halfwords in one instruction (SXTB16 with its rotate
 * operand): GCC does not fold the C rotate of mcu_sxtb16_ror8 into it. */
#if MCU_USE_DSP
MCU_INLINE uint32_t mcu_mm_sxtb16_hi(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#else
#define mcu_mm_sxtb16_hi mcu_sxtb16_ror8
#endif

/* ---------------------------------------------------------------------------------------
 * Requantisation
 */

/* One output value from the per-channel table entry rq = {bias, mult, shift}: `fast`, the
 * shift column holds the right shift rs and rnd = mcu_requant_rnd(rs, out_zp) (the generator
 * proved mcu_requant_fast exact for every row); otherwise TFLite's arithmetic. */
MCU_INLINE int8_t mcu_requant_entry(int32_t acc, const int32_t *rq, int32_t rnd, int fast,
                                    int32_t out_zp, int32_t act_min, int32_t act_max) {
    const int32_t v = fast ? mcu_requant_fast(acc * 2, acc, rq[1], rnd, rq[2], MCU_RQF_AFTER)
                           : mcu_multiply_by_quantized_multiplier(acc, rq[1], (int)rq[2]) + out_zp;
    return (int8_t)mcu_clamp_i32(v, act_min, act_max);
}

/* ---------------------------------------------------------------------------------------
 * Columns
 */

/* Four int8 values as one group of the build's column format. */
MCU_INLINE void mcu_col_put4(const int8_t *src, int16_t *dst) {
#if MCU_USE_DSP
    const uint32_t x = mcu_read_u32(src);
    mcu_write_u32(dst, mcu_sxtb16(x));
    mcu_write_u32(dst + 2, mcu_mm_sxtb16_hi(x));
#else
    dst[0] = src[0];
    dst[1] = src[1];
    dst[2] = src[2];
    dst[3] = src[3];
#endif
}

/* Pixel j of an np-pixel column block from K int8 values; the K4 - K padding groups get
 * zeros (their weights are zero too, the zeros keep the sums defined). */
MCU_INLINE void mcu_col_put_s8(const int8_t *src, int K, int16_t *col, int np, int j) {
    int16_t *dst = col + 4 * j;
    int k = 0;
    for (; k + 4 <= K; k += 4, dst += 4 * np) {
        mcu_col_put4(src + k, dst);
    }
    if (k < K) {
        int8_t last[4] = {0, 0, 0, 0};
        /* t < 4 always holds (K - k < 4 here); spelled out so the compiler sees it too (GCC's
         * -Wstringop-overflow otherwise reads the copy as possibly longer than last[]) */
        for (int t = 0; t < 4 && k + t < K; ++t) {
            last[t] = src[k + t];
        }
        mcu_col_put4(last, dst);
    }
}

/* ---------------------------------------------------------------------------------------
 * np pixels x all output channels (np = MCU_MM_NP or 1)
 *
 * Written out per pixel (scalars, not arrays): GCC keeps unrolled scalars in registers but
 * leaves small accumulator arrays on the stack.
 */

#if MCU_USE_DSP
/* The hot loops of every convolution, written out in assembly (GCC's code of the C loops
 * spilled the loop end and re-read pointers): weights of both rows of a block come in one
 * LDRD, each pixel's 4-tap column in another, all with post-incremented pointers. */

/* One group of 4 taps, 2 rows x 3 pixels: 1 + 3 LDRD, 4 SXTB16, 12 SMLAD. */
#define MCU_MM_G3X2                                                                           \
    "ldrd %[wa], %[wb], [%[pw]], #8\n\t"                                                      \
    "ldrd %[xe], %[xo], [%[px]], #8\n\t"                                                      \
    "sxtb16 %[wao], %[wa], ror #8\n\t"                                                        \
    "sxtb16 %[wa], %[wa]\n\t"                                                                 \
    "sxtb16 %[wbo], %[wb], ror #8\n\t"                                                        \
    "sxtb16 %[wb], %[wb]\n\t"                                                                 \
    "smlad %[a0], %[wa], %[xe], %[a0]\n\t"                                                    \
    "smlad %[b0], %[wb], %[xe], %[b0]\n\t"                                                    \
    "smlad %[a0], %[wao], %[xo], %[a0]\n\t"                                                   \
    "smlad %[b0], %[wbo], %[xo], %[b0]\n\t"                                                   \
    "ldrd %[xe], %[xo], [%[px]], #8\n\t"                                                      \
    "smlad %[a1], %[wa], %[xe], %[a1]\n\t"                                                    \
    "smlad %[b1], %[wb], %[xe], %[b1]\n\t"                                                    \
    "smlad %[a1], %[wao], %[xo], %[a1]\n\t"                                                   \
    "smlad %[b1], %[wbo], %[xo], %[b1]\n\t"                                                   \
    "ldrd %[xe], %[xo], [%[px]], #8\n\t"                                                      \
    "smlad %[a2], %[wa], %[xe], %[a2]\n\t"                                                    \
    "smlad %[b2], %[wb], %[xe], %[b2]\n\t"                                                    \
    "smlad %[a2], %[wao], %[xo], %[a2]\n\t"                                                   \
    "smlad %[b2], %[wbo], %[xo], %[b2]\n\t"

#define MCU_MM_G3X2_OPERANDS                                                                  \
    [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [b0] "+r"(b0), [b1] "+r"(b1), [b2] "+r"(b2), \
        [px] "+r"(px), [pw] "+r"(pw), [wa] "=&r"(wa), [wb] "=&r"(wb), [wao] "=&r"(wao),       \
        [wbo] "=&r"(wbo), [xe] "=&r"(xe), [xo] "=&r"(xo)

/* Two packed rows against 3 columns. The six accumulators, six temporaries and two
 * pointers take 14 registers, the whole allocatable file, so the loop end stays in memory
 * and is loaded into a temporary that is dead by then; the loop takes four groups per
 * iteration to pay that and the branch once per 96 MACs. */
MCU_INLINE void mcu_mm_rows3x2_asm(const int16_t *px, int G, const int8_t *pw, int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], b0 = acc[3], b1 = acc[4], b2 = acc[5];
    const int16_t *const end = px + 12 * G;
    uint32_t wa, wb, wao, wbo, xe, xo;
    if (G & 1) {
        __asm__ volatile(MCU_MM_G3X2 : MCU_MM_G3X2_OPERANDS : : "memory");
    }
    if (G & 2) {
        __asm__ volatile(MCU_MM_G3X2 MCU_MM_G3X2 : MCU_MM_G3X2_OPERANDS : : "memory");
    }
    if (G > 3) {
        __asm__ volatile("1:\n\t" MCU_MM_G3X2 MCU_MM_G3X2 MCU_MM_G3X2 MCU_MM_G3X2
                         "ldr %[xe], %[end]\n\t"
                         "cmp %[px], %[xe]\n\t"
                         "bne 1b\n\t"
                         : MCU_MM_G3X2_OPERANDS
                         : [end] "m"(end)
                         : "cc", "memory");
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = b0;
    acc[4] = b1;
    acc[5] = b2;
}

/* Two packed rows against 1 column (kxk convolutions run a pixel at a time where the plan
 * had no room for wider blocks): 2 LDRD, 4 SXTB16, 4 SMLAD per group. G >= 1. */
MCU_INLINE void mcu_mm_rows1x2_asm(const int16_t *px, int G, const int8_t *pw, int32_t *acc) {
    int32_t a0 = acc[0], b0 = acc[3];
    const int16_t *const end = px + 4 * G;
    uint32_t wa, wb, wao, wbo, xe, xo;
    __asm__ volatile("1:\n\t"
                     "ldrd %[wa], %[wb], [%[pw]], #8\n\t"
                     "ldrd %[xe], %[xo], [%[px]], #8\n\t"
                     "sxtb16 %[wao], %[wa], ror #8\n\t"
                     "sxtb16 %[wa], %[wa]\n\t"
                     "sxtb16 %[wbo], %[wb], ror #8\n\t"
                     "sxtb16 %[wb], %[wb]\n\t"
                     "smlad %[a0], %[wa], %[xe], %[a0]\n\t"
                     "smlad %[b0], %[wb], %[xe], %[b0]\n\t"
                     "smlad %[a0], %[wao], %[xo], %[a0]\n\t"
                     "smlad %[b0], %[wbo], %[xo], %[b0]\n\t"
                     "cmp %[px], %[end]\n\t"
                     "bne 1b\n\t"
                     : [a0] "+r"(a0), [b0] "+r"(b0), [px] "+r"(px), [pw] "+r"(pw),
                       [wa] "=&r"(wa), [wb] "=&r"(wb), [wao] "=&r"(wao), [wbo] "=&r"(wbo),
                       [xe] "=&r"(xe), [xo] "=&r"(xo)
                     : [end] "r"(end)
                     : "cc", "memory");
    acc[0] = a0;
    acc[3] = b0;
}
#endif

/* Rows `rows` (2, or 1 for an odd last channel) of packed weights against 3 columns. */
MCU_INLINE void mcu_mm_rows3(const int16_t *MCU_RESTRICT px, int G, int rows,
                             const int8_t *MCU_RESTRICT pw, int32_t *acc) {
#if MCU_USE_DSP
    if (rows == 2) {
        if (G > 0) {
            mcu_mm_rows3x2_asm(px, G, pw, acc);
        }
        return;
    }
#endif
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], b0 = acc[3], b1 = acc[4], b2 = acc[5];
    for (const int16_t *end = px + 12 * G; px < end; px += 12, pw += 4 * rows) {
#if MCU_USE_DSP
        const uint32_t wa = mcu_read_u32(pw);
        const uint32_t wae = mcu_sxtb16(wa), wao = mcu_mm_sxtb16_hi(wa);
        uint32_t xe = mcu_read_u32(px), xo = mcu_read_u32(px + 2);
        if (rows == 2) {
            const uint32_t wb = mcu_read_u32(pw + 4);
            const uint32_t wbe = mcu_sxtb16(wb), wbo = mcu_mm_sxtb16_hi(wb);
            a0 = mcu_smlad(wae, xe, a0);
            b0 = mcu_smlad(wbe, xe, b0);
            a0 = mcu_smlad(wao, xo, a0);
            b0 = mcu_smlad(wbo, xo, b0);
            xe = mcu_read_u32(px + 4);
            xo = mcu_read_u32(px + 6);
            a1 = mcu_smlad(wae, xe, a1);
            b1 = mcu_smlad(wbe, xe, b1);
            a1 = mcu_smlad(wao, xo, a1);
            b1 = mcu_smlad(wbo, xo, b1);
            xe = mcu_read_u32(px + 8);
            xo = mcu_read_u32(px + 10);
            a2 = mcu_smlad(wae, xe, a2);
            b2 = mcu_smlad(wbe, xe, b2);
            a2 = mcu_smlad(wao, xo, a2);
            b2 = mcu_smlad(wbo, xo, b2);
        } else {
            a0 = mcu_smlad(wao, xo, mcu_smlad(wae, xe, a0));
            a1 = mcu_smlad(wao, mcu_read_u32(px + 6), mcu_smlad(wae, mcu_read_u32(px + 4), a1));
            a2 = mcu_smlad(wao, mcu_read_u32(px + 10), mcu_smlad(wae, mcu_read_u32(px + 8), a2));
        }
#else
        const int32_t w0 = pw[0], w1 = pw[1], w2 = pw[2], w3 = pw[3];
        a0 += w0 * px[0] + w1 * px[1] + w2 * px[2] + w3 * px[3];
        a1 += w0 * px[4] + w1 * px[5] + w2 * px[6] + w3 * px[7];
        a2 += w0 * px[8] + w1 * px[9] + w2 * px[10] + w3 * px[11];
        if (rows == 2) {
            const int32_t v0 = pw[4], v1 = pw[5], v2 = pw[6], v3 = pw[7];
            b0 += v0 * px[0] + v1 * px[1] + v2 * px[2] + v3 * px[3];
            b1 += v0 * px[4] + v1 * px[5] + v2 * px[6] + v3 * px[7];
            b2 += v0 * px[8] + v1 * px[9] + v2 * px[10] + v3 * px[11];
        }
#endif
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = b0;
    acc[4] = b1;
    acc[5] = b2;
}

/* The same for one column. */
MCU_INLINE void mcu_mm_rows1(const int16_t *MCU_RESTRICT px, int G, int rows,
                             const int8_t *MCU_RESTRICT pw, int32_t *acc) {
#if MCU_USE_DSP
    if (rows == 2) {
        if (G > 0) {
            mcu_mm_rows1x2_asm(px, G, pw, acc);
        }
        return;
    }
#endif
    int32_t a0 = acc[0], b0 = acc[3];
    for (const int16_t *end = px + 4 * G; px < end; px += 4, pw += 4 * rows) {
#if MCU_USE_DSP
        const uint32_t xe = mcu_read_u32(px), xo = mcu_read_u32(px + 2);
        const uint32_t wa = mcu_read_u32(pw);
        a0 = mcu_smlad(mcu_mm_sxtb16_hi(wa), xo, mcu_smlad(mcu_sxtb16(wa), xe, a0));
        if (rows == 2) {
            const uint32_t wb = mcu_read_u32(pw + 4);
            b0 = mcu_smlad(mcu_mm_sxtb16_hi(wb), xo, mcu_smlad(mcu_sxtb16(wb), xe, b0));
        }
#else
        a0 += pw[0] * px[0] + pw[1] * px[1] + pw[2] * px[2] + pw[3] * px[3];
        if (rows == 2) {
            b0 += pw[4] * px[0] + pw[5] * px[1] + pw[6] * px[2] + pw[7] * px[3];
        }
#endif
    }
    acc[0] = a0;
    acc[3] = b0;
}

/* ---------------------------------------------------------------------------------------
 * CONV_2D requantisation (tflite_converter/codegen/ops/_conv_common.py conv_requant_table)
 *
 * The convolution table has four int32 per output channel (16 bytes, so a channel pair is
 * two LDRDs away): {bias, multiplier, rnd, rs} in the fast modes, {bias, multiplier,
 * TFLite shift, 0} in the generic one. Channels whose output the generator proved constant
 * over every int8 input hold {0, 0, 2c + 1, 1}, which the fast formula maps to c.
 */
#define MCU_RQ_STRIDE 4
/* TFLite's MultiplyByQuantizedMultiplier on any table (no precondition). */
#define MCU_RQ_GENERIC 0
/* The one-rounding-pass form below, then the activation clamp. */
#define MCU_RQ_FAST 1
/* The same where the activation range is all of int8: one SSAT clamps. */
#define MCU_RQ_FAST_FULL 2

/* The fast modes are mcu_requant_fast (mcu_common.h) on 2 acc: LSL, ADD asr #31, SMMLAR, ASR
 * with the table's rnd = 2^(rs-1) + zp_out * 2^rs, which the generator proved exact for every
 * channel (engine/quantization.py fast_requant). */

/* Requantise accumulator acc of table entry e into *o. `mode` is a literal at every call. */
MCU_INLINE void mcu_mm_store(int8_t *o, int32_t acc, const int32_t *e, int mode,
                             int32_t out_zp, int32_t act_min, int32_t act_max) {
    int32_t v;
    if (mode == MCU_RQ_GENERIC) {
        v = mcu_clamp_i32(mcu_multiply_by_quantized_multiplier(acc, e[1], (int)e[2]) + out_zp,
                          act_min, act_max);
    } else if (mode == MCU_RQ_FAST_FULL) {
        v = mcu_ssat8(mcu_requant_fast(acc * 2, acc, e[1], e[2], e[3], MCU_RQF_FUSED));
    } else {
        v = mcu_clamp_i32(mcu_requant_fast(acc * 2, acc, e[1], e[2], e[3], MCU_RQF_FUSED),
                          act_min, act_max);
    }
    *o = (int8_t)v;
}

/* out + j * out_stride receives pixel j's n_rows channels. `mode` and `np` are literals at
 * every call, so each combination compiles to its own straight loop. */
MCU_INLINE void mcu_mm_block(const int16_t *MCU_RESTRICT col, int K, int np,
                             const int8_t *MCU_RESTRICT wpk, const int32_t *MCU_RESTRICT rq,
                             int n_rows, int mode, int8_t *MCU_RESTRICT out, int out_stride,
                             int32_t out_zp, int32_t act_min, int32_t act_max) {
    const int G = (K + 3) >> 2;
    const int8_t *pw = wpk;
    int8_t *o0 = out, *o1 = out + out_stride, *o2 = out + 2 * out_stride;
    for (int c = 0; c < n_rows; c += 2, pw += 8 * G, rq += 2 * MCU_RQ_STRIDE) {
        const int rows = c + 2 <= n_rows ? 2 : 1;
        const int32_t *e0 = rq, *e1 = rq + MCU_RQ_STRIDE;
        int32_t acc[6] = {e0[0], e0[0], e0[0], 0, 0, 0};
        if (rows == 2) {
            acc[3] = acc[4] = acc[5] = e1[0];
            if (np == 3) {
                mcu_mm_rows3(col, G, 2, pw, acc);
                mcu_mm_store(o1 + c, acc[1], e0, mode, out_zp, act_min, act_max);
                mcu_mm_store(o2 + c, acc[2], e0, mode, out_zp, act_min, act_max);
                mcu_mm_store(o1 + c + 1, acc[4], e1, mode, out_zp, act_min, act_max);
                mcu_mm_store(o2 + c + 1, acc[5], e1, mode, out_zp, act_min, act_max);
            } else {
                mcu_mm_rows1(col, G, 2, pw, acc);
            }
            mcu_mm_store(o0 + c, acc[0], e0, mode, out_zp, act_min, act_max);
            mcu_mm_store(o0 + c + 1, acc[3], e1, mode, out_zp, act_min, act_max);
        } else {
            if (np == 3) {
                mcu_mm_rows3(col, G, 1, pw, acc);
                mcu_mm_store(o1 + c, acc[1], e0, mode, out_zp, act_min, act_max);
                mcu_mm_store(o2 + c, acc[2], e0, mode, out_zp, act_min, act_max);
            } else {
                mcu_mm_rows1(col, G, 1, pw, acc);
            }
            mcu_mm_store(o0 + c, acc[0], e0, mode, out_zp, act_min, act_max);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * One pixel x 4 output channels with weights widened at generation time
 * (_conv_common.py pack_wide_weight_rows: int16, blocks of MCU_MM_WIDE_RB rows, inside a
 * block [K4/4 groups][rows][w0, w2, w1, w3], the halfword order of the DSP column format).
 *
 * Where the plan leaves room for one pixel's columns only, each weight is used once per
 * pixel, so widening it in the loop (SXTB16) costs as much as the multiply; stored wide, a
 * group of 4 taps x 4 channels is 1 LDRD of input, 4 LDRD of weights and 8 SMLAD.
 */
#define MCU_MM_WIDE_RB 4

#if MCU_USE_DSP
#define MCU_MM_W1X4                                                                           \
    "ldrd %[xe], %[xo], [%[px]], #8\n\t"                                                      \
    "ldrd %[w0], %[w1], [%[pw]], #8\n\t"                                                      \
    "smlad %[a0], %[w0], %[xe], %[a0]\n\t"                                                    \
    "smlad %[a0], %[w1], %[xo], %[a0]\n\t"                                                    \
    "ldrd %[w0], %[w1], [%[pw]], #8\n\t"                                                      \
    "smlad %[a1], %[w0], %[xe], %[a1]\n\t"                                                    \
    "smlad %[a1], %[w1], %[xo], %[a1]\n\t"                                                    \
    "ldrd %[w0], %[w1], [%[pw]], #8\n\t"                                                      \
    "smlad %[a2], %[w0], %[xe], %[a2]\n\t"                                                    \
    "smlad %[a2], %[w1], %[xo], %[a2]\n\t"                                                    \
    "ldrd %[w0], %[w1], [%[pw]], #8\n\t"                                                      \
    "smlad %[a3], %[w0], %[xe], %[a3]\n\t"                                                    \
    "smlad %[a3], %[w1], %[xo], %[a3]\n\t"

#define MCU_MM_W1X4_OPERANDS                                                                  \
    [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [px] "+r"(px), [pw] "+r"(pw), \
        [xe] "=&r"(xe), [xo] "=&r"(xo), [w0] "=&r"(w0), [w1] "=&r"(w1)
#endif

/* acc[r] += row r of a full block . column, G >= 1 groups. */
MCU_INLINE void mcu_mm_wide_rows1x4(const int16_t *px, int G, const int16_t *pw,
                                    int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if MCU_USE_DSP
    const int16_t *const end = px + 4 * G;
    uint32_t xe, xo, w0, w1;
    if (G & 1) {
        __asm__ volatile(MCU_MM_W1X4 : MCU_MM_W1X4_OPERANDS : : "memory");
    }
    if (G & 2) {
        __asm__ volatile(MCU_MM_W1X4 MCU_MM_W1X4 : MCU_MM_W1X4_OPERANDS : : "memory");
    }
    if (G > 3) {
        /* four groups per iteration: the loop test once per 64 MACs (these loops run where K
         * is large, e.g. 5x5 convolutions, K = 800) */
        __asm__ volatile("1:\n\t" MCU_MM_W1X4 MCU_MM_W1X4 MCU_MM_W1X4 MCU_MM_W1X4
                         "cmp %[px], %[end]\n\t"
                         "bne 1b\n\t"
                         : MCU_MM_W1X4_OPERANDS
                         : [end] "r"(end)
                         : "cc", "memory");
    }
#else
    for (int g = 0; g < G; ++g, px += 4, pw += 16) {
        a0 += pw[0] * px[0] + pw[1] * px[2] + pw[2] * px[1] + pw[3] * px[3];
        a1 += pw[4] * px[0] + pw[5] * px[2] + pw[6] * px[1] + pw[7] * px[3];
        a2 += pw[8] * px[0] + pw[9] * px[2] + pw[10] * px[1] + pw[11] * px[3];
        a3 += pw[12] * px[0] + pw[13] * px[2] + pw[14] * px[1] + pw[15] * px[3];
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* One column (one pixel) x all n_rows channels into out[0 .. n_rows). */
MCU_INLINE void mcu_mm_wide_px1(const int16_t *MCU_RESTRICT col, int K,
                                const int16_t *MCU_RESTRICT wpk, const int32_t *MCU_RESTRICT rq,
                                int n_rows, int mode, int8_t *MCU_RESTRICT out, int32_t out_zp,
                                int32_t act_min, int32_t act_max) {
    const int G = (K + 3) >> 2;
    const int16_t *pw = wpk;
    int c = 0;
    for (; c + MCU_MM_WIDE_RB <= n_rows; c += MCU_MM_WIDE_RB, pw += 16 * G) {
        const int32_t *e = rq + c * MCU_RQ_STRIDE;
        int32_t acc[4] = {e[0], e[MCU_RQ_STRIDE], e[2 * MCU_RQ_STRIDE], e[3 * MCU_RQ_STRIDE]};
        mcu_mm_wide_rows1x4(col, G, pw, acc);
        for (int r = 0; r < 4; ++r) {
            mcu_mm_store(out + c + r, acc[r], e + r * MCU_RQ_STRIDE, mode, out_zp, act_min,
                         act_max);
        }
    }
    /* the last block's n_rows % 4 rows: [G][rows][4], plain multiply-adds */
    const int rows = n_rows - c;
    for (int r = 0; r < rows; ++r) {
        const int32_t *e = rq + (c + r) * MCU_RQ_STRIDE;
        int32_t acc = e[0];
        const int16_t *w = pw + 4 * r;
        for (int g = 0; g < G; ++g, w += 4 * rows) {
            const int16_t *x = col + 4 * g;
#if MCU_USE_DSP
            acc += w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3];
#else
            acc += w[0] * x[0] + w[1] * x[2] + w[2] * x[1] + w[3] * x[3];
#endif
        }
        mcu_mm_store(out + c + r, acc, e, mode, out_zp, act_min, act_max);
    }
}

#endif /* MCU_MATMUL_S8_H */
