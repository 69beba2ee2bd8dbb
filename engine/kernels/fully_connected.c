/* FULLY_CONNECTED, int8, bit-exact with TFLite Micro's reference FullyConnected /
 * FullyConnectedPerChannel.
 *
 * Generation-time contract (tflite_converter/codegen/ops/fully_connected.py): weights are
 * [units][depth] int8 with zero point 0, bias is always present with the input zero point
 * folded in (bias[c] - zp_in * sum(w[c])), mult/shift have one entry per unit when
 * per_channel is 1, else one. No scratch: the input row is split into 16-bit halves on the
 * fly and shared by two weight rows per step.
 */
#include "mcu_common.h"

MCU_INLINE int32_t mcu_fc_tail(const int8_t *w, const int8_t *x, int n, int32_t acc) {
    for (int i = 0; i < n; ++i) {
        acc += (int32_t)w[i] * (int32_t)x[i];
    }
    return acc;
}

MCU_KERNEL void mcu_fully_connected_s8(const int8_t *input, int batches, int depth,
                                       const int8_t *weights, const int32_t *bias,
                                       const int32_t *mult, const int32_t *shift,
                                       int per_channel, int8_t *output, int units,
                                       int32_t out_zp, int32_t act_min, int32_t act_max) {
    for (int b = 0; b < batches; ++b) {
        const int8_t *MCU_RESTRICT x = input + (size_t)b * depth;
        int8_t *MCU_RESTRICT out = output + (size_t)b * units;
        int c = 0;
        for (; c < (units & ~1); c += 2) {
            const int8_t *w0 = weights + (size_t)c * depth;
            const int8_t *w1 = w0 + depth;
            int32_t a0 = bias[c], a1 = bias[c + 1];
            int k = 0;
#if MCU_USE_DSP
            for (; k < (depth & ~3); k += 4) {
                const uint32_t xv = mcu_read_u32(x + k);
                const uint32_t xe = mcu_sxtb16(xv), xo = mcu_sxtb16_ror8(xv);
                const uint32_t wa = mcu_read_u32(w0 + k);
                const uint32_t wb = mcu_read_u32(w1 + k);
                a0 = mcu_smlad(mcu_sxtb16(wa), xe, a0);
                a0 = mcu_smlad(mcu_sxtb16_ror8(wa), xo, a0);
                a1 = mcu_smlad(mcu_sxtb16(wb), xe, a1);
                a1 = mcu_smlad(mcu_sxtb16_ror8(wb), xo, a1);
            }
#else
            for (; k < (depth & ~1); k += 2) {
                const int32_t x0 = x[k], x1 = x[k + 1];
                a0 += (int32_t)w0[k] * x0 + (int32_t)w0[k + 1] * x1;
                a1 += (int32_t)w1[k] * x0 + (int32_t)w1[k + 1] * x1;
            }
#endif
            a0 = mcu_fc_tail(w0 + k, x + k, depth - k, a0);
            a1 = mcu_fc_tail(w1 + k, x + k, depth - k, a1);
            const int q0 = per_channel ? c : 0;
            const int q1 = per_channel ? c + 1 : 0;
            out[c] = mcu_requantize_s8(a0, mult[q0], shift[q0], out_zp, act_min, act_max);
            out[c + 1] = mcu_requantize_s8(a1, mult[q1], shift[q1], out_zp, act_min, act_max);
        }
        if (c < units) {
            const int8_t *w0 = weights + (size_t)c * depth;
            const int32_t a0 = mcu_fc_tail(w0, x, depth, bias[c]);
            const int q0 = per_channel ? c : 0;
            out[c] = mcu_requantize_s8(a0, mult[q0], shift[q0], out_zp, act_min, act_max);
        }
    }
}
