/* Element-wise float32 ops of TFLM's reference kernels, for the float heads and tails of int8
 * models: LOGISTIC (reference_ops::Logistic, with its cut-offs), TANH, RELU, RELU6 (the
 * activations' ReluFloat / Relu6Float comparisons), ABS, EXP, LOG, SQRT and RSQRT
 * (elementwise.cc: 1 / sqrt). The transcendental ones call the C library's float functions,
 * as TFLM's std:: calls do, so the model links with -lm and gives TFLM's bits wherever both
 * use the same libm. All may run in place. */
#include <math.h>

#include "mcu_common.h"

#define MCU_MAP_F32(in, out, n, v, ...)         \
    do {                                         \
        int32_t mcu_i_;                          \
        for (mcu_i_ = 0; mcu_i_ < (n); ++mcu_i_) { \
            const float v = (in)[mcu_i_];        \
            (out)[mcu_i_] = (__VA_ARGS__);       \
        }                                        \
    } while (0)

MCU_INLINE float mcu_logistic_one_f32(float v) {
    if (v > 16.619047164916992188f) {
        return 1.0f;
    }
    if (v < -9.0f) {
        return expf(v);
    }
    return 1.0f / (1.0f + expf(-v));
}

MCU_KERNEL void mcu_logistic_f32(const float *in, float *out, int32_t n) {
    MCU_MAP_F32(in, out, n, v, mcu_logistic_one_f32(v));
}

MCU_KERNEL void mcu_tanh_f32(const float *in, float *out, int32_t n) {
    MCU_MAP_F32(in, out, n, v, tanhf(v));
}

MCU_KERNEL void mcu_relu_f32(const float *in, float *out, int32_t n) {
    MCU_MAP_F32(in, out, n, v, v < 0.0f ? 0.0f : v);
}

MCU_KERNEL void mcu_relu6_f32(const float *in, float *out, int32_t n) {
    MCU_MAP_F32(in, out, n, v, v > 6.0f ? 6.0f : (v < 0.0f ? 0.0f : v));
}

MCU_KERNEL void mcu_abs_f32(const float *in, float *out, int32_t n) {
    MCU_MAP_F32(in, out, n, v, fabsf(v));
}

MCU_KERNEL void mcu_exp_f32(const float *in, float *out, int32_t n) {
    MCU_MAP_F32(in, out, n, v, expf(v));
}

MCU_KERNEL void mcu_log_f32(const float *in, float *out, int32_t n) {
    MCU_MAP_F32(in, out, n, v, logf(v));
}

MCU_KERNEL void mcu_sqrt_f32(const float *in, float *out, int32_t n) {
    MCU_MAP_F32(in, out, n, v, sqrtf(v));
}

MCU_KERNEL void mcu_rsqrt_f32(const float *in, float *out, int32_t n) {
    MCU_MAP_F32(in, out, n, v, 1.0f / sqrtf(v));
}
