/* MAXIMUM / MINIMUM, int8 with broadcasting. TFLM compares the raw int8 values (its kernel
 * does not requantise; both inputs and the output share one quantization). */
#include "mcu_broadcast.h"

MCU_KERNEL void mcu_maximum_s8(const int8_t *a, const int8_t *b, int8_t *out,
                               const int32_t *dims, const int32_t *sa, const int32_t *sb) {
    MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, x > y ? x : y);
}

MCU_KERNEL void mcu_minimum_s8(const int8_t *a, const int8_t *b, int8_t *out,
                               const int32_t *dims, const int32_t *sa, const int32_t *sb) {
    MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, x < y ? x : y);
}
