/* ARG_MAX and ARG_MIN along one axis, int8 input, int32 output (TFLM's reference ArgMinMax
 * with its strict Greater / Less comparison): each output element is the index of the first
 * largest (smallest) value along the axis. The input is viewed as [outer, axis, inner]. */
#include "mcu_common.h"

MCU_INLINE void mcu_arg_extreme_s8(const int8_t *in, int32_t *out, int32_t outer,
                                   int32_t axis_size, int32_t inner, int is_max) {
    int32_t o, j, i;
    for (o = 0; o < outer; ++o) {
        const int8_t *row = in + o * axis_size * inner;
        for (j = 0; j < inner; ++j) {
            int8_t best = row[j];
            int32_t index = 0;
            for (i = 1; i < axis_size; ++i) {
                const int8_t v = row[i * inner + j];
                if (is_max ? v > best : v < best) {
                    best = v;
                    index = i;
                }
            }
            *out++ = index;
        }
    }
}

MCU_KERNEL void mcu_arg_max_s8(const int8_t *in, int32_t *out, int32_t outer, int32_t axis_size,
                               int32_t inner) {
    mcu_arg_extreme_s8(in, out, outer, axis_size, inner, 1);
}

MCU_KERNEL void mcu_arg_min_s8(const int8_t *in, int32_t *out, int32_t outer, int32_t axis_size,
                               int32_t inner) {
    mcu_arg_extreme_s8(in, out, outer, axis_size, inner, 0);
}
