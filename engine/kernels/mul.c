/* MUL, int8 with broadcasting (reference integer_ops/mul.h): the product of the two
 * zero-point-offset inputs is rescaled once by input1_scale * input2_scale / output_scale,
 * offset and clamped to the fused activation range. */
#include "mcu_broadcast.h"

enum {
    MCU_MUL_IN1_OFFSET, MCU_MUL_IN2_OFFSET, MCU_MUL_OUT_OFFSET, MCU_MUL_MULT, MCU_MUL_SHIFT,
    MCU_MUL_ACT_MIN, MCU_MUL_ACT_MAX, MCU_MUL_NUM_PARAMS
};

MCU_KERNEL void mcu_mul_s8(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *dims,
                           const int32_t *sa, const int32_t *sb, const int32_t *q) {
    const int32_t n = dims[MCU_BCAST_DIMS - 1];
    const int32_t ia = sa[MCU_BCAST_DIMS - 1], ib = sb[MCU_BCAST_DIMS - 1];
    MCU_FOR_EACH_ROW(dims, sa, sb, oa, ob, oo, {
        const int8_t *ra = a + oa;
        const int8_t *rb = b + ob;
        int8_t *ro = out + oo;
        int32_t i;
        for (i = 0; i < n; ++i) {
            const int32_t prod = (ra[i * ia] + q[MCU_MUL_IN1_OFFSET]) *
                                 (rb[i * ib] + q[MCU_MUL_IN2_OFFSET]);
            const int32_t v = q[MCU_MUL_OUT_OFFSET] +
                              mcu_multiply_by_quantized_multiplier(prod, q[MCU_MUL_MULT],
                                                                   q[MCU_MUL_SHIFT]);
            ro[i] = (int8_t)mcu_clamp_i32(v, q[MCU_MUL_ACT_MIN], q[MCU_MUL_ACT_MAX]);
        }
    });
}
