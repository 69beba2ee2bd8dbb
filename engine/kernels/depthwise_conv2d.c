/* DEPTHWISE_CONV_2D, int8, any depth multiplier, stride, dilation and explicit padding,
 * per-channel or per-tensor requantisation; bit-exact with TFLite Micro's reference
 * DepthwiseConvPerChannel.
 *
 * Channel by channel, as MCUNet's in-place depthwise: input channel c (strided by C in the
 * HWC tensor) is first copied into the scratch plane, padded with the input zero point, then
 * the output channels c*M .. c*M+M-1 are computed from that contiguous plane with no bounds
 * tests. Because channel c's input bytes are in the plane before any output of channel c is
 * written, the same kernel runs in place when the planner gives the output the input's
 * arena offset (depth multiplier 1: output channel c only overwrites bytes of input
 * channel c). With a single input channel (micro_speech, person_detect's first layer) the
 * input already is a plane; the copy adds the padding so the same branch-free loops apply.
 *
 * Per output channel the work is: requantisation constants computed once (mcu_dw_rq), then
 * one of the plane loops below, chosen by kernel size and stride:
 *   - 3x3 stride 1 and 3x3 stride 2: nine weights in registers, two outputs per iteration
 *     sharing every loaded input word (DSP: SXTB16 + SMLAD / SMLABB); in the DSP build,
 *     channels whose accumulators are provably small take mcu_dw_k3s1_fast / _k3s2_fast,
 *     with a five-instruction requantisation (mcu_dw_rqs: SMMLAR, shift, SSAT);
 *   - any other kernel without dilation, stride 1 or 2 (5x5, 7x7, micro_speech's 10x8), DSP
 *     build: taps in groups of four (the weight rows are zero-padded to a multiple of four),
 *     two outputs per iteration from one word per group;
 *   - anything else: a plain tap loop (literal 5x5 / 7x7 so the compiler unrolls it).
 * Small feature maps, where padding is most of each window, take the channel-group kernel
 * at the end of the file instead (mcu_depthwise_conv2d_hwc_s8: valid taps only).
 *
 * Generation-time contract (tflite_converter/codegen/ops/depthwise_conv2d.py):
 *   - weights re-ordered to [Cout][k_h][MCU_DW_ROW(k_w)]: each channel's taps contiguous,
 *     each kernel row zero-padded to a multiple of 4 taps;
 *   - bias always present, bias[c] - zp_in * sum(w[c]) (padded taps hold zp_in and cancel);
 *   - requantisation multipliers are >= 0 (TFLite's QuantizeMultiplier gives 0 or a value
 *     in [2^30, 2^31)), which mcu_dw_rq relies on;
 *   - scratch: plane_h * plane_w bytes, plane_h = (out_h-1)*stride_h + (k_h-1)*dil_h + 1
 *     (likewise plane_w): opspec.py depthwise_inplace_scratch_bytes. No loop reads past it.
 */
#include "mcu_common.h"
#include "mcu_int4.h"

/* Taps per stored kernel row: k_w rounded up to a multiple of 4 (zero weights). */
#define MCU_DW_ROW(k_w) (((k_w) + 3) & ~3)
/* int4 weights (the *_s4 kernels): the int8 weights of one channel (k_h * MCU_DW_ROW(k_w)) or
 * of one channel group (4 * k_h * k_w) are unpacked into a stack buffer of this many bytes
 * before the int8 loops run on them; the generator refuses larger int4 kernels
 * (codegen/ops/depthwise_conv2d.py). */
#define MCU_DW_S4_MAX 256

/* Packed weight pairs the grouped DSP loop keeps on the stack: k_h * MCU_DW_ROW(k_w) / 2
 * up to this (a 16x16 kernel); larger kernels take the plain loop. */
#define MCU_DW_MAX_PAIRS 128

/* ---------------------------------------------------------------------------------------
 * Requantisation with per-channel constants.
 *
 * TFLite computes RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, m), e) for a
 * right shift e = -shift >= 1. With m >= 0 the saturating case (INT32_MIN * INT32_MIN)
 * cannot happen, and both roundings collapse into one 64-bit add and shift:
 *   SRDHM(acc, m)        = floor((acc*m + 2^30) / 2^31)                 (for either sign)
 *   RDBPOT(s, e)         = floor((s + 2^(e-1) - [s < 0]) / 2^e)
 * and nested floors of divisions by powers of two compose, so
 *   result = floor((acc*m + 2^30 + 2^(30+e) - [acc < 0]*2^31) / 2^(31+e)).
 * ([s < 0] may be replaced by [acc < 0]: they differ only when -2^30 <= acc*m < 0, where
 * s = 0 and both give 0.) The constant is chosen by the accumulator's sign, the sum is one
 * SMLAL, and the division is the high word shifted right by e-1. Channels with shift >= 0
 * (a left shift, rare in depthwise layers) use mcu_requantize_s8. */
typedef struct {
    int32_t mult;
    int32_t high_shift; /* e - 1 */
    int64_t round_pos;  /* 2^30 + 2^(30+e) */
    int64_t round_neg;  /* the same minus 2^31 */
} mcu_dw_rq;

MCU_INLINE mcu_dw_rq mcu_dw_rq_make(int32_t mult, int32_t shift) {
    const int e = -shift; /* callers ensure shift <= -1 */
    mcu_dw_rq r;
    r.mult = mult;
    r.high_shift = e - 1;
    r.round_pos = ((int64_t)1 << 30) + ((int64_t)1 << (30 + e));
    r.round_neg = r.round_pos - ((int64_t)1 << 31);
    return r;
}

MCU_INLINE int8_t mcu_dw_rq_apply(int32_t acc, mcu_dw_rq r, int32_t out_zp, int32_t act_min,
                                  int32_t act_max) {
    const int64_t t = (int64_t)acc * r.mult + (acc < 0 ? r.round_neg : r.round_pos);
    const int32_t v = ((int32_t)(t >> 32) >> r.high_shift) + out_zp;
    return (int8_t)mcu_clamp_i32(v, act_min, act_max);
}

#if MCU_USE_DSP
/* High halfword of `top`, low halfword of `bottom` (PKHTB). */
MCU_INLINE uint32_t mcu_dw_pkhtb(uint32_t top, uint32_t bottom) {
    /* gcc 12 makes AND + UXTH + ORR of the C expression; ACLE has no PKH intrinsic */
    uint32_t r;
    __asm__("pkhtb %0, %1, %2" : "=r"(r) : "r"(top), "r"(bottom));
    return r;
}
/* acc + lo(a)*hi(b) + hi(a)*lo(b) (SMLADX). */
MCU_INLINE int32_t mcu_dw_smladx(uint32_t a, uint32_t b, int32_t acc) {
    return __smladx((int16x2_t)a, (int16x2_t)b, acc);
}
#endif

/* Copy input channel c into the padded plane. */
MCU_INLINE void mcu_dw_fill_plane(const int8_t *input, int in_h, int in_w, int in_c, int c,
                                  int pad_top, int pad_left, int8_t pad, int8_t *plane,
                                  int plane_h, int plane_w) {
    int c_lo = pad_left < plane_w ? pad_left : plane_w;
    int c_hi = in_w + pad_left < plane_w ? in_w + pad_left : plane_w;
    if (c_hi < c_lo) {
        c_hi = c_lo;
    }
    for (int r = 0; r < plane_h; ++r) {
        int8_t *dst = plane + (size_t)r * plane_w;
        const int iy = r - pad_top;
        if (iy < 0 || iy >= in_h) {
            memset(dst, pad, (size_t)plane_w);
            continue;
        }
        if (c_lo > 0) {
            memset(dst, pad, (size_t)c_lo);
        }
        const int8_t *src = input + ((size_t)iy * in_w + (size_t)(c_lo - pad_left)) * in_c + c;
        int x = c_lo;
        if (in_c == 1) {
            memcpy(dst + x, src, (size_t)(c_hi - c_lo));
        } else {
            const int whole_end = c_lo + ((c_hi - c_lo) & ~3);
            for (; x < whole_end; x += 4) {
                const int8_t v0 = src[0], v1 = src[in_c], v2 = src[2 * in_c], v3 = src[3 * in_c];
                dst[x] = v0;
                dst[x + 1] = v1;
                dst[x + 2] = v2;
                dst[x + 3] = v3;
                src += 4 * in_c;
            }
            for (; x < c_hi; ++x) {
                dst[x] = *src;
                src += in_c;
            }
        }
        if (c_hi < plane_w) {
            memset(dst + c_hi, pad, (size_t)(plane_w - c_hi));
        }
    }
}

/* 3x3, no dilation, stride 1. w: the channel's rows of MCU_DW_ROW(3) = 4 taps. */
MCU_INLINE void mcu_dw_plane_3x3_s1(const int8_t *plane, int plane_w, const int8_t *w,
                                    int32_t bias, mcu_dw_rq rq, int8_t *out, int out_h,
                                    int out_w, int out_step, int32_t out_zp, int32_t act_min,
                                    int32_t act_max) {
    const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[4], w4 = w[5], w5 = w[6], w6 = w[8],
                  w7 = w[9], w8 = w[10];
#if MCU_USE_DSP
    /* (w0, w2) pairs for SMLAD against SXTB16's (x0, x2) / (x1, x3) halves of one word */
    const uint32_t p0 = mcu_pack16(w0, w2), p1 = mcu_pack16(w3, w5), p2 = mcu_pack16(w6, w8);
#endif
    for (int oy = 0; oy < out_h; ++oy) {
        const int8_t *r0 = plane + (size_t)oy * plane_w;
        int8_t *o = out + (size_t)oy * out_w * out_step;
        int ox = 0;
#if MCU_USE_DSP
        /* two neighbouring outputs from one word per row: A = x0..x2, B = x1..x3 (the word
         * of the last pair ends at x[out_w], inside the plane's out_w + 2 columns) */
        for (; ox < (out_w & ~1); ox += 2) {
            const int8_t *r = r0 + ox;
            int32_t a = bias, b = bias;
            uint32_t v = mcu_read_u32(r);
            uint32_t e = mcu_sxtb16(v), d = mcu_sxtb16_ror8(v);
            a = mcu_smlad(p0, e, a);
            a = __smlabb(w1, (int32_t)d, a);
            b = mcu_smlad(p0, d, b);
            b = __smlabt(w1, (int32_t)e, b);
            v = mcu_read_u32(r + plane_w);
            e = mcu_sxtb16(v);
            d = mcu_sxtb16_ror8(v);
            a = mcu_smlad(p1, e, a);
            a = __smlabb(w4, (int32_t)d, a);
            b = mcu_smlad(p1, d, b);
            b = __smlabt(w4, (int32_t)e, b);
            v = mcu_read_u32(r + 2 * plane_w);
            e = mcu_sxtb16(v);
            d = mcu_sxtb16_ror8(v);
            a = mcu_smlad(p2, e, a);
            a = __smlabb(w7, (int32_t)d, a);
            b = mcu_smlad(p2, d, b);
            b = __smlabt(w7, (int32_t)e, b);
            o[0] = mcu_dw_rq_apply(a, rq, out_zp, act_min, act_max);
            o[out_step] = mcu_dw_rq_apply(b, rq, out_zp, act_min, act_max);
            o += 2 * out_step;
        }
#endif
        for (; ox < out_w; ++ox) {
            const int8_t *r = r0 + ox;
            const int8_t *s = r + plane_w, *t = s + plane_w;
            int32_t acc = bias + w0 * r[0] + w1 * r[1] + w2 * r[2];
            acc += w3 * s[0] + w4 * s[1] + w5 * s[2];
            acc += w6 * t[0] + w7 * t[1] + w8 * t[2];
            *o = mcu_dw_rq_apply(acc, rq, out_zp, act_min, act_max);
            o += out_step;
        }
    }
}

/* 3x3, no dilation, stride 2. */
MCU_INLINE void mcu_dw_plane_3x3_s2(const int8_t *plane, int plane_w, const int8_t *w,
                                    int32_t bias, mcu_dw_rq rq, int8_t *out, int out_h,
                                    int out_w, int out_step, int32_t out_zp, int32_t act_min,
                                    int32_t act_max) {
    const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[4], w4 = w[5], w5 = w[6], w6 = w[8],
                  w7 = w[9], w8 = w[10];
#if MCU_USE_DSP
    const uint32_t p0 = mcu_pack16(w0, w2), p1 = mcu_pack16(w3, w5), p2 = mcu_pack16(w6, w8);
#endif
    for (int oy = 0; oy < out_h; ++oy) {
        const int8_t *r0 = plane + (size_t)(2 * oy) * plane_w;
        int8_t *o = out + (size_t)oy * out_w * out_step;
        int ox = 0;
#if MCU_USE_DSP
        /* A = x0..x2, B = x2..x4: one word (x0..x3) and one byte (x4) per row; the last
         * pair's byte is x[2*out_w], the plane's last column (2*out_w + 1 columns) */
        for (; ox < (out_w & ~1); ox += 2) {
            const int8_t *r = r0 + 2 * ox;
            int32_t a = bias, b = bias;
            uint32_t v = mcu_read_u32(r);
            uint32_t e = mcu_sxtb16(v), d = mcu_sxtb16_ror8(v);
            a = mcu_smlad(p0, e, a);
            a = __smlabb(w1, (int32_t)d, a);
            b = __smlabt(w0, (int32_t)e, b);
            b = __smlabt(w1, (int32_t)d, b);
            b += w2 * r[4];
            v = mcu_read_u32(r + plane_w);
            e = mcu_sxtb16(v);
            d = mcu_sxtb16_ror8(v);
            a = mcu_smlad(p1, e, a);
            a = __smlabb(w4, (int32_t)d, a);
            b = __smlabt(w3, (int32_t)e, b);
            b = __smlabt(w4, (int32_t)d, b);
            b += w5 * r[plane_w + 4];
            v = mcu_read_u32(r + 2 * plane_w);
            e = mcu_sxtb16(v);
            d = mcu_sxtb16_ror8(v);
            a = mcu_smlad(p2, e, a);
            a = __smlabb(w7, (int32_t)d, a);
            b = __smlabt(w6, (int32_t)e, b);
            b = __smlabt(w7, (int32_t)d, b);
            b += w8 * r[2 * plane_w + 4];
            o[0] = mcu_dw_rq_apply(a, rq, out_zp, act_min, act_max);
            o[out_step] = mcu_dw_rq_apply(b, rq, out_zp, act_min, act_max);
            o += 2 * out_step;
        }
#endif
        for (; ox < out_w; ++ox) {
            const int8_t *r = r0 + 2 * ox;
            const int8_t *s = r + plane_w, *t = s + plane_w;
            int32_t acc = bias + w0 * r[0] + w1 * r[1] + w2 * r[2];
            acc += w3 * s[0] + w4 * s[1] + w5 * s[2];
            acc += w6 * t[0] + w7 * t[1] + w8 * t[2];
            *o = mcu_dw_rq_apply(acc, rq, out_zp, act_min, act_max);
            o += out_step;
        }
    }
}

/* One output from the plane, taps k_h x k_w (dilated), rows stored MCU_DW_ROW(k_w) apart. */
MCU_INLINE int32_t mcu_dw_plane_dot(const int8_t *r, int plane_w, const int8_t *w, int k_h,
                                    int k_w, int dil_h, int dil_w, int32_t acc) {
    for (int ky = 0; ky < k_h; ++ky) {
        const int8_t *row = r + (size_t)(ky * dil_h) * plane_w;
        const int8_t *wk = w + ky * MCU_DW_ROW(k_w);
        for (int kx = 0; kx < k_w; ++kx) {
            acc += (int32_t)wk[kx] * (int32_t)row[kx * dil_w];
        }
    }
    return acc;
}

/* ---------------------------------------------------------------------------------------
 * Short requantisation for the 3x3 plane loops: five instructions an output (DSP).
 *
 * mcu_requant_fast (mcu_common.h: SMMLAR of 2*acc with add + (acc >> 31), then >> e; the
 * proof is engine/quantization.py fast_requant's) with add = mcu_requant_rnd(e, zp_out) =
 * zp_out * 2^e + 2^(e-1), then saturated to int8 (SSAT) and clamped to the activation range.
 * The generator does not bound this kernel's accumulators, so the preconditions are checked
 * here per channel, conservatively: mcu_dw_rqs_usable demands a right shift e in [1, 22] and
 * |acc| < 2^29 (bounded from the bias and the tap count: |w*x| <= 2^14), so 2*acc and
 * x + add - 1 (|x| <= |acc|, |add| < 2^29 + 2^21) stay inside int32; TFLite's multipliers
 * are >= 0 (the generator refuses others). */
typedef struct {
    int32_t mult;
    int32_t add; /* mcu_requant_rnd(e, zp_out) */
    int32_t e;
} mcu_dw_rqs;

#define MCU_DW_RQS_MAX_E 22

MCU_INLINE int mcu_dw_rqs_usable(int32_t bias, int taps, int32_t shift) {
    const int64_t bound = (bias < 0 ? -(int64_t)bias : (int64_t)bias) + ((int64_t)taps << 14);
    return shift <= -1 && shift >= -MCU_DW_RQS_MAX_E && bound < ((int64_t)1 << 29);
}

MCU_INLINE mcu_dw_rqs mcu_dw_rqs_make(int32_t mult, int32_t shift, int32_t out_zp) {
    mcu_dw_rqs q;
    q.mult = mult;
    q.e = -shift;
    q.add = mcu_requant_rnd(q.e, out_zp);
    return q;
}

/* The requantised value before the activation clamp (any int32). */
MCU_INLINE int32_t mcu_dw_rqs_apply(int32_t acc, mcu_dw_rqs q) {
    return mcu_requant_fast(acc * 2, acc, q.mult, q.add, q.e, MCU_RQF_FUSED);
}

/* Clamp to the activation range; `full` (a literal at each call site): the range is all of
 * int8, one SSAT. */
MCU_INLINE int8_t mcu_dw_rqs_clamp(int32_t v, int full, int32_t act_min, int32_t act_max) {
#if MCU_USE_DSP
    v = __ssat(v, 8);
    if (!full) {
        v = v < act_min ? act_min : v;
        v = v > act_max ? act_max : v;
    }
    return (int8_t)v;
#else
    (void)full;
    return (int8_t)mcu_clamp_i32(v, act_min, act_max);
#endif
}

#if MCU_USE_DSP
/* Bytes 1 and 3 sign-extended into halfwords in one SXTB16 (gcc emits ROR + SXTB16 for
 * the C rotation in mcu_sxtb16_ror8). */
MCU_INLINE uint32_t mcu_dw_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* The nine 3x3 weights (rows of MCU_DW_ROW(3) = 4 taps) as five registers: the outer taps
 * of each row as SMLAD pairs (w0, w2), the middle taps as halves (w1 | w4 << 16), w7. */
typedef struct {
    uint32_t p0, p1, p2, mid, w7;
} mcu_dw_k3;

MCU_INLINE mcu_dw_k3 mcu_dw_k3_make(const int8_t *w) {
    mcu_dw_k3 k;
    k.p0 = mcu_pack16(w[0], w[2]);
    k.p1 = mcu_pack16(w[4], w[6]);
    k.p2 = mcu_pack16(w[8], w[10]);
    k.mid = mcu_pack16(w[1], w[5]);
    k.w7 = (uint32_t)(int32_t)w[9];
    return k;
}

/* 3x3 stride 1, short requantisation: two outputs per iteration from one word per row,
 * A = x0..x2, B = x1..x3 of the word x0..x3 (e = (x0, x2), d = (x1, x3)):
 *   A += p.e + mid.d_lo      B += p.d + mid.e_hi
 * An odd last column takes the plain tap loop. `full`: literal, see mcu_dw_rqs_clamp. */
MCU_INLINE void mcu_dw_k3s1_fast(const int8_t *plane, int plane_w, const int8_t *w,
                                 int32_t bias, mcu_dw_rqs q, int8_t *out, int out_h,
                                 int out_w, int out_step, int full, int32_t act_min,
                                 int32_t act_max) {
    const mcu_dw_k3 k = mcu_dw_k3_make(w);
    const int pairs = out_w >> 1;
    for (int oy = 0; oy < out_h; ++oy) {
        const int8_t *r = plane + (size_t)oy * plane_w;
        int8_t *o = out + (size_t)oy * out_w * out_step;
        for (const int8_t *r_end = r + 2 * pairs; r != r_end; r += 2) {
            uint32_t v = mcu_read_u32(r);
            uint32_t e = mcu_sxtb16(v), d = mcu_dw_sxtb16_ror8(v);
            int32_t a = mcu_smlad(k.p0, e, bias);
            int32_t b = mcu_smlad(k.p0, d, bias);
            a = __smlabb((int32_t)k.mid, (int32_t)d, a);
            b = __smlabt((int32_t)k.mid, (int32_t)e, b);
            v = mcu_read_u32(r + plane_w);
            e = mcu_sxtb16(v);
            d = mcu_dw_sxtb16_ror8(v);
            a = mcu_smlad(k.p1, e, a);
            b = mcu_smlad(k.p1, d, b);
            a = __smlatb((int32_t)k.mid, (int32_t)d, a);
            b = __smlatt((int32_t)k.mid, (int32_t)e, b);
            v = mcu_read_u32(r + 2 * plane_w);
            e = mcu_sxtb16(v);
            d = mcu_dw_sxtb16_ror8(v);
            a = mcu_smlad(k.p2, e, a);
            b = mcu_smlad(k.p2, d, b);
            a = __smlabb((int32_t)k.w7, (int32_t)d, a);
            b = __smlabt((int32_t)k.w7, (int32_t)e, b);
            o[0] = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(a, q), full, act_min, act_max);
            o[out_step] = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(b, q), full, act_min, act_max);
            o += 2 * out_step;
        }
        if ((out_w & 1) && out_w > 1) {
            /* r is at the last column's window: it is the B output of the word one column
             * to the left (columns out_w-2 .. out_w+1 = plane_w-1, inside the row) */
            const int8_t *rl = r - 1;
            uint32_t v = mcu_read_u32(rl);
            int32_t b = mcu_smlad(k.p0, mcu_dw_sxtb16_ror8(v), bias);
            b = __smlabt((int32_t)k.mid, (int32_t)mcu_sxtb16(v), b);
            v = mcu_read_u32(rl + plane_w);
            b = mcu_smlad(k.p1, mcu_dw_sxtb16_ror8(v), b);
            b = __smlatt((int32_t)k.mid, (int32_t)mcu_sxtb16(v), b);
            v = mcu_read_u32(rl + 2 * plane_w);
            b = mcu_smlad(k.p2, mcu_dw_sxtb16_ror8(v), b);
            b = __smlabt((int32_t)k.w7, (int32_t)mcu_sxtb16(v), b);
            *o = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(b, q), full, act_min, act_max);
        } else if (out_w & 1) { /* a single column: r is at its window */
            const int32_t b = mcu_dw_plane_dot(r, plane_w, w, 3, 3, 1, 1, bias);
            *o = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(b, q), full, act_min, act_max);
        }
    }
}

/* 3x3 stride 2, short requantisation: A = x0..x2, B = x2..x4 from the word x0..x3 and the
 * byte x4 (the last pair's x4 is x[2*out_w], the plane's last column; an odd last column
 * takes the plain tap loop). */
MCU_INLINE void mcu_dw_k3s2_fast(const int8_t *plane, int plane_w, const int8_t *w,
                                 int32_t bias, mcu_dw_rqs q, int8_t *out, int out_h,
                                 int out_w, int out_step, int full, int32_t act_min,
                                 int32_t act_max) {
    const mcu_dw_k3 k = mcu_dw_k3_make(w);
    const int pairs = out_w >> 1;
    for (int oy = 0; oy < out_h; ++oy) {
        const int8_t *r = plane + (size_t)(2 * oy) * plane_w;
        int8_t *o = out + (size_t)oy * out_w * out_step;
        for (const int8_t *r_end = r + 4 * pairs; r != r_end; r += 4) {
            uint32_t v = mcu_read_u32(r);
            uint32_t e = mcu_sxtb16(v), d = mcu_dw_sxtb16_ror8(v);
            int32_t a = mcu_smlad(k.p0, e, bias);
            int32_t b = __smlatb((int32_t)k.p0, (int32_t)r[4], bias);
            a = __smlabb((int32_t)k.mid, (int32_t)d, a);
            b = __smlabt((int32_t)k.p0, (int32_t)e, b);
            b = __smlabt((int32_t)k.mid, (int32_t)d, b);
            v = mcu_read_u32(r + plane_w);
            e = mcu_sxtb16(v);
            d = mcu_dw_sxtb16_ror8(v);
            a = mcu_smlad(k.p1, e, a);
            b = __smlatb((int32_t)k.p1, (int32_t)r[plane_w + 4], b);
            a = __smlatb((int32_t)k.mid, (int32_t)d, a);
            b = __smlabt((int32_t)k.p1, (int32_t)e, b);
            b = __smlatt((int32_t)k.mid, (int32_t)d, b);
            v = mcu_read_u32(r + 2 * plane_w);
            e = mcu_sxtb16(v);
            d = mcu_dw_sxtb16_ror8(v);
            a = mcu_smlad(k.p2, e, a);
            b = __smlatb((int32_t)k.p2, (int32_t)r[2 * plane_w + 4], b);
            a = __smlabb((int32_t)k.w7, (int32_t)d, a);
            b = __smlabt((int32_t)k.p2, (int32_t)e, b);
            b = __smlabt((int32_t)k.w7, (int32_t)d, b);
            o[0] = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(a, q), full, act_min, act_max);
            o[out_step] = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(b, q), full, act_min, act_max);
            o += 2 * out_step;
        }
        if (out_w & 1) {
            const int32_t a = mcu_dw_plane_dot(r, plane_w, w, 3, 3, 1, 1, bias);
            *o = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(a, q), full, act_min, act_max);
        }
    }
}
#endif

/* Any kernel size, stride and dilation. Called with literal k_h/k_w for 5x5 and 7x7 so that
 * the compiler can unroll the tap loops. `fast`: rq is valid (shift < 0); otherwise
 * mcu_requantize_s8 with (mult, shift). */
MCU_INLINE void mcu_dw_plane_generic(const int8_t *plane, int plane_w, const int8_t *w,
                                     int k_h, int k_w, int dil_h, int dil_w, int32_t bias,
                                     int fast, mcu_dw_rq rq, int32_t mult, int32_t shift,
                                     int stride_h, int stride_w, int8_t *out, int out_h,
                                     int out_w, int out_step, int32_t out_zp, int32_t act_min,
                                     int32_t act_max) {
    for (int oy = 0; oy < out_h; ++oy) {
        const int8_t *r0 = plane + (size_t)(oy * stride_h) * plane_w;
        int8_t *o = out + (size_t)oy * out_w * out_step;
        for (int ox = 0; ox < out_w; ++ox) {
            const int32_t acc = mcu_dw_plane_dot(r0 + (size_t)ox * stride_w, plane_w, w, k_h,
                                                 k_w, dil_h, dil_w, bias);
            *o = fast ? mcu_dw_rq_apply(acc, rq, out_zp, act_min, act_max)
                      : mcu_requantize_s8(acc, mult, shift, out_zp, act_min, act_max);
            o += out_step;
        }
    }
}

#if MCU_USE_DSP
/* Any kernel without dilation, stride_w 1 or 2, DSP: each stored kernel row is groups of
 * four taps t..t+3 against one input word x[t..t+3]; SXTB16 splits it into e = (x0, x2) and
 * d = (x1, x3), the weights are pre-split the same way into pe = (w0, w2), po = (w1, w3).
 * Output A (window at x) and output B (window at x + stride) come from the same words:
 *   A += pe.e + po.d
 *   stride 1: B += pe.d + po.(x2, x4)      stride 2: B += pe.(x2, x4) + po.(x3, x5)
 * where (x2, x4) / (x3, x5) are PKHTB of this group's and the next group's halves, taken by
 * SMLADX in swapped order. Padded taps have zero weights, so the bytes they read (up to four
 * past the window, the next group's word) only need to exist: a pair is computed this way
 * only where those bytes lie inside the plane, the rest by the plain tap loop. */
MCU_INLINE void mcu_dw_plane_grouped(const int8_t *plane, int plane_bytes, int plane_w,
                                     const int8_t *w, int k_h, int k_w, int32_t bias,
                                     mcu_dw_rq rq, int stride_h, int stride_w, int8_t *out,
                                     int out_h, int out_w, int out_step, int32_t out_zp,
                                     int32_t act_min, int32_t act_max) {
    const int row = MCU_DW_ROW(k_w), groups = row >> 2;
    uint32_t wp[MCU_DW_MAX_PAIRS];
    for (int i = 0; i < k_h * groups; ++i) {
        const uint32_t v = mcu_read_u32(w + 4 * i);
        wp[2 * i] = mcu_sxtb16(v);
        wp[2 * i + 1] = mcu_sxtb16_ror8(v);
    }
    for (int oy = 0; oy < out_h; ++oy) {
        const int8_t *r0 = plane + (size_t)(oy * stride_h) * plane_w;
        int8_t *o = out + (size_t)oy * out_w * out_step;
        /* bytes of the plane from the start of this window's last row on */
        const int room = plane_bytes - (oy * stride_h + k_h - 1) * plane_w;
        int ox = 0;
        for (; ox + 1 < out_w && ox * stride_w + row + 4 <= room; ox += 2) {
            const int8_t *r = r0 + ox * stride_w;
            const uint32_t *wq = wp;
            int32_t a = bias, b = bias;
            for (int ky = 0; ky < k_h; ++ky) {
                const int8_t *x = r + (size_t)ky * plane_w;
                uint32_t v = mcu_read_u32(x);
                uint32_t e = mcu_sxtb16(v), d = mcu_sxtb16_ror8(v);
                for (int g = 0; g < groups; ++g) {
                    v = mcu_read_u32(x + 4 * (g + 1));
                    const uint32_t en = mcu_sxtb16(v), dn = mcu_sxtb16_ror8(v);
                    const uint32_t pe = wq[0], po = wq[1];
                    wq += 2;
                    a = mcu_smlad(pe, e, a);
                    a = mcu_smlad(po, d, a);
                    if (stride_w == 1) {
                        b = mcu_smlad(pe, d, b);
                        b = mcu_dw_smladx(po, mcu_dw_pkhtb(e, en), b);
                    } else {
                        b = mcu_dw_smladx(pe, mcu_dw_pkhtb(e, en), b);
                        b = mcu_dw_smladx(po, mcu_dw_pkhtb(d, dn), b);
                    }
                    e = en;
                    d = dn;
                }
            }
            o[0] = mcu_dw_rq_apply(a, rq, out_zp, act_min, act_max);
            o[out_step] = mcu_dw_rq_apply(b, rq, out_zp, act_min, act_max);
            o += 2 * out_step;
        }
        for (; ox < out_w; ++ox) {
            const int32_t acc = mcu_dw_plane_dot(r0 + (size_t)ox * stride_w, plane_w, w, k_h,
                                                 k_w, 1, 1, bias);
            *o = mcu_dw_rq_apply(acc, rq, out_zp, act_min, act_max);
            o += out_step;
        }
    }
}
#endif

/* One output channel from the padded plane: picks the loop (see the top of the file). */
MCU_INLINE void mcu_dw_channel(const int8_t *plane, int plane_h, int plane_w, const int8_t *w,
                               int k_h, int k_w, int stride_h, int stride_w, int dil_h,
                               int dil_w, int32_t bias_c, int32_t mult_c, int32_t shift_c,
                               int8_t *out, int out_h, int out_w, int out_step, int32_t out_zp,
                               int32_t act_min, int32_t act_max) {
    const int fast = shift_c < 0;
    const int undilated = dil_h == 1 && dil_w == 1;
    const int k3 = fast && undilated && k_h == 3 && k_w == 3;
    const mcu_dw_rq rq = mcu_dw_rq_make(mult_c, fast ? shift_c : -1);
#if MCU_USE_DSP
    const int ps = plane_h * plane_w;
    const int grouped = fast && undilated && k_h * MCU_DW_ROW(k_w) / 2 <= MCU_DW_MAX_PAIRS;
#else
    (void)plane_h;
#endif
    /* a single output row (the band kernel) reads rows 0..k_h-1 whatever stride_h is */
#if MCU_USE_DSP
    if (k3 && mcu_dw_rqs_usable(bias_c, 9, shift_c) &&
        (stride_h == stride_w || out_h == 1) && (stride_w == 1 || stride_w == 2)) {
        const mcu_dw_rqs q = mcu_dw_rqs_make(mult_c, shift_c, out_zp);
        /* the activation clamp as a literal: all of int8 (ReLU6 ranges usually are) is one
         * SSAT an output */
        const int full = act_min == -128 && act_max == 127;
        if (stride_w == 1 && full) {
            mcu_dw_k3s1_fast(plane, plane_w, w, bias_c, q, out, out_h, out_w, out_step, 1,
                             -128, 127);
        } else if (stride_w == 1) {
            mcu_dw_k3s1_fast(plane, plane_w, w, bias_c, q, out, out_h, out_w, out_step, 0,
                             act_min, act_max);
        } else if (full) {
            mcu_dw_k3s2_fast(plane, plane_w, w, bias_c, q, out, out_h, out_w, out_step, 1,
                             -128, 127);
        } else {
            mcu_dw_k3s2_fast(plane, plane_w, w, bias_c, q, out, out_h, out_w, out_step, 0,
                             act_min, act_max);
        }
        return;
    }
#endif
    if (k3 && stride_w == 1 && (stride_h == 1 || out_h == 1)) {
        mcu_dw_plane_3x3_s1(plane, plane_w, w, bias_c, rq, out, out_h, out_w, out_step, out_zp,
                            act_min, act_max);
    } else if (k3 && stride_w == 2 && (stride_h == 2 || out_h == 1)) {
        mcu_dw_plane_3x3_s2(plane, plane_w, w, bias_c, rq, out, out_h, out_w, out_step, out_zp,
                            act_min, act_max);
#if MCU_USE_DSP
    } else if (grouped && k_h == k_w && (k_w == 5 || k_w == 7) &&
               (stride_w == 1 || stride_w == 2)) {
        /* MCUNet's kernels with literal sizes and stride: the group loops unroll and the
         * stride test folds (a run-time stride_w in the inner loop costs ~2x) */
        if (k_w == 5 && stride_w == 1) {
            mcu_dw_plane_grouped(plane, ps, plane_w, w, 5, 5, bias_c, rq, stride_h, 1, out,
                                 out_h, out_w, out_step, out_zp, act_min, act_max);
        } else if (k_w == 5) {
            mcu_dw_plane_grouped(plane, ps, plane_w, w, 5, 5, bias_c, rq, stride_h, 2, out,
                                 out_h, out_w, out_step, out_zp, act_min, act_max);
        } else if (stride_w == 1) {
            mcu_dw_plane_grouped(plane, ps, plane_w, w, 7, 7, bias_c, rq, stride_h, 1, out,
                                 out_h, out_w, out_step, out_zp, act_min, act_max);
        } else {
            mcu_dw_plane_grouped(plane, ps, plane_w, w, 7, 7, bias_c, rq, stride_h, 2, out,
                                 out_h, out_w, out_step, out_zp, act_min, act_max);
        }
    } else if (grouped && stride_w == 2) {
        mcu_dw_plane_grouped(plane, ps, plane_w, w, k_h, k_w, bias_c, rq, stride_h, 2, out,
                             out_h, out_w, out_step, out_zp, act_min, act_max);
    } else if (grouped && stride_w == 1) {
        mcu_dw_plane_grouped(plane, ps, plane_w, w, k_h, k_w, bias_c, rq, stride_h, 1, out,
                             out_h, out_w, out_step, out_zp, act_min, act_max);
#endif
    } else if (undilated && k_h == 5 && k_w == 5) {
        mcu_dw_plane_generic(plane, plane_w, w, 5, 5, 1, 1, bias_c, fast, rq, mult_c, shift_c,
                             stride_h, stride_w, out, out_h, out_w, out_step, out_zp, act_min,
                             act_max);
    } else if (undilated && k_h == 7 && k_w == 7) {
        mcu_dw_plane_generic(plane, plane_w, w, 7, 7, 1, 1, bias_c, fast, rq, mult_c, shift_c,
                             stride_h, stride_w, out, out_h, out_w, out_step, out_zp, act_min,
                             act_max);
    } else {
        mcu_dw_plane_generic(plane, plane_w, w, k_h, k_w, dil_h, dil_w, bias_c, fast, rq, mult_c,
                             shift_c, stride_h, stride_w, out, out_h, out_w, out_step, out_zp,
                             act_min, act_max);
    }
}

MCU_KERNEL void mcu_depthwise_conv2d_s8(const int8_t *input, int in_h, int in_w, int in_c,
                                        int depth_mult, int k_h, int k_w, int stride_h,
                                        int stride_w, int dil_h, int dil_w, int pad_top,
                                        int pad_left, int32_t in_zp, const int8_t *weights,
                                        const int32_t *bias, const int32_t *mult,
                                        const int32_t *shift, int per_channel, int8_t *output,
                                        int out_h, int out_w, int32_t out_zp, int32_t act_min,
                                        int32_t act_max, int8_t *plane) {
    const int out_c = in_c * depth_mult;
    const int plane_h = (out_h - 1) * stride_h + (k_h - 1) * dil_h + 1;
    const int plane_w = (out_w - 1) * stride_w + (k_w - 1) * dil_w + 1;
    const int taps = k_h * MCU_DW_ROW(k_w);
    for (int c = 0; c < in_c; ++c) {
        mcu_dw_fill_plane(input, in_h, in_w, in_c, c, pad_top, pad_left, (int8_t)in_zp, plane,
                          plane_h, plane_w);
        for (int m = 0; m < depth_mult; ++m) {
            const int oc = c * depth_mult + m;
            const int q = per_channel ? oc : 0;
            mcu_dw_channel(plane, plane_h, plane_w, weights + (size_t)oc * taps, k_h, k_w,
                           stride_h, stride_w, dil_h, dil_w, bias[oc], mult[q], shift[q],
                           output + oc, out_h, out_w, out_c, out_zp, act_min, act_max);
        }
    }
}

/* The same on int4 weights (w4: the [Cout][k_h][MCU_DW_ROW(k_w)] layout packed two a byte,
 * tflite_converter/int4.py): each output channel's taps are unpacked before its plane loop. */
MCU_KERNEL void mcu_depthwise_conv2d_s4(const int8_t *input, int in_h, int in_w, int in_c,
                                        int depth_mult, int k_h, int k_w, int stride_h,
                                        int stride_w, int dil_h, int dil_w, int pad_top,
                                        int pad_left, int32_t in_zp, const uint8_t *w4,
                                        const int32_t *bias, const int32_t *mult,
                                        const int32_t *shift, int per_channel, int8_t *output,
                                        int out_h, int out_w, int32_t out_zp, int32_t act_min,
                                        int32_t act_max, int8_t *plane) {
    const int out_c = in_c * depth_mult;
    const int plane_h = (out_h - 1) * stride_h + (k_h - 1) * dil_h + 1;
    const int plane_w = (out_w - 1) * stride_w + (k_w - 1) * dil_w + 1;
    const int taps = k_h * MCU_DW_ROW(k_w);
    uint32_t w_words[MCU_DW_S4_MAX / 4]; /* word aligned: the DSP loops load words */
    int8_t *w = (int8_t *)w_words;
    for (int c = 0; c < in_c; ++c) {
        mcu_dw_fill_plane(input, in_h, in_w, in_c, c, pad_top, pad_left, (int8_t)in_zp, plane,
                          plane_h, plane_w);
        for (int m = 0; m < depth_mult; ++m) {
            const int oc = c * depth_mult + m;
            const int q = per_channel ? oc : 0;
            mcu_s4_unpack(w4 + (size_t)oc * (size_t)(taps / 2), taps, w);
            mcu_dw_channel(plane, plane_h, plane_w, w, k_h, k_w, stride_h, stride_w, dil_h,
                           dil_w, bias[oc], mult[q], shift[q], output + oc, out_h, out_w, out_c,
                           out_zp, act_min, act_max);
        }
    }
}

/* A single input channel out of place (micro_speech's and person_detect's first layers):
 * the input is one plane already, so only a band of it is padded at a time, the rows one
 * output row reads: band = ((k_h-1)*dil_h + 1) x plane_w bytes of scratch
 * (opspec.py depthwise_band_bytes), far less than the whole plane. */
MCU_KERNEL void mcu_depthwise_conv2d_c1_s8(const int8_t *input, int in_h, int in_w,
                                           int depth_mult, int k_h, int k_w, int stride_h,
                                           int stride_w, int dil_h, int dil_w, int pad_top,
                                           int pad_left, int32_t in_zp, const int8_t *weights,
                                           const int32_t *bias, const int32_t *mult,
                                           const int32_t *shift, int per_channel,
                                           int8_t *output, int out_h, int out_w,
                                           int32_t out_zp, int32_t act_min, int32_t act_max,
                                           int8_t *band) {
    const int band_h = (k_h - 1) * dil_h + 1;
    const int plane_w = (out_w - 1) * stride_w + (k_w - 1) * dil_w + 1;
    const int taps = k_h * MCU_DW_ROW(k_w);
    for (int oy = 0; oy < out_h; ++oy) {
        mcu_dw_fill_plane(input, in_h, in_w, 1, 0, pad_top - oy * stride_h, pad_left,
                          (int8_t)in_zp, band, band_h, plane_w);
        int8_t *row = output + (size_t)oy * out_w * depth_mult;
        for (int m = 0; m < depth_mult; ++m) {
            const int q = per_channel ? m : 0;
            mcu_dw_channel(band, band_h, plane_w, weights + (size_t)m * taps, k_h, k_w, 1,
                           stride_w, dil_h, dil_w, bias[m], mult[q], shift[q], row + m, 1,
                           out_w, depth_mult, out_zp, act_min, act_max);
        }
    }
}

/* The same on int4 weights (packed as for mcu_depthwise_conv2d_s4); the generator also runs
 * it where the int8 model would take the four-channel band kernel, whose band it fits. */
MCU_KERNEL void mcu_depthwise_conv2d_c1_s4(const int8_t *input, int in_h, int in_w,
                                           int depth_mult, int k_h, int k_w, int stride_h,
                                           int stride_w, int dil_h, int dil_w, int pad_top,
                                           int pad_left, int32_t in_zp, const uint8_t *w4,
                                           const int32_t *bias, const int32_t *mult,
                                           const int32_t *shift, int per_channel,
                                           int8_t *output, int out_h, int out_w,
                                           int32_t out_zp, int32_t act_min, int32_t act_max,
                                           int8_t *band) {
    const int band_h = (k_h - 1) * dil_h + 1;
    const int plane_w = (out_w - 1) * stride_w + (k_w - 1) * dil_w + 1;
    const int taps = k_h * MCU_DW_ROW(k_w);
    uint32_t w_words[MCU_DW_S4_MAX / 4]; /* word aligned: the DSP loops load words */
    int8_t *w = (int8_t *)w_words;
    for (int oy = 0; oy < out_h; ++oy) {
        mcu_dw_fill_plane(input, in_h, in_w, 1, 0, pad_top - oy * stride_h, pad_left,
                          (int8_t)in_zp, band, band_h, plane_w);
        int8_t *row = output + (size_t)oy * out_w * depth_mult;
        for (int m = 0; m < depth_mult; ++m) {
            const int q = per_channel ? m : 0;
            mcu_s4_unpack(w4 + (size_t)m * (size_t)(taps / 2), taps, w);
            mcu_dw_channel(band, band_h, plane_w, w, k_h, k_w, 1, stride_w, dil_h, dil_w,
                           bias[m], mult[q], shift[q], row + m, 1, out_w, depth_mult, out_zp,
                           act_min, act_max);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * The band kernel for four output channels at a time (micro_speech's 10x8 layer, depth
 * multiplier 8): one input channel, depth multiplier a multiple of 4, k_w a multiple of 4,
 * no dilation. Each band word of four taps is loaded and sign-extended once (SXTB16 gives
 * taps 0,2 and, rotated, taps 1,3) and serves four channels, whose weights are stored
 * pre-widened to int16 pairs in that same order, so a tap pair costs one SMLAD and a weight
 * load (LDRD of two pairs): ~15 instructions per 16 multiply-accumulates instead of
 * re-reading and re-widening the band once per channel.
 *
 * Weights (tflite_converter/codegen/ops/depthwise_conv2d.py band4_weights): words of two
 * int16 taps, [depth_mult/4][k_h][k_w/4][4 channels][taps (0,2), (1,3)], low half first; bias folded with zp_in as for the
 * other band kernel (the band pads with zp_in). Scratch: depthwise_band_bytes. */
#define MCU_DW_BAND4 4

/* One output row of one group of four channels. `full`/`rqs` are literals at each call. */
MCU_INLINE void mcu_dw_band4_row(const int8_t *band, int plane_w, const uint32_t *wg, int k_h,
                                 int k_w, int stride_w, const int32_t *bias,
                                 const int32_t *mult, const int32_t *shift, int per_channel,
                                 int8_t *out, int out_w, int out_step, int32_t out_zp,
                                 int32_t act_min, int32_t act_max, int rqs, int full) {
    mcu_dw_rqs q[MCU_DW_BAND4];
    if (rqs) {
        for (int j = 0; j < MCU_DW_BAND4; ++j) {
            const int k = per_channel ? j : 0;
            q[j] = mcu_dw_rqs_make(mult[k], shift[k], out_zp);
        }
    }
    const int groups = k_w / 4;
    for (int ox = 0; ox < out_w; ++ox) {
        int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
        const int8_t *row = band + (size_t)ox * stride_w;
#if MCU_USE_DSP
        if (k_w == 8) {
            /* micro_speech's width: both band words of a kernel row in one loop body, the
             * accumulators, band row and weights in registers (gcc spills and re-derives
             * addresses here: ~59 instructions a kernel row against these 33) */
            const uint32_t *w = wg;
            int n = k_h;
            uint32_t x, t, w0, w1;
#define MCU_DW_B4_QUAD(OFF)                                                                   \
    "ldr %[x], [%[row], #" OFF "]\n\t"                                                       \
    "sxtb16 %[t], %[x]\n\t"                                                                 \
    "sxtb16 %[x], %[x], ror #8\n\t"                                                         \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t"                                                     \
    "smlad %[a0], %[t], %[w0], %[a0]\n\t"                                                   \
    "smlad %[a0], %[x], %[w1], %[a0]\n\t"                                                   \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t"                                                     \
    "smlad %[a1], %[t], %[w0], %[a1]\n\t"                                                   \
    "smlad %[a1], %[x], %[w1], %[a1]\n\t"                                                   \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t"                                                     \
    "smlad %[a2], %[t], %[w0], %[a2]\n\t"                                                   \
    "smlad %[a2], %[x], %[w1], %[a2]\n\t"                                                   \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t"                                                     \
    "smlad %[a3], %[t], %[w0], %[a3]\n\t"                                                   \
    "smlad %[a3], %[x], %[w1], %[a3]\n\t"
            __asm__ volatile("1:\n\t" MCU_DW_B4_QUAD("0") MCU_DW_B4_QUAD("4")
                             "add %[row], %[row], %[pw]\n\t"
                             "subs %[n], %[n], #1\n\t"
                             "bne 1b\n\t"
                             : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
                               [row] "+r"(row), [w] "+r"(w), [n] "+r"(n), [x] "=&r"(x),
                               [t] "=&r"(t), [w0] "=&r"(w0), [w1] "=&r"(w1)
                             : [pw] "r"(plane_w)
                             : "cc", "memory");
#undef MCU_DW_B4_QUAD
        } else
#endif
        {
            const uint32_t *w = wg;
            for (int ky = 0; ky < k_h; ++ky) {
                for (int g = 0; g < groups; ++g) {
                    const uint32_t x = mcu_read_u32(row + 4 * g);
                    const uint32_t xe = mcu_sxtb16(x);      /* taps 0, 2 */
                    const uint32_t xo = mcu_sxtb16_ror8(x); /* taps 1, 3 */
                    a0 = mcu_smlad(xe, w[0], a0);
                    a0 = mcu_smlad(xo, w[1], a0);
                    a1 = mcu_smlad(xe, w[2], a1);
                    a1 = mcu_smlad(xo, w[3], a1);
                    a2 = mcu_smlad(xe, w[4], a2);
                    a2 = mcu_smlad(xo, w[5], a2);
                    a3 = mcu_smlad(xe, w[6], a3);
                    a3 = mcu_smlad(xo, w[7], a3);
                    w += 8;
                }
                row += plane_w;
            }
        }
        int8_t *o = out + (size_t)ox * out_step;
        if (rqs) {
            o[0] = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(a0, q[0]), full, act_min, act_max);
            o[1] = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(a1, q[1]), full, act_min, act_max);
            o[2] = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(a2, q[2]), full, act_min, act_max);
            o[3] = mcu_dw_rqs_clamp(mcu_dw_rqs_apply(a3, q[3]), full, act_min, act_max);
        } else {
            const int32_t acc[MCU_DW_BAND4] = {a0, a1, a2, a3};
            for (int j = 0; j < MCU_DW_BAND4; ++j) {
                const int k = per_channel ? j : 0;
                o[j] = mcu_requantize_s8(acc[j], mult[k], shift[k], out_zp, act_min, act_max);
            }
        }
    }
}

MCU_KERNEL void mcu_depthwise_conv2d_c1g4_s8(const int8_t *input, int in_h, int in_w,
                                             int depth_mult, int k_h, int k_w, int stride_h,
                                             int stride_w, int pad_top, int pad_left,
                                             int32_t in_zp, const uint32_t *weights,
                                             const int32_t *bias, const int32_t *mult,
                                             const int32_t *shift, int per_channel,
                                             int8_t *output, int out_h, int out_w,
                                             int32_t out_zp, int32_t act_min, int32_t act_max,
                                             int8_t *band) {
    const int plane_w = (out_w - 1) * stride_w + k_w;
    const int words = k_h * k_w * 2; /* uint32 words of weights per group of 4 channels */
    const int full = act_min == -128 && act_max == 127;
    for (int oy = 0; oy < out_h; ++oy) {
        mcu_dw_fill_plane(input, in_h, in_w, 1, 0, pad_top - oy * stride_h, pad_left,
                          (int8_t)in_zp, band, k_h, plane_w);
        int8_t *row = output + (size_t)oy * out_w * depth_mult;
        for (int c = 0; c < depth_mult; c += MCU_DW_BAND4) {
            const int32_t *m = per_channel ? mult + c : mult;
            const int32_t *s = per_channel ? shift + c : shift;
            int rqs = 1;
            for (int j = 0; j < MCU_DW_BAND4; ++j) {
                const int k = per_channel ? j : 0;
                rqs = rqs && mcu_dw_rqs_usable(bias[c + j], k_h * k_w, s[k]);
            }
            const uint32_t *wg = weights + (size_t)(c / MCU_DW_BAND4) * words;
            if (rqs && full) {
                mcu_dw_band4_row(band, plane_w, wg, k_h, k_w, stride_w, bias + c, m, s,
                                 per_channel, row + c, out_w, depth_mult, out_zp, -128, 127, 1,
                                 1);
            } else if (rqs) {
                mcu_dw_band4_row(band, plane_w, wg, k_h, k_w, stride_w, bias + c, m, s,
                                 per_channel, row + c, out_w, depth_mult, out_zp, act_min,
                                 act_max, 1, 0);
            } else {
                mcu_dw_band4_row(band, plane_w, wg, k_h, k_w, stride_w, bias + c, m, s,
                                 per_channel, row + c, out_w, depth_mult, out_zp, act_min,
                                 act_max, 0, 0);
            }
        }
    }
}

/* The same operation without a channel buffer, for when the planner keeps the output apart
 * from the input and allots no plane (input still needed later with several input
 * channels, depth multiplier > 1): output pixel by pixel, taps outside the image read as
 * zp_in (which the folded bias cancels). */
MCU_KERNEL void mcu_depthwise_conv2d_direct_s8(
    const int8_t *input, int in_h, int in_w, int in_c, int depth_mult, int k_h, int k_w,
    int stride_h, int stride_w, int dil_h, int dil_w, int pad_top, int pad_left, int32_t in_zp,
    const int8_t *weights, const int32_t *bias, const int32_t *mult, const int32_t *shift,
    int per_channel, int8_t *output, int out_h, int out_w, int32_t out_zp, int32_t act_min,
    int32_t act_max) {
    const int out_c = in_c * depth_mult;
    const int row = MCU_DW_ROW(k_w);
    const int taps = k_h * row;
    for (int oy = 0; oy < out_h; ++oy) {
        const int iy0 = oy * stride_h - pad_top;
        for (int ox = 0; ox < out_w; ++ox) {
            const int ix0 = ox * stride_w - pad_left;
            const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + (k_h - 1) * dil_h < in_h &&
                               ix0 + (k_w - 1) * dil_w < in_w;
            const int8_t *base = inside ? input + ((size_t)iy0 * in_w + (size_t)ix0) * in_c : input;
            int8_t *out = output + ((size_t)oy * out_w + (size_t)ox) * out_c;
            for (int oc = 0; oc < out_c; ++oc) {
                const int c = oc / depth_mult;
                const int8_t *w = weights + (size_t)oc * taps;
                int32_t acc = bias[oc];
                for (int ky = 0; ky < k_h; ++ky) {
                    const int iy = iy0 + ky * dil_h;
                    for (int kx = 0; kx < k_w; ++kx) {
                        const int ix = ix0 + kx * dil_w;
                        int32_t x;
                        if (inside) {
                            x = base[((size_t)(ky * dil_h) * in_w + (size_t)(kx * dil_w)) * in_c + c];
                        } else if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                            x = input[((size_t)iy * in_w + (size_t)ix) * in_c + c];
                        } else {
                            x = in_zp;
                        }
                        acc += (int32_t)w[ky * row + kx] * x;
                    }
                }
                const int q = per_channel ? oc : 0;
                out[oc] = shift[q] < 0
                              ? mcu_dw_rq_apply(acc, mcu_dw_rq_make(mult[q], shift[q]), out_zp,
                                                act_min, act_max)
                              : mcu_requantize_s8(acc, mult[q], shift[q], out_zp, act_min,
                                                  act_max);
            }
        }
    }
}

/* The same on int4 weights (packed as for mcu_depthwise_conv2d_s4), each channel's taps
 * unpacked where they are used. */
MCU_KERNEL void mcu_depthwise_conv2d_direct_s4(
    const int8_t *input, int in_h, int in_w, int in_c, int depth_mult, int k_h, int k_w,
    int stride_h, int stride_w, int dil_h, int dil_w, int pad_top, int pad_left, int32_t in_zp,
    const uint8_t *w4, const int32_t *bias, const int32_t *mult, const int32_t *shift,
    int per_channel, int8_t *output, int out_h, int out_w, int32_t out_zp, int32_t act_min,
    int32_t act_max) {
    const int out_c = in_c * depth_mult;
    const int row = MCU_DW_ROW(k_w);
    const int taps = k_h * row;
    uint32_t w_words[MCU_DW_S4_MAX / 4]; /* word aligned: the DSP loops load words */
    int8_t *w = (int8_t *)w_words;
    for (int oy = 0; oy < out_h; ++oy) {
        const int iy0 = oy * stride_h - pad_top;
        for (int ox = 0; ox < out_w; ++ox) {
            const int ix0 = ox * stride_w - pad_left;
            const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + (k_h - 1) * dil_h < in_h &&
                               ix0 + (k_w - 1) * dil_w < in_w;
            const int8_t *base = inside ? input + ((size_t)iy0 * in_w + (size_t)ix0) * in_c : input;
            int8_t *out = output + ((size_t)oy * out_w + (size_t)ox) * out_c;
            for (int oc = 0; oc < out_c; ++oc) {
                const int c = oc / depth_mult;
                mcu_s4_unpack(w4 + (size_t)oc * (size_t)(taps / 2), taps, w);
                int32_t acc = bias[oc];
                for (int ky = 0; ky < k_h; ++ky) {
                    const int iy = iy0 + ky * dil_h;
                    for (int kx = 0; kx < k_w; ++kx) {
                        const int ix = ix0 + kx * dil_w;
                        int32_t x;
                        if (inside) {
                            x = base[((size_t)(ky * dil_h) * in_w + (size_t)(kx * dil_w)) * in_c + c];
                        } else if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                            x = input[((size_t)iy * in_w + (size_t)ix) * in_c + c];
                        } else {
                            x = in_zp;
                        }
                        acc += (int32_t)w[ky * row + kx] * x;
                    }
                }
                const int q = per_channel ? oc : 0;
                out[oc] = shift[q] < 0
                              ? mcu_dw_rq_apply(acc, mcu_dw_rq_make(mult[q], shift[q]), out_zp,
                                                act_min, act_max)
                              : mcu_requantize_s8(acc, mult[q], shift[q], out_zp, act_min,
                                                  act_max);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Channel-group kernel for small feature maps (MCUNet's late 3x3..7x7 layers on 10x10 and
 * smaller inputs, where most of a padded window is padding): four channels at a time in the
 * HWC layout, and per output pixel only the taps that fall inside the image, so no work on
 * padding at all. Each tap reads one word of four input channels and one word of their four
 * weights and accumulates w * (x - zp_in) per channel (DSP: SXTB16 + SSUB16, then
 * SMLABB / SMLATT into four accumulators), so the bias here is TFLite's own, not folded.
 *
 * Generation-time contract (codegen/ops/depthwise_conv2d.py, hwc_weights):
 *   - depth multiplier 1;
 *   - weights [ceil(C/4)][k_h*k_w][4]: each group of four channels with its taps contiguous,
 *     the last group zero-padded;
 *   - `scratch` NULL: the output does not overlap the input and the input is read in place;
 *     otherwise (in place) in_h * in_w * 4 bytes: each group's four input channels are
 *     copied there before any output of the group is written (output channel c only
 *     overwrites input channel c), opspec.depthwise_hwc_scratch_bytes. */

/* One output pixel's accumulators for channels c0..c0+n-1 (n <= 4), then requantised. */
typedef struct {
    mcu_dw_rq rq[4];
    int32_t mult[4];
    int32_t shift[4];
    int32_t bias[4];
} mcu_dw_group_q;

MCU_INLINE void mcu_dw_group_q_make(mcu_dw_group_q *g, const int32_t *bias, const int32_t *mult,
                                    const int32_t *shift, int per_channel, int c0, int n) {
    for (int j = 0; j < 4; ++j) {
        const int c = c0 + (j < n ? j : 0);
        const int q = per_channel ? c : 0;
        g->bias[j] = bias[c];
        g->mult[j] = mult[q];
        g->shift[j] = shift[q];
        g->rq[j] = mcu_dw_rq_make(mult[q], shift[q] < 0 ? shift[q] : -1);
    }
}

MCU_INLINE int8_t mcu_dw_group_finish(const mcu_dw_group_q *g, int j, int32_t acc,
                                      int32_t out_zp, int32_t act_min, int32_t act_max) {
    return g->shift[j] < 0 ? mcu_dw_rq_apply(acc, g->rq[j], out_zp, act_min, act_max)
                           : mcu_requantize_s8(acc, g->mult[j], g->shift[j], out_zp, act_min,
                                               act_max);
}

/* First tap index k (0 <= k <= k_n) with 0 <= base + k*dil, and one past the last with
 * base + k*dil < size: the taps of a window starting at `base` that lie in the image. */
MCU_INLINE void mcu_dw_valid_taps(int base, int dil, int k_n, int size, int *lo, int *hi) {
    int a = base < 0 ? (-base + dil - 1) / dil : 0;
    int b = size - base <= 0 ? 0 : (size - base + dil - 1) / dil;
    if (b > k_n) {
        b = k_n;
    }
    if (a > b) {
        a = b;
    }
    *lo = a;
    *hi = b;
}

#if defined(__GNUC__)
#define MCU_DW_NOINLINE static __attribute__((noinline, unused))
#else
#define MCU_DW_NOINLINE static
#endif


/* The valid taps of one output pixel for four channels: `rows` x `cols` taps, x and w at the
 * first one; x_row / w_row bytes between rows, x_col between columns (w: 4). Out of line so
 * the tap loop has the registers to itself (inlined into the pixel loops, gcc spilled the
 * accumulators' pointers in it). acc[0..3] are updated. */
MCU_DW_NOINLINE void mcu_dw_hwc_taps4(const int8_t *x, const int8_t *w, int rows, int cols,
                                      int x_row, int x_col, int w_row, int32_t in_zp,
                                      int32_t *acc) {
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if MCU_USE_DSP
    const uint32_t zz = mcu_pack16(in_zp, in_zp);
    x_row -= cols * x_col;
    w_row -= cols * 4;
    for (int r = 0; r < rows; ++r) {
        for (const int8_t *w_end = w + 4 * cols; w != w_end; w += 4) {
            const uint32_t xv = mcu_read_u32(x), wv = mcu_read_u32(w);
            const uint32_t xe = (uint32_t)__ssub16((int16x2_t)mcu_sxtb16(xv), (int16x2_t)zz);
            const uint32_t xo = (uint32_t)__ssub16((int16x2_t)mcu_dw_sxtb16_ror8(xv),
                                                   (int16x2_t)zz);
            const uint32_t we = mcu_sxtb16(wv), wo = mcu_dw_sxtb16_ror8(wv);
            a0 = __smlabb((int32_t)we, (int32_t)xe, a0);
            a2 = __smlatt((int32_t)we, (int32_t)xe, a2);
            a1 = __smlabb((int32_t)wo, (int32_t)xo, a1);
            a3 = __smlatt((int32_t)wo, (int32_t)xo, a3);
            x += x_col;
        }
        x += x_row;
        w += w_row;
    }
#else
    for (int r = 0; r < rows; ++r) {
        for (int k = 0; k < cols; ++k) {
            const int8_t *xk = x + k * x_col, *wk = w + 4 * k;
            a0 += (int32_t)wk[0] * ((int32_t)xk[0] - in_zp);
            a1 += (int32_t)wk[1] * ((int32_t)xk[1] - in_zp);
            a2 += (int32_t)wk[2] * ((int32_t)xk[2] - in_zp);
            a3 += (int32_t)wk[3] * ((int32_t)xk[3] - in_zp);
        }
        x += x_row;
        w += w_row;
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* The same for n < 4 channels (the last group of a channel count not a multiple of 4):
 * bytes past n are not read, they may lie past the input tensor. */
MCU_DW_NOINLINE void mcu_dw_hwc_taps(const int8_t *x, const int8_t *w, int rows, int cols,
                                     int x_row, int x_col, int w_row, int32_t in_zp,
                                     int32_t *acc, int n) {
    for (int r = 0; r < rows; ++r) {
        for (int k = 0; k < cols; ++k) {
            for (int j = 0; j < n; ++j) {
                acc[j] += (int32_t)w[4 * k + j] * ((int32_t)x[k * x_col + j] - in_zp);
            }
        }
        x += x_row;
        w += w_row;
    }
}

MCU_INLINE void mcu_dw_hwc_body(const int8_t *input, int in_h, int in_w, int in_c,
                                            int k_h, int k_w, int stride_h, int stride_w,
                                            int dil_h, int dil_w, int pad_top, int pad_left,
                                            int32_t in_zp, const int8_t *weights,
                                            const uint8_t *w4, int8_t *buf,
                                            const int32_t *bias, const int32_t *mult,
                                            const int32_t *shift, int per_channel,
                                            int8_t *output, int out_h, int out_w,
                                            int32_t out_zp, int32_t act_min, int32_t act_max,
                                            int8_t *scratch) {
    const int taps = k_h * k_w;
    const int pixels = in_h * in_w;
    for (int c0 = 0; c0 < in_c; c0 += 4) {
        const int n = in_c - c0 < 4 ? in_c - c0 : 4;
        const int8_t *src = input + c0;
        int xs = in_c; /* bytes from one pixel to the next in `src` */
        if (scratch) {
            /* in place: this group's input channels, four bytes a pixel */
            const int8_t *p = input + c0;
            for (int i = 0; i < pixels; ++i) {
                if (n == 4) {
                    mcu_write_u32(scratch + 4 * i, mcu_read_u32(p));
                } else {
                    for (int j = 0; j < n; ++j) {
                        scratch[4 * i + j] = p[j];
                    }
                }
                p += in_c;
            }
            src = scratch;
            xs = 4;
        }
        const int8_t *wg = weights + (size_t)(c0 >> 2) * taps * 4;
        if (w4) { /* int4: this group's weights unpacked (a null literal for int8) */
            mcu_s4_unpack(w4 + (size_t)(c0 >> 2) * (size_t)taps * 2, 4 * taps, buf);
            wg = buf;
        }
        mcu_dw_group_q g;
        mcu_dw_group_q_make(&g, bias, mult, shift, per_channel, c0, n);
        for (int oy = 0; oy < out_h; ++oy) {
            const int iy0 = oy * stride_h - pad_top;
            int ky_lo, ky_hi;
            mcu_dw_valid_taps(iy0, dil_h, k_h, in_h, &ky_lo, &ky_hi);
            int8_t *o = output + (size_t)oy * out_w * in_c + c0;
            for (int ox = 0; ox < out_w; ++ox) {
                const int ix0 = ox * stride_w - pad_left;
                int kx_lo, kx_hi;
                mcu_dw_valid_taps(ix0, dil_w, k_w, in_w, &kx_lo, &kx_hi);
                int32_t acc[4] = {g.bias[0], g.bias[1], g.bias[2], g.bias[3]};
                const int8_t *x =
                    src + ((size_t)(iy0 + ky_lo * dil_h) * in_w + (size_t)(ix0 + kx_lo * dil_w)) *
                              (size_t)xs;
                const int8_t *w = wg + (size_t)(ky_lo * k_w + kx_lo) * 4;
                if (n == 4) {
                    mcu_dw_hwc_taps4(x, w, ky_hi - ky_lo, kx_hi - kx_lo, dil_h * in_w * xs,
                                     dil_w * xs, 4 * k_w, in_zp, acc);
                } else {
                    mcu_dw_hwc_taps(x, w, ky_hi - ky_lo, kx_hi - kx_lo, dil_h * in_w * xs,
                                    dil_w * xs, 4 * k_w, in_zp, acc, n);
                }
                for (int j = 0; j < n; ++j) {
                    o[j] = mcu_dw_group_finish(&g, j, acc[j], out_zp, act_min, act_max);
                }
                o += in_c;
            }
        }
    }
}

MCU_KERNEL void mcu_depthwise_conv2d_hwc_s8(const int8_t *input, int in_h, int in_w, int in_c,
                                            int k_h, int k_w, int stride_h, int stride_w,
                                            int dil_h, int dil_w, int pad_top, int pad_left,
                                            int32_t in_zp, const int8_t *weights,
                                            const int32_t *bias, const int32_t *mult,
                                            const int32_t *shift, int per_channel,
                                            int8_t *output, int out_h, int out_w,
                                            int32_t out_zp, int32_t act_min, int32_t act_max,
                                            int8_t *scratch) {
    mcu_dw_hwc_body(input, in_h, in_w, in_c, k_h, k_w, stride_h, stride_w, dil_h, dil_w,
                    pad_top, pad_left, in_zp, weights, 0, 0, bias, mult, shift, per_channel,
                    output, out_h, out_w, out_zp, act_min, act_max, scratch);
}

/* The same on int4 weights (hwc_weights' layout packed two a byte), each group's 4 * k_h * k_w
 * weights unpacked before its pixels. */
MCU_KERNEL void mcu_depthwise_conv2d_hwc_s4(const int8_t *input, int in_h, int in_w, int in_c,
                                            int k_h, int k_w, int stride_h, int stride_w,
                                            int dil_h, int dil_w, int pad_top, int pad_left,
                                            int32_t in_zp, const uint8_t *w4,
                                            const int32_t *bias, const int32_t *mult,
                                            const int32_t *shift, int per_channel,
                                            int8_t *output, int out_h, int out_w,
                                            int32_t out_zp, int32_t act_min, int32_t act_max,
                                            int8_t *scratch) {
    uint32_t buf_words[MCU_DW_S4_MAX / 4]; /* word aligned: the DSP loops load words */
    int8_t *buf = (int8_t *)buf_words;
    mcu_dw_hwc_body(input, in_h, in_w, in_c, k_h, k_w, stride_h, stride_w, dil_h, dil_w,
                    pad_top, pad_left, in_zp, 0, w4, buf, bias, mult, shift, per_channel,
                    output, out_h, out_w, out_zp, act_min, act_max, scratch);
}
