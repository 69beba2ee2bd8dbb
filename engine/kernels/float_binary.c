/* ADD, SUB, MUL, DIV, MAXIMUM and MINIMUM on float32, with broadcasting: TFLM's float reference
 * arithmetic (reference_ops Add / BroadcastAdd4DSlow, SubWithActivation / BroadcastSubSlow,
 * Mul / BroadcastMul4DSlow, Div / BroadcastDivSlow, maximum_minimum's MaximumOp / MinimumOp),
 * for the float heads and tails of int8 models.
 *
 * One IEEE operation per element, then the fused activation as TFLite's
 * ActivationFunctionWithMinMax, min(max(v, lo), hi) with std::max / std::min's comparisons, so
 * a NaN passes through and -0.0 stays -0.0 under RELU. Broadcasting only chooses which
 * elements meet, never the order of any sum, and one operation per element leaves a compiler
 * nothing to contract into a fused multiply-add: every C99 compiler gives TFLM's bits. The
 * activation range {lo, hi} comes as a const array (-FLT_MAX / FLT_MAX where unbounded, as
 * CalculateActivationRange gives). */
#include "mcu_broadcast.h"

MCU_INLINE float mcu_activation_f32(float v, const float *range) {
    v = (v < range[0]) ? range[0] : v;    /* std::max(v, lo) */
    return (range[1] < v) ? range[1] : v; /* std::min(v, hi) */
}

MCU_KERNEL void mcu_add_f32(const float *a, const float *b, float *out, const int32_t *dims,
                            const int32_t *sa, const int32_t *sb, const float *range) {
    MCU_BCAST_MAP_F32(a, b, out, dims, sa, sb, x, y, mcu_activation_f32(x + y, range));
}

MCU_KERNEL void mcu_sub_f32(const float *a, const float *b, float *out, const int32_t *dims,
                            const int32_t *sa, const int32_t *sb, const float *range) {
    MCU_BCAST_MAP_F32(a, b, out, dims, sa, sb, x, y, mcu_activation_f32(x - y, range));
}

MCU_KERNEL void mcu_mul_f32(const float *a, const float *b, float *out, const int32_t *dims,
                            const int32_t *sa, const int32_t *sb, const float *range) {
    MCU_BCAST_MAP_F32(a, b, out, dims, sa, sb, x, y, mcu_activation_f32(x * y, range));
}

MCU_KERNEL void mcu_div_f32(const float *a, const float *b, float *out, const int32_t *dims,
                            const int32_t *sa, const int32_t *sb, const float *range) {
    MCU_BCAST_MAP_F32(a, b, out, dims, sa, sb, x, y, mcu_activation_f32(x / y, range));
}

/* MAXIMUM / MINIMUM have no fused activation; the comparisons are MaximumOp's and MinimumOp's
 * (the first operand wins unless the second compares greater / smaller). */
MCU_KERNEL void mcu_maximum_f32(const float *a, const float *b, float *out, const int32_t *dims,
                                const int32_t *sa, const int32_t *sb) {
    MCU_BCAST_MAP_F32(a, b, out, dims, sa, sb, x, y, x > y ? x : y);
}

MCU_KERNEL void mcu_minimum_f32(const float *a, const float *b, float *out, const int32_t *dims,
                                const int32_t *sa, const int32_t *sb) {
    MCU_BCAST_MAP_F32(a, b, out, dims, sa, sb, x, y, x < y ? x : y);
}
