/* ADD and SUB, int8 with broadcasting: TFLite's reference arithmetic (integer_ops/add.h,
 * reference/sub.h). Both inputs are offset by their zero points, shifted left by 20 bits,
 * rescaled to a common scale (twice the larger input scale) with rounding doubling high
 * multiplies, added or subtracted, rescaled to the output scale, offset and clamped to the
 * fused activation range. */
#include "mcu_broadcast.h"

/* Quantization parameters, passed as one const int32 array (Flash) in this order. */
enum {
    MCU_ADD_IN1_OFFSET, MCU_ADD_IN1_MULT, MCU_ADD_IN1_SHIFT,
    MCU_ADD_IN2_OFFSET, MCU_ADD_IN2_MULT, MCU_ADD_IN2_SHIFT,
    MCU_ADD_OUT_OFFSET, MCU_ADD_OUT_MULT, MCU_ADD_OUT_SHIFT,
    MCU_ADD_ACT_MIN, MCU_ADD_ACT_MAX, MCU_ADD_NUM_PARAMS
};

#define MCU_ADD_LEFT_SHIFT 20

MCU_INLINE int32_t mcu_add_scale_input(int32_t x, int32_t offset, int32_t multiplier,
                                       int32_t shift) {
    const int32_t shifted = (x + offset) * (1 << MCU_ADD_LEFT_SHIFT);
    return mcu_rounding_divide_by_pot(mcu_saturating_rounding_doubling_high_mul(shifted, multiplier),
                                      -shift);
}

MCU_INLINE int8_t mcu_add_finish(int32_t raw, const int32_t *q) {
    const int32_t out = mcu_rounding_divide_by_pot(
                            mcu_saturating_rounding_doubling_high_mul(raw, q[MCU_ADD_OUT_MULT]),
                            -q[MCU_ADD_OUT_SHIFT]) + q[MCU_ADD_OUT_OFFSET];
    return (int8_t)mcu_clamp_i32(out, q[MCU_ADD_ACT_MIN], q[MCU_ADD_ACT_MAX]);
}

/* One output element of ADD (sign +1) or SUB (sign -1) from the raw int8 inputs x, y. */
MCU_INLINE int8_t mcu_add_sub_one(int32_t x, int32_t y, const int32_t *q, int sign) {
    const int32_t sx = mcu_add_scale_input(x, q[MCU_ADD_IN1_OFFSET], q[MCU_ADD_IN1_MULT],
                                           q[MCU_ADD_IN1_SHIFT]);
    const int32_t sy = mcu_add_scale_input(y, q[MCU_ADD_IN2_OFFSET], q[MCU_ADD_IN2_MULT],
                                           q[MCU_ADD_IN2_SHIFT]);
    return mcu_add_finish(sign > 0 ? sx + sy : sx - sy, q);
}

MCU_KERNEL void mcu_add_s8(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *dims,
                           const int32_t *sa, const int32_t *sb, const int32_t *q) {
    MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, mcu_add_sub_one(x, y, q, 1));
}

MCU_KERNEL void mcu_sub_s8(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *dims,
                           const int32_t *sa, const int32_t *sb, const int32_t *q) {
    MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, mcu_add_sub_one(x, y, q, -1));
}
