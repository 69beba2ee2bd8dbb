/* REDUCE_MAX and REDUCE_MIN over any axes, int8 (TFLM's ReduceGeneric with its max / min
 * reducer): each output element is the largest (smallest) stored value of its reduced input
 * elements, starting from -128 (127). TFLM requires the input and output quantization to be
 * equal, so comparing the stored values compares the real ones and nothing is rescaled.
 *
 * The generator describes the loops as mean.c's: the input dimensions ordered (kept...,
 * reduced...) through strides, folded to MCU_REDUCE_DIMS outer and MCU_REDUCE_DIMS inner. */
#include "mcu_common.h"

#define MCU_REDUCE_DIMS 4

MCU_INLINE void mcu_reduce_extreme_s8(const int8_t *in, int8_t *out, const int32_t *outer_dims,
                                      const int32_t *outer_strides, const int32_t *inner_dims,
                                      const int32_t *inner_strides, int is_max) {
    int32_t o0, o1, o2, o3, i0, i1, i2, i3;
    for (o0 = 0; o0 < outer_dims[0]; ++o0)
    for (o1 = 0; o1 < outer_dims[1]; ++o1)
    for (o2 = 0; o2 < outer_dims[2]; ++o2)
    for (o3 = 0; o3 < outer_dims[3]; ++o3) {
        const int8_t *base = in + o0 * outer_strides[0] + o1 * outer_strides[1] +
                             o2 * outer_strides[2] + o3 * outer_strides[3];
        int8_t best = is_max ? INT8_MIN : INT8_MAX;
        for (i0 = 0; i0 < inner_dims[0]; ++i0)
        for (i1 = 0; i1 < inner_dims[1]; ++i1)
        for (i2 = 0; i2 < inner_dims[2]; ++i2) {
            const int8_t *p = base + i0 * inner_strides[0] + i1 * inner_strides[1] +
                              i2 * inner_strides[2];
            const int32_t step = inner_strides[3];
            for (i3 = 0; i3 < inner_dims[3]; ++i3) {
                const int8_t v = p[i3 * step];
                if (is_max ? v > best : v < best) {
                    best = v;
                }
            }
        }
        *out++ = best;
    }
}

/* outer/inner: MCU_REDUCE_DIMS sizes and input element strides each. */
MCU_KERNEL void mcu_reduce_max_s8(const int8_t *in, int8_t *out, const int32_t *outer_dims,
                                  const int32_t *outer_strides, const int32_t *inner_dims,
                                  const int32_t *inner_strides) {
    mcu_reduce_extreme_s8(in, out, outer_dims, outer_strides, inner_dims, inner_strides, 1);
}

MCU_KERNEL void mcu_reduce_min_s8(const int8_t *in, int8_t *out, const int32_t *outer_dims,
                                  const int32_t *outer_strides, const int32_t *inner_dims,
                                  const int32_t *inner_strides) {
    mcu_reduce_extreme_s8(in, out, outer_dims, outer_strides, inner_dims, inner_strides, 0);
}
