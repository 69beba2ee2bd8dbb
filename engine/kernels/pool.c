/* AVERAGE_POOL_2D and MAX_POOL_2D, int8 NHWC (reference integer_ops/pooling.h). The window
 * is clipped to the input (padding cells are not counted), the average divides the int32
 * sum by the number of cells rounding half away from zero, and the result is clamped to the
 * fused activation range. Input and output share one quantization (TFLM requires it). */
#include "mcu_common.h"

/* Pool geometry, one const int32 array in this order. */
enum {
    MCU_POOL_BATCHES, MCU_POOL_IN_H, MCU_POOL_IN_W, MCU_POOL_CHANNELS, MCU_POOL_OUT_H,
    MCU_POOL_OUT_W, MCU_POOL_FILTER_H, MCU_POOL_FILTER_W, MCU_POOL_STRIDE_H, MCU_POOL_STRIDE_W,
    MCU_POOL_PAD_TOP, MCU_POOL_PAD_LEFT, MCU_POOL_ACT_MIN, MCU_POOL_ACT_MAX, MCU_POOL_NUM_PARAMS
};

MCU_INLINE int32_t mcu_pool_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
MCU_INLINE int32_t mcu_pool_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }

MCU_INLINE void mcu_pool_s8(const int8_t *in, int8_t *out, const int32_t *g, int is_max) {
    const int32_t in_h = g[MCU_POOL_IN_H], in_w = g[MCU_POOL_IN_W], ch = g[MCU_POOL_CHANNELS];
    const int32_t act_min = g[MCU_POOL_ACT_MIN], act_max = g[MCU_POOL_ACT_MAX];
    int32_t b, oy, ox, c, fy, fx;
    for (b = 0; b < g[MCU_POOL_BATCHES]; ++b) {
        const int8_t *img = in + (size_t)b * in_h * in_w * ch;
        for (oy = 0; oy < g[MCU_POOL_OUT_H]; ++oy) {
            const int32_t y0 = oy * g[MCU_POOL_STRIDE_H] - g[MCU_POOL_PAD_TOP];
            const int32_t fy0 = mcu_pool_max_i32(0, -y0);
            const int32_t fy1 = mcu_pool_min_i32(g[MCU_POOL_FILTER_H], in_h - y0);
            for (ox = 0; ox < g[MCU_POOL_OUT_W]; ++ox) {
                const int32_t x0 = ox * g[MCU_POOL_STRIDE_W] - g[MCU_POOL_PAD_LEFT];
                const int32_t fx0 = mcu_pool_max_i32(0, -x0);
                const int32_t fx1 = mcu_pool_min_i32(g[MCU_POOL_FILTER_W], in_w - x0);
                const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                for (c = 0; c < ch; ++c) {
                    int32_t acc = is_max ? -128 : 0;
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int8_t *row = img + ((size_t)(y0 + fy) * in_w + x0) * ch + c;
                        for (fx = fx0; fx < fx1; ++fx) {
                            const int32_t v = row[fx * ch];
                            if (is_max) {
                                acc = v > acc ? v : acc;
                            } else {
                                acc += v;
                            }
                        }
                    }
                    if (!is_max && count > 0) {
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    *out++ = (int8_t)mcu_clamp_i32(acc, act_min, act_max);
                }
            }
        }
    }
}

MCU_KERNEL void mcu_avgpool_s8(const int8_t *in, int8_t *out, const int32_t *geometry) {
    mcu_pool_s8(in, out, geometry, 0);
}

MCU_KERNEL void mcu_maxpool_s8(const int8_t *in, int8_t *out, const int32_t *geometry) {
    mcu_pool_s8(in, out, geometry, 1);
}
