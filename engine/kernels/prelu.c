/* PRELU, int8 with a broadcast alpha (reference prelu.h): non-negative inputs are rescaled
 * by input_scale / output_scale, negative ones multiplied by the offset alpha and rescaled by
 * input_scale * alpha_scale / output_scale. */
#include "mcu_broadcast.h"

enum {
    MCU_PRELU_IN_OFFSET, MCU_PRELU_ALPHA_OFFSET, MCU_PRELU_OUT_OFFSET, MCU_PRELU_MULT_ID,
    MCU_PRELU_SHIFT_ID, MCU_PRELU_MULT_ALPHA, MCU_PRELU_SHIFT_ALPHA, MCU_PRELU_NUM_PARAMS
};

/* One output element from the raw int8 input x and alpha al. */
MCU_INLINE int8_t mcu_prelu_one(int32_t x, int32_t al, const int32_t *q) {
    const int32_t xo = x + q[MCU_PRELU_IN_OFFSET];
    int32_t v;
    if (xo >= 0) {
        v = mcu_multiply_by_quantized_multiplier(xo, q[MCU_PRELU_MULT_ID], q[MCU_PRELU_SHIFT_ID]);
    } else {
        v = mcu_multiply_by_quantized_multiplier(xo * (al + q[MCU_PRELU_ALPHA_OFFSET]),
                                                 q[MCU_PRELU_MULT_ALPHA], q[MCU_PRELU_SHIFT_ALPHA]);
    }
    return mcu_clamp_s8(v + q[MCU_PRELU_OUT_OFFSET]);
}

MCU_KERNEL void mcu_prelu_s8(const int8_t *in, const int8_t *alpha, int8_t *out,
                             const int32_t *dims, const int32_t *sa, const int32_t *sb,
                             const int32_t *q) {
    MCU_BCAST_MAP_S8(in, alpha, out, dims, sa, sb, x, al, mcu_prelu_one(x, al, q));
}
