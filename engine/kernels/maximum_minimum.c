/* MAXIMUM / MINIMUM, int8 with broadcasting. TFLM compares the raw int8 values (its kernel
 * does not requantise; both inputs and the output share one quantization). */
#include "mcu_broadcast.h"

MCU_INLINE void mcu_max_min_s8(const int8_t *a, const int8_t *b, int8_t *out,
                               const int32_t *dims, const int32_t *sa, const int32_t *sb,
                               int take_max) {
    const int32_t n = dims[MCU_BCAST_DIMS - 1];
    const int32_t ia = sa[MCU_BCAST_DIMS - 1], ib = sb[MCU_BCAST_DIMS - 1];
    MCU_FOR_EACH_ROW(dims, sa, sb, oa, ob, oo, {
        const int8_t *ra = a + oa;
        const int8_t *rb = b + ob;
        int8_t *ro = out + oo;
        int32_t i;
        for (i = 0; i < n; ++i) {
            const int8_t x = ra[i * ia], y = rb[i * ib];
            ro[i] = take_max ? (x > y ? x : y) : (x < y ? x : y);
        }
    });
}

MCU_KERNEL void mcu_maximum_s8(const int8_t *a, const int8_t *b, int8_t *out,
                               const int32_t *dims, const int32_t *sa, const int32_t *sb) {
    mcu_max_min_s8(a, b, out, dims, sa, sb, 1);
}

MCU_KERNEL void mcu_minimum_s8(const int8_t *a, const int8_t *b, int8_t *out,
                               const int32_t *dims, const int32_t *sa, const int32_t *sb) {
    mcu_max_min_s8(a, b, out, dims, sa, sb, 0);
}
