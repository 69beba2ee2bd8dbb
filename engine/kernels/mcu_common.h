/* Shared definitions of the mcunet-tf kernels.
 *
 * Kernels are compiled as static functions inside each generated model's C file (the model
 * source does `#include "kernels/<kernel>.c"`), so every kernel entry point is declared
 * MCU_KERNEL and two models linked into one program never clash.
 *
 * The integer helpers below are TFLite's reference arithmetic (gemmlowp's
 * SaturatingRoundingDoublingHighMul / RoundingDivideByPOT and the default "double rounding"
 * MultiplyByQuantizedMultiplier: TFLITE_SINGLE_ROUNDING is off in TFLM and in the PyPI
 * tflite-micro build), written once so every kernel rounds exactly as TFLite Micro does.
 *
 * DSP paths (SMLAD / SXTB16 dual 16-bit multiply-accumulate) are compiled when the target has
 * the DSP extension in Thumb-2 (every Cortex-M with it) and MCU_NO_DSP is not defined;
 * MCU_USE_DSP tells kernels which one they get. The portable fallbacks mcu_sxtb16 / mcu_smlad compute the same values in C99 so a
 * kernel can be written once on top of them when that is convenient.
 */
#ifndef MCU_COMMON_H
#define MCU_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Static (one copy per model translation unit); marked unused because a kernel file may
 * define several entry points of which a model calls only some (-Wall -Werror builds). */
#ifndef MCU_KERNEL
#if defined(__GNUC__)
#define MCU_KERNEL static __attribute__((unused))
#else
#define MCU_KERNEL static
#endif
#endif

/* Thumb-2 only: the DSP paths' asm is Cortex-M code (Thumb-2 modified immediates, LDRD of
 * any two registers), which an A-profile core in ARM state, with the DSP extension too,
 * does not assemble; there the portable C runs. */
#if defined(__ARM_FEATURE_DSP) && defined(__thumb2__) && !defined(MCU_NO_DSP)
#define MCU_USE_DSP 1
#include <arm_acle.h>
#else
#define MCU_USE_DSP 0
#endif

/* SSE2 (every x86-64, so the host builds) for the few kernels that have a vector form of
 * their DSP arithmetic (PMADDWD is SMLAD on four words at once); MCU_NO_SIMD keeps the plain
 * C, which is what a test of the portable code builds. */
#if defined(__SSE2__) && !MCU_USE_DSP && !defined(MCU_NO_SIMD)
#define MCU_USE_SSE2 1
#include <emmintrin.h>
#else
#define MCU_USE_SSE2 0
#endif

#if defined(__GNUC__)
#define MCU_INLINE static inline __attribute__((always_inline))
#define MCU_RESTRICT __restrict__
#else
#define MCU_INLINE static inline
#define MCU_RESTRICT
#endif

/* ---------------------------------------------------------------------------------------
 * TFLite reference arithmetic
 */

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a*b / 2^31), nudged away from zero,
 * with the single overflow case INT32_MIN*INT32_MIN saturated. The division by 2^31
 * truncates toward zero as C++ integer division does. */
MCU_INLINE int32_t mcu_saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    const int64_t sum = ab + nudge;
    /* Truncating division by 2^31 without a library call: bias negative values first. */
    const int64_t biased = sum < 0 ? sum + (((int64_t)1 << 31) - 1) : sum;
    return (int32_t)(biased >> 31);
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded to nearest, ties away from zero.
 * exponent is in [0, 31]. */
MCU_INLINE int32_t mcu_rounding_divide_by_pot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (double rounding): shift > 0 is a left shift applied
 * before the high multiply, shift < 0 a rounding right shift after it. The left shift wraps
 * like TFLite's `x * (1 << left_shift)` on two's complement targets. */
MCU_INLINE int32_t mcu_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                                       int shift) {
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return mcu_rounding_divide_by_pot(
        mcu_saturating_rounding_doubling_high_mul(shifted, multiplier), right_shift);
}

MCU_INLINE int32_t mcu_clamp_i32(int32_t x, int32_t lo, int32_t hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* floor((a * b + 2^31) / 2^32) + c: SMMLAR on the DSP build (the sum wraps modulo 2^32).
 * The one-pass requantisation mcu_requant_fast below is built on it. */
MCU_INLINE int32_t mcu_smmlar(int32_t a, int32_t b, int32_t c) {
#if MCU_USE_DSP
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
#else
    return (int32_t)((((int64_t)a * b + ((int64_t)1 << 31)) >> 32) + c);
#endif
}

/* Saturate to int8: SSAT on the DSP build. */
MCU_INLINE int32_t mcu_ssat8(int32_t v) {
#if MCU_USE_DSP
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return r;
#else
    return mcu_clamp_i32(v, -128, 127);
#endif
}

/* ---------------------------------------------------------------------------------------
 * The one-pass ("fast") requantisation, shared by CONV_2D, FULLY_CONNECTED, DEPTHWISE_CONV_2D
 * and ADD / SUB:
 *
 *     mcu_requant_fast(2 * acc, acc, mult, mcu_requant_rnd(rs, zp), rs, form)
 *         == mcu_multiply_by_quantized_multiplier(acc, mult, -rs) + zp
 *
 * i.e. x = SaturatingRoundingDoublingHighMul(acc, mult) = floor((2 acc mult + 2^31) / 2^32)
 * (SMMLAR / SMMULR of the doubled accumulator), then RoundingDivideByPOT(x, rs) + zp =
 * (x + rnd - [x < 0]) >> rs in one add and one shift. It is exact only under preconditions
 * the generator proves per (multiplier, shift, zero point, accumulator range) in
 * engine/quantization.py fast_requant, whose docstring holds the proof: multiplier >= 0,
 * right shift rs in [1, 31], 2 * acc inside int32, rnd and x + rnd - [acc < 0] inside int32
 * for every accumulator in range. Kernels that decide at run time (depthwise_conv2d.c
 * mcu_dw_rqs_usable) check a sufficient subset of the same conditions. The hand-written
 * assembly loops of conv2d.c spell out MCU_RQF_FUSED's three instructions themselves. */

/* The rounding constant 2^(rs-1) + zp * 2^rs (modulo 2^32, as the generator stores it). */
MCU_INLINE int32_t mcu_requant_rnd(int32_t rs, int32_t out_zp) {
    return (int32_t)(((uint32_t)out_zp << rs) + ((uint32_t)1 << (rs - 1)));
}

/* Instruction selections of mcu_requant_fast (`form` is a literal at every call; both give
 * the same value under the proved preconditions). */
/* rnd + [sign] joins SMMLAR's accumulator: (LSL,) ADD asr #31, SMMLAR, ASR. [acc < 0] stands
 * in for [x < 0]: with mult >= 0 they differ only where x = 0, and there both give zp. */
#define MCU_RQF_FUSED 0
/* SMMULR first, then ADD rnd, ADD asr #31 (x's own sign), ASR: one instruction more, but no
 * register holds rnd + sign across the multiply, which FULLY_CONNECTED's output epilogues
 * need (the fused form makes GCC spill there: more instructions, not fewer). */
#define MCU_RQF_AFTER 1

/* acc2 = 2 * acc, the doubled accumulator (what the multiply takes); acc = the accumulator
 * (MCU_RQF_FUSED only needs its sign, so the doubled value may stand in for it where that is
 * all a kernel has; MCU_RQF_AFTER's portable build multiplies acc itself). rnd =
 * mcu_requant_rnd(rs, zp). Returns the requantised value plus zp, before any clamp. */
MCU_INLINE int32_t mcu_requant_fast(int32_t acc2, int32_t acc, int32_t mult, int32_t rnd,
                                    int32_t rs, int form) {
    if (form == MCU_RQF_FUSED) {
        return mcu_smmlar(acc2, mult, rnd + (acc >> 31)) >> rs;
    }
#if MCU_USE_DSP
    int32_t x;
    (void)acc;
    __asm__("smmulr %0, %1, %2" : "=r"(x) : "r"(acc2), "r"(mult));
#else
    const int32_t x = (int32_t)(((int64_t)acc * mult + ((int64_t)1 << 30)) >> 31);
    (void)acc2;
#endif
    return (x + rnd + (x >> 31)) >> rs;
}

MCU_INLINE int8_t mcu_clamp_s8(int32_t x) {
    return (int8_t)mcu_clamp_i32(x, -128, 127);
}

/* The requantisation step every int8 convolution-like kernel ends with: scale the int32
 * accumulator, add the output zero point, clamp to the fused activation range (which lies
 * within [-128, 127]). */
MCU_INLINE int8_t mcu_requantize_s8(int32_t acc, int32_t multiplier, int shift,
                                    int32_t out_zp, int32_t act_min, int32_t act_max) {
    const int32_t v = mcu_multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp;
    return (int8_t)mcu_clamp_i32(v, act_min, act_max);
}

/* ---------------------------------------------------------------------------------------
 * Packed 8/16-bit helpers (DSP intrinsics or their portable equivalents)
 */

/* Four int8 values as one word, from any alignment (Cortex-M3/M4/M7 LDR accepts unaligned
 * addresses; memcpy lets the compiler emit exactly that without aliasing trouble). */
MCU_INLINE uint32_t mcu_read_u32(const void *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

MCU_INLINE void mcu_write_u32(void *p, uint32_t v) {
    memcpy(p, &v, sizeof v);
}

/* Two signed 16-bit values as one word (low, high). */
MCU_INLINE uint32_t mcu_pack16(int32_t lo, int32_t hi) {
    return ((uint32_t)(uint16_t)(int16_t)lo) | ((uint32_t)(uint16_t)(int16_t)hi << 16);
}

#if MCU_USE_DSP
/* Bytes 0 and 2 sign-extended into the low and high halfwords. */
MCU_INLINE uint32_t mcu_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int32_t)x); }
/* Bytes 1 and 3 sign-extended into the low and high halfwords. */
MCU_INLINE uint32_t mcu_sxtb16_ror8(uint32_t x) {
    return (uint32_t)__sxtb16((int32_t)((x >> 8) | (x << 24)));
}
/* acc + lo(a)*lo(b) + hi(a)*hi(b), signed 16-bit halves. */
MCU_INLINE int32_t mcu_smlad(uint32_t a, uint32_t b, int32_t acc) {
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}
#else
MCU_INLINE uint32_t mcu_sxtb16(uint32_t x) {
    return mcu_pack16((int8_t)(x & 0xffu), (int8_t)((x >> 16) & 0xffu));
}
MCU_INLINE uint32_t mcu_sxtb16_ror8(uint32_t x) {
    return mcu_pack16((int8_t)((x >> 8) & 0xffu), (int8_t)((x >> 24) & 0xffu));
}
MCU_INLINE int32_t mcu_smlad(uint32_t a, uint32_t b, int32_t acc) {
    return acc + (int32_t)(int16_t)(a & 0xffffu) * (int32_t)(int16_t)(b & 0xffffu) +
           (int32_t)(int16_t)(a >> 16) * (int32_t)(int16_t)(b >> 16);
}
#endif

#endif /* MCU_COMMON_H */
