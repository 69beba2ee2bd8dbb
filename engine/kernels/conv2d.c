/* CONV_2D, int8 activations and weights, int32 bias, per-channel or per-tensor requantisation,
 * bit-exact with TFLite Micro's reference ConvPerChannel.
 *
 * Generation-time contract (tflite_converter/codegen/ops/conv2d.py):
 *   - weights are TFLite's [Cout][kh][kw][Cin] bytes (one row of K = kh*kw*Cin per channel,
 *     the order im2col gathers);
 *   - bias is always present and already holds bias[c] - zp_in * sum(w[c]) (the input zero
 *     point folded in), so the inner loops multiply raw int8 values; padded taps are filled
 *     with zp_in, which makes their contribution cancel exactly as TFLite's "skip the taps
 *     outside the image" does;
 *   - mult/shift hold one entry per channel when per_channel is 1, else one entry.
 *
 * Scratch (opspec.py conv2d_scratch) of the kxk kernel: two columns of K int16 (4*K bytes).
 * The portable build uses the first 2*K bytes as int8 columns; the DSP build gathers int8
 * into the upper half of each int16 column and widens it in place. The 1x1 kernel needs none.
 */
#include "mcu_common.h"
#include "mcu_matmul_s8.h"

/* Pointwise convolution without padding: every output pixel is one input pixel's Cin values
 * times the weight matrix, so the input is read straight from the arena (no im2col, no
 * scratch). Any stride. */
MCU_KERNEL void mcu_conv2d_1x1_s8(const int8_t *input, int in_w, int in_c, int stride_h,
                                  int stride_w, const int8_t *weights, const int32_t *bias,
                                  const int32_t *mult, const int32_t *shift, int per_channel,
                                  int8_t *output, int out_h, int out_w, int out_c,
                                  int32_t out_zp, int32_t act_min, int32_t act_max) {
    const int n_pix = out_h * out_w;
    int p = 0;
    for (; p < (n_pix & ~1); p += 2) {
        const int y0 = p / out_w, x0 = p - y0 * out_w;
        const int y1 = (p + 1) / out_w, x1 = (p + 1) - y1 * out_w;
        const int8_t *in0 = input + ((size_t)(y0 * stride_h) * in_w + (size_t)(x0 * stride_w)) * in_c;
        const int8_t *in1 = input + ((size_t)(y1 * stride_h) * in_w + (size_t)(x1 * stride_w)) * in_c;
        mcu_matmul_s8_2col_raw(in0, in1, in_c, weights, bias, mult, shift, per_channel, out_c,
                               output + (size_t)p * out_c, output + (size_t)(p + 1) * out_c,
                               out_zp, act_min, act_max);
    }
    if (p < n_pix) {
        const int y0 = p / out_w, x0 = p - y0 * out_w;
        const int8_t *in0 = input + ((size_t)(y0 * stride_h) * in_w + (size_t)(x0 * stride_w)) * in_c;
        mcu_matmul_s8_1col_raw(in0, in_c, weights, bias, mult, shift, per_channel, out_c,
                               output + (size_t)p * out_c, out_zp, act_min, act_max);
    }
}

/* Gather the receptive field of output pixel (oy, ox) as K int8 values, padded taps = pad. */
MCU_INLINE void mcu_im2col_s8(const int8_t *input, int in_h, int in_w, int in_c, int k_h,
                              int k_w, int dil_h, int dil_w, int iy0, int ix0, int8_t pad,
                              int8_t *dst) {
    for (int ky = 0; ky < k_h; ++ky) {
        const int iy = iy0 + ky * dil_h;
        if (iy < 0 || iy >= in_h) {
            memset(dst, pad, (size_t)(k_w * in_c));
            dst += k_w * in_c;
            continue;
        }
        const int8_t *row = input + (size_t)iy * in_w * in_c;
        for (int kx = 0; kx < k_w; ++kx) {
            const int ix = ix0 + kx * dil_w;
            if (ix < 0 || ix >= in_w) {
                memset(dst, pad, (size_t)in_c);
            } else if (in_c == 3) {
                /* the first layer of image models: three bytes, no memcpy call */
                const int8_t *s = row + ix * 3;
                dst[0] = s[0];
                dst[1] = s[1];
                dst[2] = s[2];
            } else {
                memcpy(dst, row + (size_t)ix * in_c, (size_t)in_c);
            }
            dst += in_c;
        }
    }
}

/* General convolution: any kernel size, stride, dilation and explicit padding (pad_top /
 * pad_left; bottom and right follow from the output size). Two output pixels at a time are
 * gathered into the scratch columns and multiplied by all weight rows. */
MCU_KERNEL void mcu_conv2d_s8(const int8_t *input, int in_h, int in_w, int in_c, int k_h,
                              int k_w, int stride_h, int stride_w, int dil_h, int dil_w,
                              int pad_top, int pad_left, int32_t in_zp, const int8_t *weights,
                              const int32_t *bias, const int32_t *mult, const int32_t *shift,
                              int per_channel, int8_t *output, int out_h, int out_w, int out_c,
                              int32_t out_zp, int32_t act_min, int32_t act_max, void *scratch) {
    const int K = k_h * k_w * in_c;
    const int n_pix = out_h * out_w;
    mcu_col_t *col0 = (mcu_col_t *)scratch;
    mcu_col_t *col1 = col0 + K;
    /* where each column's int8 gather goes: in place for the portable build, in the upper
     * half of the int16 column for the DSP build (widened in place afterwards) */
    int8_t *raw0 = (int8_t *)col0 + (sizeof(mcu_col_t) - 1) * (size_t)K;
    int8_t *raw1 = (int8_t *)col1 + (sizeof(mcu_col_t) - 1) * (size_t)K;
    const int8_t pad = (int8_t)in_zp;
    int p = 0;
    for (; p < (n_pix & ~1); p += 2) {
        const int y0 = p / out_w, x0 = p - y0 * out_w;
        const int y1 = (p + 1) / out_w, x1 = (p + 1) - y1 * out_w;
        mcu_im2col_s8(input, in_h, in_w, in_c, k_h, k_w, dil_h, dil_w, y0 * stride_h - pad_top,
                      x0 * stride_w - pad_left, pad, raw0);
        mcu_im2col_s8(input, in_h, in_w, in_c, k_h, k_w, dil_h, dil_w, y1 * stride_h - pad_top,
                      x1 * stride_w - pad_left, pad, raw1);
        mcu_expand_s8(raw0, col0, K);
        mcu_expand_s8(raw1, col1, K);
        mcu_matmul_s8_2col(col0, col1, K, weights, bias, mult, shift, per_channel, out_c,
                           output + (size_t)p * out_c, output + (size_t)(p + 1) * out_c, out_zp,
                           act_min, act_max);
    }
    if (p < n_pix) {
        const int y0 = p / out_w, x0 = p - y0 * out_w;
        mcu_im2col_s8(input, in_h, in_w, in_c, k_h, k_w, dil_h, dil_w, y0 * stride_h - pad_top,
                      x0 * stride_w - pad_left, pad, raw0);
        mcu_expand_s8(raw0, col0, K);
        mcu_matmul_s8_1col(col0, K, weights, bias, mult, shift, per_channel, out_c,
                           output + (size_t)p * out_c, out_zp, act_min, act_max);
    }
}
