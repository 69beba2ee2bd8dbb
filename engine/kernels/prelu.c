/* PRELU, int8 with a broadcast alpha (reference prelu.h): non-negative inputs are rescaled
 * by input_scale / output_scale, negative ones multiplied by the offset alpha and rescaled by
 * input_scale * alpha_scale / output_scale. */
#include "mcu_broadcast.h"

enum {
    MCU_PRELU_IN_OFFSET, MCU_PRELU_ALPHA_OFFSET, MCU_PRELU_OUT_OFFSET, MCU_PRELU_MULT_ID,
    MCU_PRELU_SHIFT_ID, MCU_PRELU_MULT_ALPHA, MCU_PRELU_SHIFT_ALPHA, MCU_PRELU_NUM_PARAMS
};

MCU_KERNEL void mcu_prelu_s8(const int8_t *in, const int8_t *alpha, int8_t *out,
                             const int32_t *dims, const int32_t *sa, const int32_t *sb,
                             const int32_t *q) {
    const int32_t n = dims[MCU_BCAST_DIMS - 1];
    const int32_t ia = sa[MCU_BCAST_DIMS - 1], ib = sb[MCU_BCAST_DIMS - 1];
    MCU_FOR_EACH_ROW(dims, sa, sb, oa, ob, oo, {
        const int8_t *ra = in + oa;
        const int8_t *rb = alpha + ob;
        int8_t *ro = out + oo;
        int32_t i;
        for (i = 0; i < n; ++i) {
            const int32_t x = ra[i * ia] + q[MCU_PRELU_IN_OFFSET];
            int32_t v;
            if (x >= 0) {
                v = mcu_multiply_by_quantized_multiplier(x, q[MCU_PRELU_MULT_ID],
                                                         q[MCU_PRELU_SHIFT_ID]);
            } else {
                const int32_t al = rb[i * ib] + q[MCU_PRELU_ALPHA_OFFSET];
                v = mcu_multiply_by_quantized_multiplier(x * al, q[MCU_PRELU_MULT_ALPHA],
                                                         q[MCU_PRELU_SHIFT_ALPHA]);
            }
            ro[i] = mcu_clamp_s8(v + q[MCU_PRELU_OUT_OFFSET]);
        }
    });
}
