/* GATHER of 8-bit values by constant int32 indices (TFLM's reference Gather): the input is
 * viewed as [batch, outer, axis, inner], the indices as [batch, coords], and output row
 * (b, o, c) is input row (b, o, indices[b * coords + c]), `inner` bytes long. The generator
 * has checked every index against the axis size (TFLM only asserts it in debug builds). */
#include "mcu_common.h"

MCU_KERNEL void mcu_gather_8(const void *in, void *out, const int32_t *indices, int32_t batch,
                             int32_t outer, int32_t axis_size, int32_t coords, int32_t inner) {
    const uint8_t *src = (const uint8_t *)in;
    uint8_t *dst = (uint8_t *)out;
    int32_t b, o, c;
    for (b = 0; b < batch; ++b) {
        for (o = 0; o < outer; ++o) {
            const uint8_t *rows = src + (b * outer + o) * axis_size * inner;
            for (c = 0; c < coords; ++c) {
                memcpy(dst, rows + indices[b * coords + c] * inner, (size_t)inner);
                dst += inner;
            }
        }
    }
}
