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
 *
 * Two more, further down: mcu_conv2d_px1_s8 (one pixel at a time on generation-time widened
 * weights, what the emitter runs where the plan grants one pixel's columns; mcu_conv2d_s8's
 * np = 1 stays a valid call) and mcu_conv2d_1x1_reg_s8 (pointwise, 8, 16, 24 or 32 input channels).
 */
#include "mcu_common.h"
#include "mcu_int4.h"
#include "mcu_matmul_s8.h"

/* The matrix step of one pixel block: int8 weights, or (w4 non-null) int4 ones in the word
 * layout (mcu_int4.h), unpacked MCU_MM_RB rows at a time into `wrow` (MCU_MM_RB * K4 bytes
 * of the scratch) and multiplied by the int8 core. A block of rows starts at element c * K4,
 * a multiple of 8 (c even, K4 a multiple of 4): a whole word. The int8 kernels pass a literal
 * null w4, so this folds to mcu_mm_block there. */
MCU_INLINE void mcu_conv_mm(const int16_t *col, int K, int np, const int8_t *wpk,
                            const uint8_t *w4, int8_t *wrow, const int32_t *rq, int n_rows,
                            int mode, int8_t *out, int out_stride, int32_t out_zp,
                            int32_t act_min, int32_t act_max) {
    if (!w4) {
        mcu_mm_block(col, K, np, wpk, rq, n_rows, mode, out, out_stride, out_zp, act_min,
                     act_max);
        return;
    }
    const int K4 = (K + 3) & ~3;
    for (int c = 0; c < n_rows; c += MCU_MM_RB) {
        const int rows = n_rows - c < MCU_MM_RB ? n_rows - c : MCU_MM_RB;
        mcu_s4_unpack_words(w4 + (size_t)c * (size_t)(K4 / 2), rows * K4, wrow);
        mcu_mm_block(col, K, np, wrow, rq + c * MCU_RQ_STRIDE, rows, mode, out + c, out_stride,
                     out_zp, act_min, act_max);
    }
}

/* The pixel blocks of an image of n_pix pixels: start of block b and its width. */
MCU_INLINE int mcu_block_start(int p, int n_pix, int np) {
    return p + np <= n_pix ? p : n_pix - np;
}

/* Output pixels [p0, p0 + np) of a 1x1 convolution without padding. */
MCU_INLINE void mcu_conv1x1_block(const int8_t *input, int in_w, int in_c, int stride_h,
                                  int stride_w, const int8_t *wpk, const uint8_t *w4,
                                  int8_t *wrow, const int32_t *rq, int mode, int8_t *output,
                                  int out_w, int out_c, int32_t out_zp, int32_t act_min,
                                  int32_t act_max, int16_t *col, int p0, int np) {
    for (int j = 0; j < np; ++j) {
        const int p = p0 + j;
        const int y = p / out_w, x = p - y * out_w;
        mcu_col_put_s8(input + ((size_t)(y * stride_h) * in_w + (size_t)(x * stride_w)) * in_c,
                       in_c, col, np, j);
    }
    mcu_conv_mm(col, in_c, np, wpk, w4, wrow, rq, out_c, mode, output + (size_t)p0 * out_c,
                out_c, out_zp, act_min, act_max);
}

MCU_INLINE void mcu_conv1x1_body(const int8_t *input, int in_w, int in_c, int stride_h,
                                 int stride_w, const int8_t *wpk, const uint8_t *w4,
                                 int8_t *wrow, const int32_t *rq, int mode,
                                 int8_t *output, int out_h, int out_w, int out_c,
                                 int32_t out_zp, int32_t act_min, int32_t act_max,
                                 int16_t *col) {
    const int n_pix = out_h * out_w;
    if (n_pix < MCU_MM_NP) {
        for (int p = 0; p < n_pix; ++p) {
            mcu_conv1x1_block(input, in_w, in_c, stride_h, stride_w, wpk, w4, wrow, rq, mode,
                              output, out_w, out_c, out_zp, act_min, act_max, col, p, 1);
        }
        return;
    }
    for (int p = 0; p < n_pix; p += MCU_MM_NP) {
        mcu_conv1x1_block(input, in_w, in_c, stride_h, stride_w, wpk, w4, wrow, rq, mode,
                          output, out_w, out_c, out_zp, act_min, act_max, col,
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
        mcu_conv1x1_body(input, in_w, in_c, stride_h, stride_w, wpk, 0, 0, rq, MCU_RQ_FAST_FULL,
                         output, out_h, out_w, out_c, out_zp, act_min, act_max, col);
    } else if (mode == MCU_RQ_FAST) {
        mcu_conv1x1_body(input, in_w, in_c, stride_h, stride_w, wpk, 0, 0, rq, MCU_RQ_FAST,
                         output, out_h, out_w, out_c, out_zp, act_min, act_max, col);
    } else {
        mcu_conv1x1_body(input, in_w, in_c, stride_h, stride_w, wpk, 0, 0, rq, MCU_RQ_GENERIC,
                         output, out_h, out_w, out_c, out_zp, act_min, act_max, col);
    }
}

/* The same on int4 weights (w4: pack_weight_rows' layout in the int4 word layout,
 * tflite_converter/int4.py pack_words), unpacked MCU_MM_RB rows at a time, or, `whole`, all
 * out_c rows once before the pixels (then the int8 kernel runs on them). Scratch: the
 * unpacked rows (MCU_MM_RB or out_c of K4 int8), then MCU_MM_NP * K4 int16 columns
 * (conv2d_spec.py conv2d_block_scratch). The rows come first: mcu_mm_rows1x2_asm takes its
 * end pointer (the columns' end) as a plain input, which GCC may share with the weight
 * pointer when the two are equal. */
MCU_KERNEL void mcu_conv2d_1x1_s4(const int8_t *input, int in_w, int in_c, int stride_h,
                                  int stride_w, const uint8_t *w4, const int32_t *rq, int mode,
                                  int8_t *output, int out_h, int out_w, int out_c,
                                  int32_t out_zp, int32_t act_min, int32_t act_max, int whole,
                                  void *scratch) {
    const int K4 = (in_c + 3) & ~3;
    int8_t *wrow = (int8_t *)scratch;
    int16_t *col = (int16_t *)(wrow + (whole ? out_c : MCU_MM_RB) * K4);
    if (whole) {
        mcu_s4_unpack_words(w4, out_c * K4, wrow);
        mcu_conv2d_1x1_s8(input, in_w, in_c, stride_h, stride_w, wrow, rq, mode, output, out_h,
                          out_w, out_c, out_zp, act_min, act_max, col);
        return;
    }
    if (mode == MCU_RQ_FAST_FULL) {
        mcu_conv1x1_body(input, in_w, in_c, stride_h, stride_w, 0, w4, wrow, rq, MCU_RQ_FAST_FULL,
                         output, out_h, out_w, out_c, out_zp, act_min, act_max, col);
    } else if (mode == MCU_RQ_FAST) {
        mcu_conv1x1_body(input, in_w, in_c, stride_h, stride_w, 0, w4, wrow, rq, MCU_RQ_FAST,
                         output, out_h, out_w, out_c, out_zp, act_min, act_max, col);
    } else {
        mcu_conv1x1_body(input, in_w, in_c, stride_h, stride_w, 0, w4, wrow, rq, MCU_RQ_GENERIC,
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

/* Pixel j's columns straight from the image, without the gather copy: the window at
 * (iy0, ix0) lies inside the image and each of its k_h rows is row_bytes contiguous input
 * bytes, a multiple of 4, so no group of 4 taps straddles two rows (mcu_col_put_s8's order:
 * the gather would have concatenated exactly these rows). */
MCU_INLINE void mcu_col_put_window(const int8_t *src, int k_h, int row_bytes, size_t row_step,
                                   int16_t *col, int np, int j) {
    int16_t *dst = col + 4 * j;
    for (int ky = 0; ky < k_h; ++ky, src += row_step) {
        for (const int8_t *s = src, *end = src + row_bytes; s < end; s += 4, dst += 4 * np) {
            mcu_col_put4(s, dst);
        }
    }
}

/* Output pixel (y, x)'s columns into pixel slot j of an np-pixel block: straight from the
 * image where its window allows (mcu_col_put_window), else through the gather buffer. */
MCU_INLINE void mcu_conv_put_pixel(const mcu_conv_geom_t *g, int y, int x, int16_t *col,
                                   int np, int j, int8_t *gather) {
    const int row_bytes = g->k_w * g->in_c;
    const int iy0 = y * g->stride_h - g->pad_top, ix0 = x * g->stride_w - g->pad_left;
    if (g->dil_w == 1 && (row_bytes & 3) == 0 && ix0 >= 0 && ix0 + g->k_w <= g->in_w &&
        iy0 >= 0 && iy0 + (g->k_h - 1) * g->dil_h < g->in_h) {
        mcu_col_put_window(g->input + ((size_t)iy0 * g->in_w + (size_t)ix0) * g->in_c, g->k_h,
                           row_bytes, (size_t)g->dil_h * g->in_w * g->in_c, col, np, j);
        return;
    }
    mcu_im2col_s8(g->input, g->in_h, g->in_w, g->in_c, g->k_h, g->k_w, g->dil_h, g->dil_w, iy0,
                  ix0, g->pad, gather);
    mcu_col_put_s8(gather, g->k_h * row_bytes, col, np, j);
}

MCU_INLINE void mcu_conv_block(const mcu_conv_geom_t *g, const int8_t *wpk, const uint8_t *w4,
                               int8_t *wrow, const int32_t *rq, int mode, int8_t *output,
                               int out_c, int32_t out_zp, int32_t act_min, int32_t act_max,
                               int16_t *col, int8_t *gather, int p0, int np) {
    const int K = g->k_h * g->k_w * g->in_c;
    for (int j = 0; j < np; ++j) {
        const int p = p0 + j;
        const int y = p / g->out_w;
        mcu_conv_put_pixel(g, y, p - y * g->out_w, col, np, j, gather);
    }
    mcu_conv_mm(col, K, np, wpk, w4, wrow, rq, out_c, mode, output + (size_t)p0 * out_c, out_c,
                out_zp, act_min, act_max);
}

MCU_INLINE void mcu_conv_body(const mcu_conv_geom_t *g, int n_pix, const int8_t *wpk,
                              const uint8_t *w4, int8_t *wrow, const int32_t *rq, int mode,
                              int8_t *output, int out_c, int32_t out_zp, int32_t act_min,
                              int32_t act_max, int16_t *col, int8_t *gather, int np) {
    if (n_pix < MCU_MM_NP || np == 1) {
        for (int p = 0; p < n_pix; ++p) {
            mcu_conv_block(g, wpk, w4, wrow, rq, mode, output, out_c, out_zp, act_min, act_max,
                           col, gather, p, 1);
        }
        return;
    }
    for (int p = 0; p < n_pix; p += MCU_MM_NP) {
        mcu_conv_block(g, wpk, w4, wrow, rq, mode, output, out_c, out_zp, act_min, act_max,
                       col, gather, mcu_block_start(p, n_pix, MCU_MM_NP), MCU_MM_NP);
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
        mcu_conv_body(&g, out_h * out_w, wpk, 0, 0, rq, MCU_RQ_FAST_FULL, output, out_c, out_zp,
                      act_min, act_max, col, gather, np);
    } else if (mode == MCU_RQ_FAST) {
        mcu_conv_body(&g, out_h * out_w, wpk, 0, 0, rq, MCU_RQ_FAST, output, out_c, out_zp,
                      act_min, act_max, col, gather, np);
    } else {
        mcu_conv_body(&g, out_h * out_w, wpk, 0, 0, rq, MCU_RQ_GENERIC, output, out_c, out_zp,
                      act_min, act_max, col, gather, np);
    }
}

/* The same on int4 weights (w4: pack_weight_rows' layout in the int4 word layout), unpacked
 * MCU_MM_RB rows at a time or, `whole` (np = MCU_MM_NP), all out_c rows once, then the int8
 * kernel. Scratch: the unpacked rows (MCU_MM_RB or out_c of K4 int8), np * K4 int16 columns
 * (word aligned after them), then K int8 for the gather (conv2d_spec.py
 * conv2d_block_scratch); the rows first, as in mcu_conv2d_1x1_s4. */
MCU_KERNEL void mcu_conv2d_s4(const int8_t *input, int in_h, int in_w, int in_c, int k_h,
                              int k_w, int stride_h, int stride_w, int dil_h, int dil_w,
                              int pad_top, int pad_left, int32_t in_zp, const uint8_t *w4,
                              const int32_t *rq, int mode, int8_t *output, int out_h, int out_w,
                              int out_c, int32_t out_zp, int32_t act_min, int32_t act_max,
                              int np, int whole, void *scratch) {
    const int K4 = (k_h * k_w * in_c + 3) & ~3;
    int8_t *wrow = (int8_t *)scratch;
    int16_t *col = (int16_t *)(wrow + (whole ? out_c : MCU_MM_RB) * K4);
    if (whole) {
        mcu_s4_unpack_words(w4, out_c * K4, wrow);
        mcu_conv2d_s8(input, in_h, in_w, in_c, k_h, k_w, stride_h, stride_w, dil_h, dil_w,
                      pad_top, pad_left, in_zp, wrow, rq, mode, output, out_h, out_w, out_c,
                      out_zp, act_min, act_max, np, col);
        return;
    }
    const mcu_conv_geom_t g = {input, in_h, in_w, in_c, k_h, k_w, stride_h, stride_w,
                               dil_h, dil_w, pad_top, pad_left, (int8_t)in_zp, out_w};
    int8_t *gather = (int8_t *)(col + (np == 1 ? 1 : MCU_MM_NP) * K4);
    if (mode == MCU_RQ_FAST_FULL) {
        mcu_conv_body(&g, out_h * out_w, 0, w4, wrow, rq, MCU_RQ_FAST_FULL, output, out_c, out_zp,
                      act_min, act_max, col, gather, np);
    } else if (mode == MCU_RQ_FAST) {
        mcu_conv_body(&g, out_h * out_w, 0, w4, wrow, rq, MCU_RQ_FAST, output, out_c, out_zp,
                      act_min, act_max, col, gather, np);
    } else {
        mcu_conv_body(&g, out_h * out_w, 0, w4, wrow, rq, MCU_RQ_GENERIC, output, out_c, out_zp,
                      act_min, act_max, col, gather, np);
    }
}

/* One pixel at a time with generation-time widened weights (mcu_mm_wide_px1), where the plan
 * grants room for one pixel's columns only. Scratch: K4 int16 + K int8, as mcu_conv2d_s8's
 * np = 1. */
MCU_INLINE void mcu_conv_px1_body(const mcu_conv_geom_t *g, int n_pix, const int16_t *wide,
                                  const int32_t *rq, int mode, int8_t *output, int out_c,
                                  int32_t out_zp, int32_t act_min, int32_t act_max,
                                  int16_t *col, int8_t *gather) {
    const int K = g->k_h * g->k_w * g->in_c;
    for (int p = 0, y = 0, x = 0; p < n_pix; ++p, output += out_c) {
        mcu_conv_put_pixel(g, y, x, col, 1, 0, gather);
        mcu_mm_wide_px1(col, K, wide, rq, out_c, mode, output, out_zp, act_min, act_max);
        if (++x == g->out_w) {
            x = 0;
            ++y;
        }
    }
}

MCU_KERNEL void mcu_conv2d_px1_s8(const int8_t *input, int in_h, int in_w, int in_c, int k_h,
                                  int k_w, int stride_h, int stride_w, int dil_h, int dil_w,
                                  int pad_top, int pad_left, int32_t in_zp, const int16_t *wide,
                                  const int32_t *rq, int mode, int8_t *output, int out_h,
                                  int out_w, int out_c, int32_t out_zp, int32_t act_min,
                                  int32_t act_max, void *scratch) {
    const int K4 = (k_h * k_w * in_c + 3) & ~3;
    int16_t *col = (int16_t *)scratch;
    int8_t *gather = (int8_t *)(col + K4);
    const mcu_conv_geom_t g = {input, in_h, in_w, in_c, k_h, k_w, stride_h, stride_w,
                               dil_h, dil_w, pad_top, pad_left, (int8_t)in_zp, out_w};
    if (mode == MCU_RQ_FAST_FULL) {
        mcu_conv_px1_body(&g, out_h * out_w, wide, rq, MCU_RQ_FAST_FULL, output, out_c, out_zp,
                          act_min, act_max, col, gather);
    } else if (mode == MCU_RQ_FAST) {
        mcu_conv_px1_body(&g, out_h * out_w, wide, rq, MCU_RQ_FAST, output, out_c, out_zp,
                          act_min, act_max, col, gather);
    } else {
        mcu_conv_px1_body(&g, out_h * out_w, wide, rq, MCU_RQ_GENERIC, output, out_c, out_zp,
                          act_min, act_max, col, gather);
    }
}

/* ---------------------------------------------------------------------------------------
 * Pointwise convolutions of 8, 16, 24 or 32 input channels, any stride, FAST_FULL requantisation.
 *
 * With so few taps the matrix core spends most of each output on setup and on widening the
 * weights; here one pixel's K inputs are loaded and widened once into K/2 registers, and
 * every output channel's record (_conv_common.py conv1x1_register_records: {2 bias, K/2
 * words of doubled, pre-widened weights, multiplier, rnd, rs}) streams by in LDMs. Because
 * the accumulator is already 2 acc, the requantisation is ADD (sign), SMMLAR, ASR, SSAT
 * (mcu_common.h mcu_requant_fast, MCU_RQF_FUSED, which the assembly loops below spell out):
 * about K/2 + 10 instructions per output. No scratch.
 */
/* One output channel of a record of K taps (any multiple of 4), in C: pair word j = 2g + b of
 * group g holds taps 4g + b (low halfword) and 4g + 2 + b (high), doubled, as above. */
MCU_INLINE int8_t mcu_1x1_rec_one(const int8_t *in, int K, const int32_t *pw) {
    int32_t acc = pw[0];
    for (int j = 0; j < K / 2; ++j) {
        const int t = 4 * (j >> 1) + (j & 1);
        acc += (int32_t)(int16_t)((uint32_t)pw[1 + j] & 0xffffu) * in[t] +
               (int32_t)(int16_t)((uint32_t)pw[1 + j] >> 16) * in[t + 2];
    }
    const int32_t *q = pw + 1 + K / 2;
    return (int8_t)mcu_ssat8(mcu_requant_fast(acc, acc, q[0], q[1], q[2], MCU_RQF_FUSED));
}

#if MCU_USE_DSP
/* K = 8: the record {2 bias, W0..W3, multiplier, rnd, rs} in four LDRDs (any registers:
 * LDM would pin them, which GCC cannot always grant where the kernel is inlined). */
MCU_INLINE int8_t *mcu_1x1_reg_c8(uint32_t x0, uint32_t x1, uint32_t x2, uint32_t x3,
                                  const int32_t *pw, int8_t *po, const int8_t *end) {
    uint32_t acc, t1, t2, t3;
    __asm__ volatile("1:\n\t"
                     "ldrd %[acc], %[t1], [%[pw]], #8\n\t"
                     "smlad %[acc], %[t1], %[x0], %[acc]\n\t"
                     "ldrd %[t1], %[t2], [%[pw]], #8\n\t"
                     "smlad %[acc], %[t1], %[x1], %[acc]\n\t"
                     "smlad %[acc], %[t2], %[x2], %[acc]\n\t"
                     "ldrd %[t1], %[t2], [%[pw]], #8\n\t"
                     "smlad %[acc], %[t1], %[x3], %[acc]\n\t"
                     "ldrd %[t1], %[t3], [%[pw]], #8\n\t"
                     "add %[t1], %[t1], %[acc], asr #31\n\t"
                     "smmlar %[acc], %[acc], %[t2], %[t1]\n\t"
                     "asr %[acc], %[acc], %[t3]\n\t"
                     "ssat %[acc], #8, %[acc]\n\t"
                     "strb %[acc], [%[po]], #1\n\t"
                     "cmp %[po], %[end]\n\t"
                     "bne 1b\n\t"
                     : [pw] "+r"(pw), [po] "+r"(po), [acc] "=&r"(acc), [t1] "=&r"(t1),
                       [t2] "=&r"(t2), [t3] "=&r"(t3)
                     : [x0] "r"(x0), [x1] "r"(x1), [x2] "r"(x2), [x3] "r"(x3), [end] "r"(end)
                     : "cc", "memory");
    return po;
}

/* K = 16: eight input registers and two pointers leave three temporaries (GCC refuses more
 * here), so the record comes in LDRDs into any registers (no LDM order constraint), and the
 * loop end is read from memory into a temporary the requantisation has freed. */
MCU_INLINE int8_t *mcu_1x1_reg_c16(const uint32_t *x, const int32_t *pw, int8_t *po,
                                   const int8_t *end) {
    uint32_t acc, t1, t2;
    __asm__ volatile("1:\n\t"
                     "ldrd %[acc], %[t1], [%[pw]], #8\n\t"
                     "smlad %[acc], %[t1], %[x0], %[acc]\n\t"
                     "ldrd %[t1], %[t2], [%[pw]], #8\n\t"
                     "smlad %[acc], %[t1], %[x1], %[acc]\n\t"
                     "smlad %[acc], %[t2], %[x2], %[acc]\n\t"
                     "ldrd %[t1], %[t2], [%[pw]], #8\n\t"
                     "smlad %[acc], %[t1], %[x3], %[acc]\n\t"
                     "smlad %[acc], %[t2], %[x4], %[acc]\n\t"
                     "ldrd %[t1], %[t2], [%[pw]], #8\n\t"
                     "smlad %[acc], %[t1], %[x5], %[acc]\n\t"
                     "smlad %[acc], %[t2], %[x6], %[acc]\n\t"
                     "ldrd %[t1], %[t2], [%[pw]], #8\n\t"
                     "smlad %[acc], %[t1], %[x7], %[acc]\n\t"
                     "ldr %[t1], [%[pw]], #4\n\t"
                     "add %[t1], %[t1], %[acc], asr #31\n\t"
                     "smmlar %[acc], %[acc], %[t2], %[t1]\n\t"
                     "ldr %[t1], [%[pw]], #4\n\t"
                     "asr %[acc], %[acc], %[t1]\n\t"
                     "ssat %[acc], #8, %[acc]\n\t"
                     "strb %[acc], [%[po]], #1\n\t"
                     "ldr %[t1], %[end]\n\t"
                     "cmp %[po], %[t1]\n\t"
                     "bne 1b\n\t"
                     : [pw] "+r"(pw), [po] "+r"(po), [acc] "=&r"(acc), [t1] "=&r"(t1),
                       [t2] "=&r"(t2)
                     : [x0] "r"(x[0]), [x1] "r"(x[1]), [x2] "r"(x[2]), [x3] "r"(x[3]),
                       [x4] "r"(x[4]), [x5] "r"(x[5]), [x6] "r"(x[6]), [x7] "r"(x[7]),
                       [end] "m"(end)
                     : "cc", "memory");
    return po;
}
/* K = 24 or 32: the widened input words do not fit in registers beside the pointers, so they
 * wait in `xs` (stack); two output channels per iteration share each LDRD of them (records c
 * and c + 1 lie one record apart). About 29.5 (K = 24) and 33.5 (K = 32) instructions per
 * output against ~46 of the matrix core at K = 32 (person_detect ops 6 and 8). Returns the
 * record after the last pair; the loop runs at least once (callers need out_c >= 2). */
MCU_INLINE const int32_t *mcu_1x1_rec2_c24(const uint32_t *xs, const int32_t *pw, int8_t *po,
                                            const int8_t *end) {
    uint32_t acc0, acc1, w0, w1, a0, a1;
    __asm__ volatile(
                     "1:\n\t"
                     "ldr %[acc0], [%[pw]]\n\t"
                     "ldr %[acc1], [%[pw], #64]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #4]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #68]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #8]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #12]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #76]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #16]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #20]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #84]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #24]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #28]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #92]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #32]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #36]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #100]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #40]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #44]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #108]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #52]\n\t"
                     "ldr %[a0], [%[pw], #60]\n\t"
                     "add %[w1], %[w1], %[acc0], asr #31\n\t"
                     "smmlar %[acc0], %[acc0], %[w0], %[w1]\n\t"
                     "asr %[acc0], %[acc0], %[a0]\n\t"
                     "ssat %[acc0], #8, %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #116]\n\t"
                     "ldr %[a0], [%[pw], #124]\n\t"
                     "add %[w1], %[w1], %[acc1], asr #31\n\t"
                     "smmlar %[acc1], %[acc1], %[w0], %[w1]\n\t"
                     "asr %[acc1], %[acc1], %[a0]\n\t"
                     "ssat %[acc1], #8, %[acc1]\n\t"
                     "strb %[acc0], [%[po]], #1\n\t"
                     "strb %[acc1], [%[po]], #1\n\t"
                     "add %[pw], %[pw], #128\n\t"
                     "cmp %[po], %[end]\n\t"
                     "bne 1b\n\t"
                     : [pw] "+r"(pw), [po] "+r"(po), [acc0] "=&r"(acc0), [acc1] "=&r"(acc1),
                       [w0] "=&r"(w0), [w1] "=&r"(w1), [a0] "=&r"(a0), [a1] "=&r"(a1)
                     : [xs] "r"(xs), [end] "r"(end)
                     : "cc", "memory");
    return pw;
}

MCU_INLINE const int32_t *mcu_1x1_rec2_c32(const uint32_t *xs, const int32_t *pw, int8_t *po,
                                            const int8_t *end) {
    uint32_t acc0, acc1, w0, w1, a0, a1;
    __asm__ volatile(
                     "1:\n\t"
                     "ldr %[acc0], [%[pw]]\n\t"
                     "ldr %[acc1], [%[pw], #80]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #4]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #84]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #8]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #12]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #92]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #16]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #20]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #100]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #24]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #28]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #108]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #32]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #36]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #116]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #40]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #44]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #124]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #48]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #52]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #132]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[a0], %[a1], [%[xs], #56]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #60]\n\t"
                     "smlad %[acc0], %[w0], %[a0], %[acc0]\n\t"
                     "smlad %[acc0], %[w1], %[a1], %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #140]\n\t"
                     "smlad %[acc1], %[w0], %[a0], %[acc1]\n\t"
                     "smlad %[acc1], %[w1], %[a1], %[acc1]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #68]\n\t"
                     "ldr %[a0], [%[pw], #76]\n\t"
                     "add %[w1], %[w1], %[acc0], asr #31\n\t"
                     "smmlar %[acc0], %[acc0], %[w0], %[w1]\n\t"
                     "asr %[acc0], %[acc0], %[a0]\n\t"
                     "ssat %[acc0], #8, %[acc0]\n\t"
                     "ldrd %[w0], %[w1], [%[pw], #148]\n\t"
                     "ldr %[a0], [%[pw], #156]\n\t"
                     "add %[w1], %[w1], %[acc1], asr #31\n\t"
                     "smmlar %[acc1], %[acc1], %[w0], %[w1]\n\t"
                     "asr %[acc1], %[acc1], %[a0]\n\t"
                     "ssat %[acc1], #8, %[acc1]\n\t"
                     "strb %[acc0], [%[po]], #1\n\t"
                     "strb %[acc1], [%[po]], #1\n\t"
                     "add %[pw], %[pw], #160\n\t"
                     "cmp %[po], %[end]\n\t"
                     "bne 1b\n\t"
                     : [pw] "+r"(pw), [po] "+r"(po), [acc0] "=&r"(acc0), [acc1] "=&r"(acc1),
                       [w0] "=&r"(w0), [w1] "=&r"(w1), [a0] "=&r"(a0), [a1] "=&r"(a1)
                     : [xs] "r"(xs), [end] "r"(end)
                     : "cc", "memory");
    return pw;
}
#else
/* The same arithmetic in C: pair word j of group g holds (2 w[4g + b], 2 w[4g + 2 + b]) for
 * b = j & 1. Written out (GCC -O2 leaves the loop over j rolled, with its index arithmetic
 * per multiply); the inputs stay in registers. */
#define MCU_1X1_PAIR(j, xa, xb)                                                               \
    (acc += (int32_t)(int16_t)((uint32_t)pw[1 + (j)] & 0xffffu) * (xa) +                     \
            (int32_t)(int16_t)((uint32_t)pw[1 + (j)] >> 16) * (xb))

MCU_INLINE int8_t *mcu_1x1_reg_portable(const int8_t *in, int K, const int32_t *pw,
                                        int8_t *po, const int8_t *end) {
    const int32_t x0 = in[0], x1 = in[1], x2 = in[2], x3 = in[3], x4 = in[4], x5 = in[5],
                  x6 = in[6], x7 = in[7];
    if (K == 8) {
        for (; po != end; ++po, pw += 8) {
            int32_t acc = pw[0];
            MCU_1X1_PAIR(0, x0, x2);
            MCU_1X1_PAIR(1, x1, x3);
            MCU_1X1_PAIR(2, x4, x6);
            MCU_1X1_PAIR(3, x5, x7);
            *po = (int8_t)mcu_ssat8(
                mcu_requant_fast(acc, acc, pw[5], pw[6], pw[7], MCU_RQF_FUSED));
        }
        return po;
    }
    const int32_t x8 = in[8], x9 = in[9], x10 = in[10], x11 = in[11], x12 = in[12],
                  x13 = in[13], x14 = in[14], x15 = in[15];
    for (; po != end; ++po, pw += 12) {
        int32_t acc = pw[0];
        MCU_1X1_PAIR(0, x0, x2);
        MCU_1X1_PAIR(1, x1, x3);
        MCU_1X1_PAIR(2, x4, x6);
        MCU_1X1_PAIR(3, x5, x7);
        MCU_1X1_PAIR(4, x8, x10);
        MCU_1X1_PAIR(5, x9, x11);
        MCU_1X1_PAIR(6, x12, x14);
        MCU_1X1_PAIR(7, x13, x15);
        *po = (int8_t)mcu_ssat8(
            mcu_requant_fast(acc, acc, pw[9], pw[10], pw[11], MCU_RQF_FUSED));
    }
    return po;
}
#endif

/* One pixel's out_c outputs from its in_c = 8 or 16 inputs at `px`; returns the output
 * position after them. */
MCU_INLINE int8_t *mcu_1x1_reg_pixel_narrow(const int8_t *px, int in_c, const int32_t *rec,
                                            int8_t *po, int out_c) {
    const int8_t *const end = po + out_c;
#if MCU_USE_DSP
    const uint32_t w0 = mcu_read_u32(px), w1 = mcu_read_u32(px + 4);
    if (in_c == 8) {
        return mcu_1x1_reg_c8(mcu_sxtb16(w0), mcu_mm_sxtb16_hi(w0), mcu_sxtb16(w1),
                              mcu_mm_sxtb16_hi(w1), rec, po, end);
    }
    const uint32_t w2 = mcu_read_u32(px + 8), w3 = mcu_read_u32(px + 12);
    const uint32_t x[8] = {mcu_sxtb16(w0), mcu_mm_sxtb16_hi(w0), mcu_sxtb16(w1),
                           mcu_mm_sxtb16_hi(w1), mcu_sxtb16(w2), mcu_mm_sxtb16_hi(w2),
                           mcu_sxtb16(w3), mcu_mm_sxtb16_hi(w3)};
    return mcu_1x1_reg_c16(x, rec, po, end);
#else
    return mcu_1x1_reg_portable(px, in_c, rec, po, end);
#endif
}

/* The same for in_c = 24 or 32 (inputs widened on the stack, two channels per loop). */
MCU_INLINE int8_t *mcu_1x1_reg_pixel_wide(const int8_t *px, int in_c, const int32_t *rec,
                                          int8_t *po, int out_c) {
#if MCU_USE_DSP
    uint32_t xs[16];
    for (int g = 0; g < in_c / 4; ++g) {
        const uint32_t w = mcu_read_u32(px + 4 * g);
        xs[2 * g] = mcu_sxtb16(w);
        xs[2 * g + 1] = mcu_mm_sxtb16_hi(w);
    }
    int8_t *const pairs_end = po + (out_c & ~1);
    const int32_t *last = rec;
    if (out_c >= 2 && in_c == 24) {
        last = mcu_1x1_rec2_c24(xs, rec, po, pairs_end);
    } else if (out_c >= 2) {
        last = mcu_1x1_rec2_c32(xs, rec, po, pairs_end);
    }
    po = pairs_end;
    if (out_c & 1) *po++ = mcu_1x1_rec_one(px, in_c, last);
#else
    for (const int32_t *pw = rec, *const end = rec + out_c * (in_c / 2 + 4); pw != end;
         pw += in_c / 2 + 4) {
        *po++ = mcu_1x1_rec_one(px, in_c, pw);
    }
#endif
    return po;
}

/* Both not inlined into their callers' loops below: the register loops need up to 13
 * registers, which GCC cannot find where more of the caller's stepping is live around them
 * ("impossible constraints"); a call costs a few instructions per pixel. */
static __attribute__((noinline)) int8_t *mcu_1x1_reg_wide_run(const int8_t *px, int n_pix,
                                                             int in_c, const int32_t *rec,
                                                             int8_t *po, int out_c) {
    for (int p = 0; p < n_pix; ++p, px += in_c) {
        po = mcu_1x1_reg_pixel_wide(px, in_c, rec, po, out_c);
    }
    return po;
}

static __attribute__((noinline)) int8_t *mcu_1x1_reg_pixel_call(const int8_t *px, int in_c,
                                                               const int32_t *rec,
                                                               int8_t *po, int out_c) {
    return in_c >= 24 ? mcu_1x1_reg_pixel_wide(px, in_c, rec, po, out_c)
                      : mcu_1x1_reg_pixel_narrow(px, in_c, rec, po, out_c);
}

/* n_pix consecutive pixels of in_c (8, 16, 24 or 32) channels -> out_c channels each (a
 * stride-1 layer); `rec` holds conv1x1_register_records' out_c records. */
MCU_KERNEL void mcu_conv2d_1x1_reg_s8(const int8_t *input, int n_pix, int in_c,
                                      const int32_t *rec, int8_t *output, int out_c) {
    if (in_c >= 24) {
        (void)mcu_1x1_reg_wide_run(input, n_pix, in_c, rec, output, out_c);
        return;
    }
    int8_t *po = output;
    for (int p = 0; p < n_pix; ++p, input += in_c) {
        po = mcu_1x1_reg_pixel_narrow(input, in_c, rec, po, out_c);
    }
}

/* The same at strides above 1: out_h x out_w output pixels, output pixel (y, x) reading the
 * input pixel at input + y * row_step + x * pix_step (bytes: stride_h * in_w * in_c and
 * stride_w * in_c). */
MCU_KERNEL void mcu_conv2d_1x1_reg_strided_s8(const int8_t *input, int out_h, int out_w,
                                              int row_step, int pix_step, int in_c,
                                              const int32_t *rec, int8_t *output, int out_c) {
    int8_t *po = output;
    for (int y = 0; y < out_h; ++y, input += row_step) {
        const int8_t *px = input;
        for (int x = 0; x < out_w; ++x, px += pix_step) {
            po = mcu_1x1_reg_pixel_call(px, in_c, rec, po, out_c);
        }
    }
}
