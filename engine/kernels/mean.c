/* MEAN and SUM over any axes, int8 (reference QuantizedMeanOrSum as TFLM runs it for every
 * int8 MEAN / SUM): the int32 sum of the reduced elements, minus zero_point * count, is
 * rescaled once by a multiplier that already contains input_scale / output_scale (and 1/count
 * for MEAN, folded in at generation time exactly as TFLM folds it at run time), then offset
 * and clamped. No scratch: each output element sums its own inputs.
 *
 * The generator orders the input dimensions as (kept..., reduced...) through strides, folded
 * to MCU_REDUCE_DIMS outer (kept) and MCU_REDUCE_DIMS inner (reduced) dimensions. */
#include "mcu_common.h"

#define MCU_REDUCE_DIMS 4

enum {
    MCU_MEAN_IN_ZP_TIMES_COUNT, MCU_MEAN_MULT, MCU_MEAN_SHIFT, MCU_MEAN_OUT_ZP,
    MCU_MEAN_NUM_PARAMS
};

/* outer/inner: MCU_REDUCE_DIMS sizes and input element strides each. */
MCU_KERNEL void mcu_reduce_sum_s8(const int8_t *in, int8_t *out, const int32_t *outer_dims,
                                  const int32_t *outer_strides, const int32_t *inner_dims,
                                  const int32_t *inner_strides, const int32_t *q) {
    int32_t o0, o1, o2, o3, i0, i1, i2, i3;
    for (o0 = 0; o0 < outer_dims[0]; ++o0)
    for (o1 = 0; o1 < outer_dims[1]; ++o1)
    for (o2 = 0; o2 < outer_dims[2]; ++o2)
    for (o3 = 0; o3 < outer_dims[3]; ++o3) {
        const int8_t *base = in + o0 * outer_strides[0] + o1 * outer_strides[1] +
                             o2 * outer_strides[2] + o3 * outer_strides[3];
        /* unsigned: the sum wraps like TFLM's int32 accumulation instead of being UB */
        uint32_t sum = 0;
        int32_t v;
        for (i0 = 0; i0 < inner_dims[0]; ++i0)
        for (i1 = 0; i1 < inner_dims[1]; ++i1)
        for (i2 = 0; i2 < inner_dims[2]; ++i2) {
            const int8_t *p = base + i0 * inner_strides[0] + i1 * inner_strides[1] +
                              i2 * inner_strides[2];
            const int32_t step = inner_strides[3];
            for (i3 = 0; i3 < inner_dims[3]; ++i3) {
                sum += (uint32_t)(int32_t)p[i3 * step];
            }
        }
        v = mcu_multiply_by_quantized_multiplier(
                (int32_t)(sum - (uint32_t)q[MCU_MEAN_IN_ZP_TIMES_COUNT]), q[MCU_MEAN_MULT],
                q[MCU_MEAN_SHIFT]) + q[MCU_MEAN_OUT_ZP];
        *out++ = mcu_clamp_s8(v);
    }
}
