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
 * channel c).
 *
 * Generation-time contract (tflite_converter/codegen/ops/depthwise_conv2d.py):
 *   - weights re-ordered to [Cout][kh*kw] (each channel's taps contiguous);
 *   - bias always present, bias[c] - zp_in * sum(w[c]) (padded taps hold zp_in and cancel);
 *   - scratch: plane_h * plane_w bytes, plane_h = (out_h-1)*stride_h + (k_h-1)*dil_h + 1
 *     (likewise plane_w): opspec.py depthwise_plane_bytes.
 */
#include "mcu_common.h"

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
        if (c_hi < plane_w) {
            memset(dst + c_hi, pad, (size_t)(plane_w - c_hi));
        }
    }
}

/* 3x3, no dilation, any stride: the nine weights live in registers. */
MCU_INLINE void mcu_dw_plane_3x3(const int8_t *plane, int plane_w, const int8_t *w,
                                 int32_t bias, int32_t mult, int32_t shift, int stride_h,
                                 int stride_w, int8_t *out, int out_h, int out_w, int out_step,
                                 int32_t out_zp, int32_t act_min, int32_t act_max) {
    const int32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6],
                  w7 = w[7], w8 = w[8];
#if MCU_USE_DSP
    /* (w0, w2) pairs for SMLAD against SXTB16's (x0, x2) / (x1, x3) halves of one word */
    const uint32_t p0 = mcu_pack16(w0, w2), p1 = mcu_pack16(w3, w5), p2 = mcu_pack16(w6, w8);
#endif
    for (int oy = 0; oy < out_h; ++oy) {
        const int8_t *r0 = plane + (size_t)(oy * stride_h) * plane_w;
        int8_t *o = out + (size_t)oy * out_w * out_step;
        int ox = 0;
#if MCU_USE_DSP
        if (stride_w == 1) {
            /* two neighbouring outputs from one word per row: A = x0..x2, B = x1..x3 */
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
                o[0] = mcu_requantize_s8(a, mult, shift, out_zp, act_min, act_max);
                o[out_step] = mcu_requantize_s8(b, mult, shift, out_zp, act_min, act_max);
                o += 2 * out_step;
            }
        }
#endif
        for (; ox < out_w; ++ox) {
            const int8_t *r = r0 + (size_t)ox * stride_w;
            const int8_t *s = r + plane_w, *t = s + plane_w;
            int32_t acc = bias + w0 * r[0] + w1 * r[1] + w2 * r[2];
            acc += w3 * s[0] + w4 * s[1] + w5 * s[2];
            acc += w6 * t[0] + w7 * t[1] + w8 * t[2];
            *o = mcu_requantize_s8(acc, mult, shift, out_zp, act_min, act_max);
            o += out_step;
        }
    }
}

/* Any kernel size and dilation. Called with literal k_h/k_w for 5x5 and 7x7 so that the
 * compiler can unroll the tap loops. */
MCU_INLINE void mcu_dw_plane_generic(const int8_t *plane, int plane_w, const int8_t *w,
                                     int k_h, int k_w, int dil_h, int dil_w, int32_t bias,
                                     int32_t mult, int32_t shift, int stride_h, int stride_w,
                                     int8_t *out, int out_h, int out_w, int out_step,
                                     int32_t out_zp, int32_t act_min, int32_t act_max) {
    for (int oy = 0; oy < out_h; ++oy) {
        const int8_t *r0 = plane + (size_t)(oy * stride_h) * plane_w;
        int8_t *o = out + (size_t)oy * out_w * out_step;
        for (int ox = 0; ox < out_w; ++ox) {
            const int8_t *r = r0 + (size_t)ox * stride_w;
            int32_t acc = bias;
            const int8_t *wk = w;
            for (int ky = 0; ky < k_h; ++ky) {
                const int8_t *row = r + (size_t)(ky * dil_h) * plane_w;
                for (int kx = 0; kx < k_w; ++kx) {
                    acc += (int32_t)wk[kx] * (int32_t)row[kx * dil_w];
                }
                wk += k_w;
            }
            *o = mcu_requantize_s8(acc, mult, shift, out_zp, act_min, act_max);
            o += out_step;
        }
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
    const int taps = k_h * k_w;
    for (int c = 0; c < in_c; ++c) {
        mcu_dw_fill_plane(input, in_h, in_w, in_c, c, pad_top, pad_left, (int8_t)in_zp, plane,
                          plane_h, plane_w);
        for (int m = 0; m < depth_mult; ++m) {
            const int oc = c * depth_mult + m;
            const int q = per_channel ? oc : 0;
            const int8_t *w = weights + (size_t)oc * taps;
            int8_t *out = output + oc;
            if (k_h == 3 && k_w == 3 && dil_h == 1 && dil_w == 1) {
                mcu_dw_plane_3x3(plane, plane_w, w, bias[oc], mult[q], shift[q], stride_h,
                                 stride_w, out, out_h, out_w, out_c, out_zp, act_min, act_max);
            } else if (k_h == 5 && k_w == 5 && dil_h == 1 && dil_w == 1) {
                mcu_dw_plane_generic(plane, plane_w, w, 5, 5, 1, 1, bias[oc], mult[q], shift[q],
                                     stride_h, stride_w, out, out_h, out_w, out_c, out_zp,
                                     act_min, act_max);
            } else if (k_h == 7 && k_w == 7 && dil_h == 1 && dil_w == 1) {
                mcu_dw_plane_generic(plane, plane_w, w, 7, 7, 1, 1, bias[oc], mult[q], shift[q],
                                     stride_h, stride_w, out, out_h, out_w, out_c, out_zp,
                                     act_min, act_max);
            } else {
                mcu_dw_plane_generic(plane, plane_w, w, k_h, k_w, dil_h, dil_w, bias[oc],
                                     mult[q], shift[q], stride_h, stride_w, out, out_h, out_w,
                                     out_c, out_zp, act_min, act_max);
            }
        }
    }
}

/* The same operation without a channel buffer, for when the planner keeps the output apart
 * from the input (input still needed later, depth multiplier > 1, batch > 1): output pixel by
 * pixel, taps outside the image read as zp_in (which the folded bias cancels). */
MCU_KERNEL void mcu_depthwise_conv2d_direct_s8(
    const int8_t *input, int in_h, int in_w, int in_c, int depth_mult, int k_h, int k_w,
    int stride_h, int stride_w, int dil_h, int dil_w, int pad_top, int pad_left, int32_t in_zp,
    const int8_t *weights, const int32_t *bias, const int32_t *mult, const int32_t *shift,
    int per_channel, int8_t *output, int out_h, int out_w, int32_t out_zp, int32_t act_min,
    int32_t act_max) {
    const int out_c = in_c * depth_mult;
    const int taps = k_h * k_w;
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
                        acc += (int32_t)w[ky * k_w + kx] * x;
                    }
                }
                const int q = per_channel ? oc : 0;
                out[oc] = mcu_requantize_s8(acc, mult[q], shift[q], out_zp, act_min, act_max);
            }
        }
    }
}
