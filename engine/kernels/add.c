/* ADD and SUB, int8 with broadcasting: TFLite's reference arithmetic (integer_ops/add.h,
 * reference/sub.h). Both inputs are offset by their zero points, shifted left by 20 bits,
 * rescaled to a common scale (twice the larger input scale) with rounding doubling high
 * multiplies, added or subtracted, rescaled to the output scale, offset and clamped to the
 * fused activation range. */
#include "mcu_broadcast.h"

/* Quantization parameters, passed as one const int32 array (Flash) in this order. */
enum {
    MCU_ADD_IN1_OFFSET, MCU_ADD_IN1_MULT, MCU_ADD_IN1_SHIFT,
    MCU_ADD_IN2_OFFSET, MCU_ADD_IN2_MULT, MCU_ADD_IN2_SHIFT,
    MCU_ADD_OUT_OFFSET, MCU_ADD_OUT_MULT, MCU_ADD_OUT_SHIFT,
    MCU_ADD_ACT_MIN, MCU_ADD_ACT_MAX, MCU_ADD_NUM_PARAMS
};

#define MCU_ADD_LEFT_SHIFT 20

MCU_INLINE int32_t mcu_add_scale_input(int32_t x, int32_t offset, int32_t multiplier,
                                       int32_t shift) {
    const int32_t shifted = (x + offset) * (1 << MCU_ADD_LEFT_SHIFT);
    return mcu_rounding_divide_by_pot(mcu_saturating_rounding_doubling_high_mul(shifted, multiplier),
                                      -shift);
}

MCU_INLINE int8_t mcu_add_finish(int32_t raw, const int32_t *q) {
    const int32_t out = mcu_rounding_divide_by_pot(
                            mcu_saturating_rounding_doubling_high_mul(raw, q[MCU_ADD_OUT_MULT]),
                            -q[MCU_ADD_OUT_SHIFT]) + q[MCU_ADD_OUT_OFFSET];
    return (int8_t)mcu_clamp_i32(out, q[MCU_ADD_ACT_MIN], q[MCU_ADD_ACT_MAX]);
}

/* One output element of ADD (sign +1) or SUB (sign -1) from the raw int8 inputs x, y. */
MCU_INLINE int8_t mcu_add_sub_one(int32_t x, int32_t y, const int32_t *q, int sign) {
    const int32_t sx = mcu_add_scale_input(x, q[MCU_ADD_IN1_OFFSET], q[MCU_ADD_IN1_MULT],
                                           q[MCU_ADD_IN1_SHIFT]);
    const int32_t sy = mcu_add_scale_input(y, q[MCU_ADD_IN2_OFFSET], q[MCU_ADD_IN2_MULT],
                                           q[MCU_ADD_IN2_SHIFT]);
    return mcu_add_finish(sign > 0 ? sx + sy : sx - sy, q);
}

MCU_KERNEL void mcu_add_s8(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *dims,
                           const int32_t *sa, const int32_t *sb, const int32_t *q) {
    MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, mcu_add_sub_one(x, y, q, 1));
}

MCU_KERNEL void mcu_sub_s8(const int8_t *a, const int8_t *b, int8_t *out, const int32_t *dims,
                           const int32_t *sa, const int32_t *sb, const int32_t *q) {
    MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, mcu_add_sub_one(x, y, q, -1));
}

/* ---------------------------------------------------------------------------------------
 * Same-shape ADD / SUB in one rounding pass per stage (engine/quant_ops.py AddFastParams
 * proves it equal to the code above with engine/quantization.py fast_requant). Per input:
 * t = (x + offset) * 2^21 in one ADD with shifted operand (2 * TFLite's x' * 2^20, the doubled
 * accumulator), s = mcu_requant_fast of t (mcu_common.h: SMMLAR, ASR), or for the
 * identity-scaled input (the one with the larger scale) just x * 2^19 + offset * 2^19; the
 * output stage is mcu_requant_fast of 2 * raw with the zero point folded into its rounding
 * constant. */
enum {
    MCU_ADDF_O1, MCU_ADDF_M1, MCU_ADDF_RND1, MCU_ADDF_RS1,
    MCU_ADDF_O2, MCU_ADDF_M2, MCU_ADDF_RND2, MCU_ADDF_RS2,
    MCU_ADDF_MO, MCU_ADDF_RNDO, MCU_ADDF_RSO, MCU_ADDF_ACT_MIN, MCU_ADDF_ACT_MAX,
    MCU_ADDF_NUM_PARAMS
};
/* Variant bits (AddFastParams.variant): input 1 / 2 has a rounding step, full int8 range. */
#define MCU_ADDF_R1 1
#define MCU_ADDF_R2 2
#define MCU_ADDF_FULL 4

/* `variant` and `sign` are literals at every call: each combination is its own loop. */
MCU_INLINE void mcu_addf_loop(const int8_t *a, const int8_t *b,
                              int8_t *out, int32_t n, const int32_t *q,
                              int variant, int sign) {
    const int32_t o1 = q[MCU_ADDF_O1], m1 = q[MCU_ADDF_M1], rnd1 = q[MCU_ADDF_RND1];
    const int32_t o2 = q[MCU_ADDF_O2], m2 = q[MCU_ADDF_M2], rnd2 = q[MCU_ADDF_RND2];
    const int32_t rs1 = q[MCU_ADDF_RS1], rs2 = q[MCU_ADDF_RS2];
    const int32_t mo = q[MCU_ADDF_MO], rndo = q[MCU_ADDF_RNDO], rso = q[MCU_ADDF_RSO];
    const int32_t lo = q[MCU_ADDF_ACT_MIN], hi = q[MCU_ADDF_ACT_MAX];
    for (int32_t i = 0; i < n; ++i) {
        /* 2 * s1 and 2 * s2: the output stage wants 2 * raw, and an identity input is then
         * one ADD with shifted operand. */
        int32_t s1x2, s2x2, raw2, v;
        if (variant & MCU_ADDF_R1) {
            const int32_t t1 = (int32_t)((uint32_t)(int32_t)a[i] << 21) + o1;
            s1x2 = mcu_requant_fast(t1, t1, m1, rnd1, rs1, MCU_RQF_FUSED) * 2;
        } else {
            s1x2 = (int32_t)((uint32_t)(int32_t)a[i] << 20) + o1;
        }
        if (variant & MCU_ADDF_R2) {
            const int32_t t2 = (int32_t)((uint32_t)(int32_t)b[i] << 21) + o2;
            s2x2 = mcu_requant_fast(t2, t2, m2, rnd2, rs2, MCU_RQF_FUSED) * 2;
        } else {
            s2x2 = (int32_t)((uint32_t)(int32_t)b[i] << 20) + o2;
        }
        raw2 = sign > 0 ? s1x2 + s2x2 : s1x2 - s2x2;
        v = mcu_requant_fast(raw2, raw2, mo, rndo, rso, MCU_RQF_FUSED);
        out[i] = (int8_t)((variant & MCU_ADDF_FULL) ? mcu_ssat8(v)
                                                    : mcu_clamp_i32(v, lo, hi));
    }
}

/* One out-of-line function per variant: inlined into one switch, the eight loops share a
 * register allocation and the compiler spills pointers and constants to the stack. */
#define MCU_ADDF_VARIANT(v)                                                                 \
    static __attribute__((noinline, unused)) void mcu_addf_v##v(                          \
        const int8_t *a, const int8_t *b, int8_t *out, int32_t n, const int32_t *q) {       \
        mcu_addf_loop(a, b, out, n, q, v, 1);                                               \
    }
MCU_ADDF_VARIANT(0)
MCU_ADDF_VARIANT(1)
MCU_ADDF_VARIANT(2)
MCU_ADDF_VARIANT(3)
MCU_ADDF_VARIANT(4)
MCU_ADDF_VARIANT(5)
MCU_ADDF_VARIANT(6)
MCU_ADDF_VARIANT(7)

#define MCU_ADDF_CASE(v) \
    case v: mcu_addf_v##v(a, b, out, n, q); break

/* Same-shape ADD of n elements; q is AddFastParams.as_list(). */
MCU_KERNEL void mcu_add_fast_s8(const int8_t *a, const int8_t *b, int8_t *out, int32_t n,
                                const int32_t *q, int32_t variant) {
    switch (variant) {
        MCU_ADDF_CASE(0); MCU_ADDF_CASE(1); MCU_ADDF_CASE(2); MCU_ADDF_CASE(3);
        MCU_ADDF_CASE(4); MCU_ADDF_CASE(5); MCU_ADDF_CASE(6);
        default: mcu_addf_v7(a, b, out, n, q); break;
    }
}

/* Same-shape SUB: the same loop with sign -1 (raw = s1 - s2 has the range of s1 + s2, so the
 * fast form's int32 bounds hold unchanged); its own eight out-of-line loops, which
 * --gc-sections drops from firmware without a same-shape SUB. */
#define MCU_SUBF_VARIANT(v)                                                                 \
    static __attribute__((noinline, unused)) void mcu_subf_v##v(                          \
        const int8_t *a, const int8_t *b, int8_t *out, int32_t n, const int32_t *q) {       \
        mcu_addf_loop(a, b, out, n, q, v, -1);                                              \
    }
MCU_SUBF_VARIANT(0)
MCU_SUBF_VARIANT(1)
MCU_SUBF_VARIANT(2)
MCU_SUBF_VARIANT(3)
MCU_SUBF_VARIANT(4)
MCU_SUBF_VARIANT(5)
MCU_SUBF_VARIANT(6)
MCU_SUBF_VARIANT(7)

#define MCU_SUBF_CASE(v) \
    case v: mcu_subf_v##v(a, b, out, n, q); break

/* Same-shape SUB of n elements (a - b); q is AddFastParams.as_list(). */
MCU_KERNEL void mcu_sub_fast_s8(const int8_t *a, const int8_t *b, int8_t *out, int32_t n,
                                const int32_t *q, int32_t variant) {
    switch (variant) {
        MCU_SUBF_CASE(0); MCU_SUBF_CASE(1); MCU_SUBF_CASE(2); MCU_SUBF_CASE(3);
        MCU_SUBF_CASE(4); MCU_SUBF_CASE(5); MCU_SUBF_CASE(6);
        default: mcu_subf_v7(a, b, out, n, q); break;
    }
}
