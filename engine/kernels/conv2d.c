/* CONV_2D, int8 activations and weights, int32 bias, per-channel or per-tensor requantisation,
 * bit-exact with TFLite Micro's reference ConvPerChannel.
 *
 * Generation-time contract (tflite_converter/codegen/ops/conv2d.py):
 *   - weights are packed for the core (mcu_matmul_s8.h): rows of K = kh*kw*Cin in TFLite's
 *     [kh][kw][Cin] order (the order im2col gathers), zero-padded to a multiple of 4, in
 *     blocks of MCU_MM_RB rows;
 *   - rq holds MCU_RQ_STRIDE int32 per output channel (mcu_matmul_s8.h); the bias already
 *     includes -zp_in * sum(w[c]) (the input zero point folded in), so the inner loops
 *     multiply raw values, and padded taps hold zp_in so their contribution cancels exactly
 *     as TFLite's "skip the taps outside the image" does;
 *   - mode is the requantisation the generator proved exact for every channel:
 *     MCU_RQ_FAST_FULL, MCU_RQ_FAST or MCU_RQ_GENERIC.
 *
 * Both kernels work on blocks of MCU_MM_NP output pixels whose inputs are widened once into
 * int16 columns in the scratch (opspec.py conv2d_scratch: MCU_MM_NP * K4 int16, plus K int8
 * for the kxk gather), then multiplied by every weight row. The last block of an image with
 * at least MCU_MM_NP pixels overlaps the previous one (it recomputes and rewrites the same
 * bytes) instead of needing a narrower variant of the core.
 */
#include "mcu_common.h"
#include "mcu_matmul_s8.h"

/* The pixel blocks of an image of n_pix pixels: start of block b and its width. */
MCU_INLINE int mcu_block_start(int p, int n_pix, int np) {
    return p + np <= n_pix ? p : n_pix - np;
}

/* Output pixels [p0, p0 + np) of a 1x1 convolution without padding. */
MCU_INLINE void mcu_conv1x1_block(const int8_t *input, int in_w, int in_c, int stride_h,
                                  int stride_w, const int8_t *wpk, const int32_t *rq,
                                  int mode, int8_t *output, int out_w, int out_c,
                                  int32_t out_zp, int32_t act_min, int32_t act_max,
                                  int16_t *col, int p0, int np) {
    for (int j = 0; j < np; ++j) {
        const int p = p0 + j;
        const int y = p / out_w, x = p - y * out_w;
        mcu_col_put_s8(input + ((size_t)(y * stride_h) * in_w + (size_t)(x * stride_w)) * in_c,
                       in_c, col, np, j);
    }
    mcu_mm_block(col, in_c, np, wpk, rq, out_c, mode, output + (size_t)p0 * out_c, out_c,
                 out_zp, act_min, act_max);
}

MCU_INLINE void mcu_conv1x1_body(const int8_t *input, int in_w, int in_c, int stride_h,
                                 int stride_w, const int8_t *wpk, const int32_t *rq, int mode,
                                 int8_t *output, int out_h, int out_w, int out_c,
                                 int32_t out_zp, int32_t act_min, int32_t act_max,
                                 int16_t *col) {
    const int n_pix = out_h * out_w;
    if (n_pix < MCU_MM_NP) {
        for (int p = 0; p < n_pix; ++p) {
            mcu_conv1x1_block(input, in_w, in_c, stride_h, stride_w, wpk, rq, mode, output,
                              out_w, out_c, out_zp, act_min, act_max, col, p, 1);
        }
        return;
    }
    for (int p = 0; p < n_pix; p += MCU_MM_NP) {
        mcu_conv1x1_block(input, in_w, in_c, stride_h, stride_w, wpk, rq, mode, output,
                          out_w, out_c, out_zp, act_min, act_max, col,
                          mcu_block_start(p, n_pix, MCU_MM_NP), MCU_MM_NP);
    }
}

/* Pointwise convolution without padding, any stride: every output pixel is one input
 * pixel's Cin values times the weight matrix (no im2col gather). Scratch: MCU_MM_NP * K4
 * int16. */
MCU_KERNEL void mcu_conv2d_1x1_s8(const int8_t *input, int in_w, int in_c, int stride_h,
                                  int stride_w, const int8_t *wpk, const int32_t *rq, int mode,
                                  int8_t *output, int out_h, int out_w, int out_c,
                                  int32_t out_zp, int32_t act_min, int32_t act_max,
                                  void *scratch) {
    int16_t *col = (int16_t *)scratch;
    /* one instance per mode: the requantisation compiles to straight code in each */
    if (mode == MCU_RQ_FAST_FULL) {
        mcu_conv1x1_body(input, in_w, in_c, stride_h, stride_w, wpk, rq, MCU_RQ_FAST_FULL,
                         output, out_h, out_w, out_c, out_zp, act_min, act_max, col);
    } else if (mode == MCU_RQ_FAST) {
        mcu_conv1x1_body(input, in_w, in_c, stride_h, stride_w, wpk, rq, MCU_RQ_FAST, output,
                         out_h, out_w, out_c, out_zp, act_min, act_max, col);
    } else {
        mcu_conv1x1_body(input, in_w, in_c, stride_h, stride_w, wpk, rq, MCU_RQ_GENERIC,
                         output, out_h, out_w, out_c, out_zp, act_min, act_max, col);
    }
}

/* n bytes, a word at a time (unaligned words are fine on the M-profile cores we target and
 * in the portable build's memcpy-based mcu_read_u32): the rows of a receptive field are
 * short (9 bytes for a 3x3 RGB window, 4 for KWS's 10x4 one), where a memcpy call or a loop
 * per tap costs more than the copy. */
MCU_INLINE void mcu_copy_s8(int8_t *dst, const int8_t *src, int n) {
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        mcu_write_u32(dst + i, mcu_read_u32(src + i));
    }
    for (; i < n; ++i) {
        dst[i] = src[i];
    }
}

/* Gather the receptive field of output pixel (oy, ox) as K int8 values, padded taps = pad. */
MCU_INLINE void mcu_im2col_s8(const int8_t *input, int in_h, int in_w, int in_c, int k_h,
                              int k_w, int dil_h, int dil_w, int iy0, int ix0, int8_t pad,
                              int8_t *dst) {
    if (dil_w == 1 && ix0 >= 0 && ix0 + k_w <= in_w && iy0 >= 0 &&
        iy0 + (k_h - 1) * dil_h < in_h) {
        /* the window lies inside the image (most pixels): each kernel row is k_w * in_c
         * contiguous input bytes */
        const int row_bytes = k_w * in_c;
        const int8_t *src = input + ((size_t)iy0 * in_w + (size_t)ix0) * in_c;
        const size_t step = (size_t)dil_h * in_w * in_c;
        for (int ky = 0; ky < k_h; ++ky, src += step, dst += row_bytes) {
            mcu_copy_s8(dst, src, row_bytes);
        }
        return;
    }
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

typedef struct {
    const int8_t *input;
    int in_h, in_w, in_c, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
    int8_t pad;
    int out_w;
} mcu_conv_geom_t;

MCU_INLINE void mcu_conv_block(const mcu_conv_geom_t *g, const int8_t *wpk, const int32_t *rq,
                               int mode, int8_t *output, int out_c, int32_t out_zp,
                               int32_t act_min, int32_t act_max, int16_t *col, int8_t *gather,
                               int p0, int np) {
    const int K = g->k_h * g->k_w * g->in_c;
    for (int j = 0; j < np; ++j) {
        const int p = p0 + j;
        const int y = p / g->out_w, x = p - y * g->out_w;
        mcu_im2col_s8(g->input, g->in_h, g->in_w, g->in_c, g->k_h, g->k_w, g->dil_h, g->dil_w,
                      y * g->stride_h - g->pad_top, x * g->stride_w - g->pad_left, g->pad,
                      gather);
        mcu_col_put_s8(gather, K, col, np, j);
    }
    mcu_mm_block(col, K, np, wpk, rq, out_c, mode, output + (size_t)p0 * out_c, out_c, out_zp,
                 act_min, act_max);
}

MCU_INLINE void mcu_conv_body(const mcu_conv_geom_t *g, int n_pix, const int8_t *wpk,
                              const int32_t *rq, int mode, int8_t *output, int out_c,
                              int32_t out_zp, int32_t act_min, int32_t act_max, int16_t *col,
                              int8_t *gather, int np) {
    if (n_pix < MCU_MM_NP || np == 1) {
        for (int p = 0; p < n_pix; ++p) {
            mcu_conv_block(g, wpk, rq, mode, output, out_c, out_zp, act_min, act_max, col,
                           gather, p, 1);
        }
        return;
    }
    for (int p = 0; p < n_pix; p += MCU_MM_NP) {
        mcu_conv_block(g, wpk, rq, mode, output, out_c, out_zp, act_min, act_max, col, gather,
                       mcu_block_start(p, n_pix, MCU_MM_NP), MCU_MM_NP);
    }
}

/* General convolution: any kernel size, stride, dilation and explicit padding (pad_top /
 * pad_left; bottom and right follow from the output size). np is MCU_MM_NP or 1 (pixels per
 * block, opspec.conv2d_pixel_block: 1 where the columns would raise the arena). Scratch:
 * np * K4 int16 columns followed by K int8 for the gather of one pixel. */
MCU_KERNEL void mcu_conv2d_s8(const int8_t *input, int in_h, int in_w, int in_c, int k_h,
                              int k_w, int stride_h, int stride_w, int dil_h, int dil_w,
                              int pad_top, int pad_left, int32_t in_zp, const int8_t *wpk,
                              const int32_t *rq, int mode, int8_t *output, int out_h, int out_w,
                              int out_c, int32_t out_zp, int32_t act_min, int32_t act_max,
                              int np, void *scratch) {
    const int K4 = (k_h * k_w * in_c + 3) & ~3;
    int16_t *col = (int16_t *)scratch;
    int8_t *gather = (int8_t *)(col + (np == 1 ? 1 : MCU_MM_NP) * K4);
    const mcu_conv_geom_t g = {input, in_h, in_w, in_c, k_h, k_w, stride_h, stride_w,
                               dil_h, dil_w, pad_top, pad_left, (int8_t)in_zp, out_w};
    if (mode == MCU_RQ_FAST_FULL) {
        mcu_conv_body(&g, out_h * out_w, wpk, rq, MCU_RQ_FAST_FULL, output, out_c, out_zp,
                      act_min, act_max, col, gather, np);
    } else if (mode == MCU_RQ_FAST) {
        mcu_conv_body(&g, out_h * out_w, wpk, rq, MCU_RQ_FAST, output, out_c, out_zp, act_min,
                      act_max, col, gather, np);
    } else {
        mcu_conv_body(&g, out_h * out_w, wpk, rq, MCU_RQ_GENERIC, output, out_c, out_zp,
                      act_min, act_max, col, gather, np);
    }
}
