/* RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR, 8-bit NHWC.
 *
 * The source coordinates depend only on the output coordinate, the sizes and the
 * align_corners / half_pixel_centers flags, so the generator computes them with TFLite's
 * arithmetic (float32 for nearest neighbour, 10-bit fixed point for int8 bilinear) into small
 * tables; the kernels only gather and, for bilinear, interpolate exactly as the reference
 * ResizeBilinearInteger: four products of the input with 10-bit weights, rounded half away
 * from zero at 20 bits. */
#include "mcu_common.h"

/* Geometry: batches, in_h, in_w, channels, out_h, out_w. */
enum { MCU_RS_BATCHES, MCU_RS_IN_H, MCU_RS_IN_W, MCU_RS_CHANNELS, MCU_RS_OUT_H, MCU_RS_OUT_W };

MCU_KERNEL void mcu_resize_nearest_8(const void *in, void *out, const int32_t *g,
                                     const int32_t *src_y, const int32_t *src_x) {
    const uint8_t *s = (const uint8_t *)in;
    uint8_t *d = (uint8_t *)out;
    const size_t ch = (size_t)g[MCU_RS_CHANNELS];
    const size_t row = (size_t)g[MCU_RS_IN_W] * ch;
    int32_t b, y, x;
    for (b = 0; b < g[MCU_RS_BATCHES]; ++b) {
        const uint8_t *img = s + (size_t)b * g[MCU_RS_IN_H] * row;
        for (y = 0; y < g[MCU_RS_OUT_H]; ++y) {
            const uint8_t *line = img + (size_t)src_y[y] * row;
            for (x = 0; x < g[MCU_RS_OUT_W]; ++x) {
                memcpy(d, line + (size_t)src_x[x] * ch, ch);
                d += ch;
            }
        }
    }
}

/* Per output row y: y0[y], y1[y] and the 10-bit weight fy[y] = input_y - 1024 * y0
 * (likewise for x); the table arrays are laid out (lower, upper, weight) per coordinate. */
MCU_KERNEL void mcu_resize_bilinear_s8(const int8_t *in, int8_t *out, const int32_t *g,
                                       const int32_t *ytab, const int32_t *xtab) {
    const int32_t ch = g[MCU_RS_CHANNELS];
    const int32_t row = g[MCU_RS_IN_W] * ch;
    int32_t b, y, x, c;
    for (b = 0; b < g[MCU_RS_BATCHES]; ++b) {
        const int8_t *img = in + (size_t)b * g[MCU_RS_IN_H] * row;
        for (y = 0; y < g[MCU_RS_OUT_H]; ++y) {
            const int8_t *r0 = img + ytab[3 * y] * row;
            const int8_t *r1 = img + ytab[3 * y + 1] * row;
            const int64_t wy = ytab[3 * y + 2];
            for (x = 0; x < g[MCU_RS_OUT_W]; ++x) {
                const int32_t x0 = xtab[3 * x] * ch, x1 = xtab[3 * x + 1] * ch;
                const int64_t wx = xtab[3 * x + 2];
                for (c = 0; c < ch; ++c) {
                    const int64_t v = (int64_t)r0[x0 + c] * (1024 - wy) * (1024 - wx) +
                                      (int64_t)r1[x0 + c] * wy * (1024 - wx) +
                                      (int64_t)r0[x1 + c] * (1024 - wy) * wx +
                                      (int64_t)r1[x1 + c] * wy * wx;
                    const int64_t round = v > 0 ? ((int64_t)1 << 19) : -((int64_t)1 << 19);
                    *out++ = (int8_t)((v + round) / ((int64_t)1 << 20));
                }
            }
        }
    }
}
