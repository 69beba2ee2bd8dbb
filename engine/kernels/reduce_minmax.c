/* REDUCE_MAX and REDUCE_MIN over any axes, int8 (TFLM's ReduceGeneric with its max / min
 * reducer): each output element is the largest (smallest) stored value of its reduced input
 * elements, starting from -128 (127). TFLM requires the input and output quantization to be
 * equal, so comparing the stored values compares the real ones and nothing is rescaled.
 *
 * The loops are mcu_reduce.h's. */
#include "mcu_reduce.h"

/* The extreme is a stored int8 value already: nothing to rescale. */
MCU_INLINE int8_t mcu_extreme_finish_s8(int32_t best, const int32_t *unused) {
    (void)unused;
    return (int8_t)best;
}

/* outer/inner: MCU_REDUCE_DIMS sizes and input element strides each. */
MCU_KERNEL void mcu_reduce_max_s8(const int8_t *in, int8_t *out, const int32_t *outer_dims,
                                  const int32_t *outer_strides, const int32_t *inner_dims,
                                  const int32_t *inner_strides) {
    MCU_REDUCE_S8(in, out, outer_dims, outer_strides, inner_dims, inner_strides, MCU_REDUCE_MAX,
                  mcu_extreme_finish_s8, (const int32_t *)0);
}

MCU_KERNEL void mcu_reduce_min_s8(const int8_t *in, int8_t *out, const int32_t *outer_dims,
                                  const int32_t *outer_strides, const int32_t *inner_dims,
                                  const int32_t *inner_strides) {
    MCU_REDUCE_S8(in, out, outer_dims, outer_strides, inner_dims, inner_strides, MCU_REDUCE_MIN,
                  mcu_extreme_finish_s8, (const int32_t *)0);
}
