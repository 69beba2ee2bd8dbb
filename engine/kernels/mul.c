/* MUL, int8 with broadcasting (reference integer_ops/mul.h): the product of the two
 * zero-point-offset inputs is rescaled once by input1_scale * input2_scale / output_scale,
 * offset and clamped to the fused activation range. */
#include "mcu_broadcast.h"

enum {
    MCU_MUL_IN1_OFFSET, MCU_MUL_IN2_OFFSET, MCU_MUL_OUT_OFFSET, MCU_MUL_MULT, MCU_MUL_SHIFT,
    MCU_MUL_ACT_MIN, MCU_MUL_ACT_MAX, MCU_MUL_NUM_PARAMS
};

MCU_INLINE int8_t mcu_mul_one(int32_t x, int32_t y, const int32_t *q) {
    const int32_t prod = (x + q[MCU_MUL_IN1_OFFSET]) * (y + q[MCU_MUL_IN2_OFFSET]);
    const int32_t v = q[MCU_MUL_OUT_OFFSET] +
                      mcu_multiply_by_quantized_multiplier(prod, q[MCU_MUL_MULT], q[MCU_MUL_SHIFT]);
    return (int8_t)mcu_clamp_i32(v, q[MCU_MUL_ACT_MIN], q[MCU_MUL_ACT_MAX]);
}

MCU_KERNEL void mcu_mul_s8(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *dims,
                           const int32_t *sa, const int32_t *sb, const int32_t *q) {
    MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, mcu_mul_one(x, y, q));
}
