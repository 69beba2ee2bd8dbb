/* QUANTIZE float32 -> int8 / uint8 at a model's input edge (reference AffineQuantize):
 * q = round(x / scale) + zero_point, clamped, with the division in float32 and rounding half
 * away from zero (TfLiteRound). Written without libm so the folder links without -lm.
 * TFLM converts |x / scale| >= 2^31 (and NaN) with an out-of-range float->int cast whose
 * result depends on the CPU; here those saturate (NaN gives the minimum). */
#include "mcu_common.h"

MCU_INLINE int32_t mcu_quantize_one(float x, float scale, int32_t zp, int32_t qmin,
                                    int32_t qmax) {
    const float r = x / scale;
    int32_t t;
    float frac;
    if (!(r == r)) {
        return qmin;
    }
    if (r >= 2147483648.0f) {
        return qmax;
    }
    if (r <= -2147483648.0f) {
        return qmin;
    }
    t = (int32_t)r; /* truncates toward zero */
    frac = r - (float)t;
    if (frac >= 0.5f) {
        t += 1;
    } else if (frac <= -0.5f) {
        t -= 1;
    }
    /* t + zp in 64 bits: t may be near the int32 limits. */
    {
        const int64_t v = (int64_t)t + zp;
        return v < qmin ? qmin : (v > qmax ? qmax : (int32_t)v);
    }
}

/* FPv5 (the Cortex-M7's FPU, the only ARMv7-M one with double precision, hence the __ARM_FP
 * test) has VMAXNM / VMINNM and VCVTA (float -> int32 rounding half away from zero, i.e.
 * TfLiteRound). Clamping r to [qmin - zp, qmax - zp] before rounding gives the same integer
 * as rounding, adding zp and clamping (the bounds are integers and rounding is monotonic);
 * VMAXNM returns the bound for a NaN, so NaN still gives qmin. About 9 instructions per
 * element instead of ~33. Used on the DSP build only, so the portable one keeps plain C. */
#if MCU_USE_DSP && defined(__ARM_FP) && (__ARM_FP & 8) && defined(__ARM_ARCH_PROFILE) && \
    __ARM_ARCH_PROFILE == 'M'
#define MCU_QUANTIZE_FPV5 1
#else
#define MCU_QUANTIZE_FPV5 0
#endif

#if MCU_QUANTIZE_FPV5
MCU_INLINE void mcu_quantize_fpv5_s8(const float *in, int8_t *out, int32_t n, float scale,
                                     int32_t zp) {
    const float lo = (float)(-128 - zp), hi = (float)(127 - zp);
    for (int32_t i = 0; i < n; ++i) {
        const float r = __builtin_fminf(__builtin_fmaxf(in[i] / scale, lo), hi);
        float rounded;
        int32_t t;
        __asm__("vcvta.s32.f32 %0, %1" : "=t"(rounded) : "t"(r));
        memcpy(&t, &rounded, sizeof t);
        out[i] = (int8_t)(t + zp);
    }
}
#endif

MCU_KERNEL void mcu_quantize_f32_s8(const float *in, int8_t *out, int32_t n, float scale,
                                    int32_t zp) {
#if MCU_QUANTIZE_FPV5
    mcu_quantize_fpv5_s8(in, out, n, scale, zp);
#else
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = (int8_t)mcu_quantize_one(in[i], scale, zp, -128, 127);
    }
#endif
}

MCU_KERNEL void mcu_quantize_f32_u8(const float *in, uint8_t *out, int32_t n, float scale,
                                    int32_t zp) {
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = (uint8_t)mcu_quantize_one(in[i], scale, zp, 0, 255);
    }
}
