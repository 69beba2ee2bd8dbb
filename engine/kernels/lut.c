/* Element-wise unary ops by table look-up: LOGISTIC, TANH, HARD_SWISH, RELU, RELU6,
 * LEAKY_RELU, QUANTIZE between int8 and uint8, and DEQUANTIZE to float32.
 *
 * An 8-bit input has only 256 values, so the generator runs TFLite's integer algorithm for
 * each of them (engine/quant_ops.py, checked against TFLM over all 256 inputs) and the kernel
 * reads table[byte]. Reading and writing byte by byte keeps it safe in place (out == in). */
#include "mcu_common.h"

MCU_KERNEL void mcu_lut_8(const void *in, void *out, int32_t n, const uint8_t *table) {
    const uint8_t *src = (const uint8_t *)in;
    uint8_t *dst = (uint8_t *)out;
    int32_t i;
    for (i = 0; i < n; ++i) {
        dst[i] = table[src[i]];
    }
}

/* DEQUANTIZE: 8-bit input to float32 (the table holds float(scale * (q - zero_point))). */
MCU_KERNEL void mcu_lut_f32(const void *in, float *out, int32_t n, const float *table) {
    const uint8_t *src = (const uint8_t *)in;
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = table[src[i]];
    }
}
