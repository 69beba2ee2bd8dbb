/* SQUARED_DIFFERENCE int8 with broadcasting (TFLM squared_difference.cc, int8 path): each
 * input is offset by its zero point, shifted left by 7 bits and rescaled to half the larger
 * input scale (rounding doubling high multiply, rounding right shift); the difference of the
 * two is squared in int32 (at most (255 * 2^7 / 2)^2 < 2^31), rescaled to the output scale
 * (TFLite MultiplyByQuantizedMultiplier), offset by the output zero point and clamped to
 * int8. No fused activation. */
#include "mcu_broadcast.h"

/* Quantization parameters, one const int32 array in this order (engine/quant_ops.py
 * squared_difference_params). */
enum {
    MCU_SQD_IN1_OFFSET, MCU_SQD_IN1_MULT, MCU_SQD_IN1_SHIFT,
    MCU_SQD_IN2_OFFSET, MCU_SQD_IN2_MULT, MCU_SQD_IN2_SHIFT,
    MCU_SQD_OUT_OFFSET, MCU_SQD_OUT_MULT, MCU_SQD_OUT_SHIFT, MCU_SQD_NUM_PARAMS
};

#define MCU_SQD_LEFT_SHIFT 7

MCU_INLINE int32_t mcu_sqd_scale(int32_t x, int32_t offset, int32_t multiplier, int32_t shift) {
    return mcu_rounding_divide_by_pot(
        mcu_saturating_rounding_doubling_high_mul((x + offset) * (1 << MCU_SQD_LEFT_SHIFT),
                                                  multiplier),
        -shift);
}

MCU_INLINE int8_t mcu_sqd_one(int32_t x, int32_t y, const int32_t *q) {
    const int32_t d = mcu_sqd_scale(x, q[MCU_SQD_IN1_OFFSET], q[MCU_SQD_IN1_MULT],
                                    q[MCU_SQD_IN1_SHIFT]) -
                      mcu_sqd_scale(y, q[MCU_SQD_IN2_OFFSET], q[MCU_SQD_IN2_MULT],
                                    q[MCU_SQD_IN2_SHIFT]);
    return mcu_clamp_s8(mcu_multiply_by_quantized_multiplier(d * d, q[MCU_SQD_OUT_MULT],
                                                            q[MCU_SQD_OUT_SHIFT]) +
                        q[MCU_SQD_OUT_OFFSET]);
}

MCU_KERNEL void mcu_squared_difference_s8(const int8_t *a, const int8_t *b, int8_t *out,
                                          const int32_t *dims, const int32_t *sa,
                                          const int32_t *sb, const int32_t *q) {
    MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, mcu_sqd_one(x, y, q));
}
