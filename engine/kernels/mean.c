/* MEAN and SUM over any axes, int8 (reference QuantizedMeanOrSum as TFLM runs it for every
 * int8 MEAN / SUM): the int32 sum of the reduced elements, minus zero_point * count, is
 * rescaled once by a multiplier that already contains input_scale / output_scale (and 1/count
 * for MEAN, folded in at generation time exactly as TFLM folds it at run time), then offset
 * and clamped. No scratch: each output element sums its own inputs.
 *
 * The loops are mcu_reduce.h's. */
#include "mcu_reduce.h"

enum {
    MCU_MEAN_IN_ZP_TIMES_COUNT, MCU_MEAN_MULT, MCU_MEAN_SHIFT, MCU_MEAN_OUT_ZP,
    MCU_MEAN_NUM_PARAMS
};

/* The reduced sum minus zero_point * count, rescaled, offset and clamped. */
MCU_INLINE int8_t mcu_mean_finish_s8(int32_t sum, const int32_t *q) {
    const int32_t centred = (int32_t)((uint32_t)sum - (uint32_t)q[MCU_MEAN_IN_ZP_TIMES_COUNT]);
    return mcu_clamp_s8(mcu_multiply_by_quantized_multiplier(centred, q[MCU_MEAN_MULT],
                                                             q[MCU_MEAN_SHIFT]) +
                        q[MCU_MEAN_OUT_ZP]);
}

/* outer/inner: MCU_REDUCE_DIMS sizes and input element strides each. */
MCU_KERNEL void mcu_reduce_sum_s8(const int8_t *in, int8_t *out, const int32_t *outer_dims,
                                  const int32_t *outer_strides, const int32_t *inner_dims,
                                  const int32_t *inner_strides, const int32_t *q) {
    MCU_REDUCE_S8(in, out, outer_dims, outer_strides, inner_dims, inner_strides, MCU_REDUCE_SUM,
                  mcu_mean_finish_s8, q);
}
