/* The loops of the reducing kernels (MEAN / SUM in mean.c, REDUCE_MAX / REDUCE_MIN in
 * reduce_minmax.c), written once: each kernel supplies only its reducer.
 *
 * The generator orders the input dimensions as (kept..., reduced...) through strides, folded
 * to MCU_REDUCE_DIMS outer (kept) and MCU_REDUCE_DIMS inner (reduced) dimensions, each with
 * its input element stride. The output is contiguous, one element per outer index.
 *
 * mcu_reduce_s8 is always inlined with a constant `reducer`, so each kernel compiles to its
 * own loop with no per-element branch on the kind. */
#ifndef MCU_REDUCE_H
#define MCU_REDUCE_H

#include "mcu_common.h"

#define MCU_REDUCE_DIMS 4

enum { MCU_REDUCE_SUM, MCU_REDUCE_MAX, MCU_REDUCE_MIN };

/* The reduced elements of one output: SUM gives their int32 sum, wrapping like TFLM's int32
 * accumulation (unsigned, so the wrap is defined); MAX / MIN the largest / smallest stored
 * value, starting from -128 / 127 as TFLM's reducers do. */
MCU_INLINE int32_t mcu_reduce_one_s8(const int8_t *base, const int32_t *dims,
                                     const int32_t *strides, int reducer) {
    uint32_t sum = 0;
    int32_t best = reducer == MCU_REDUCE_MAX ? INT8_MIN : INT8_MAX;
    int32_t i0, i1, i2, i3;
    const int32_t step = strides[3];
    for (i0 = 0; i0 < dims[0]; ++i0)
    for (i1 = 0; i1 < dims[1]; ++i1)
    for (i2 = 0; i2 < dims[2]; ++i2) {
        const int8_t *p = base + i0 * strides[0] + i1 * strides[1] + i2 * strides[2];
        for (i3 = 0; i3 < dims[3]; ++i3) {
            const int32_t v = p[i3 * step];
            if (reducer == MCU_REDUCE_SUM) {
                sum += (uint32_t)v;
            } else if (reducer == MCU_REDUCE_MAX ? v > best : v < best) {
                best = v;
            }
        }
    }
    return reducer == MCU_REDUCE_SUM ? (int32_t)sum : best;
}

/* Calls finish(reduced value, q) for every output element in order and stores its result. */
#define MCU_REDUCE_S8(in, out, outer_dims, outer_strides, inner_dims, inner_strides, reducer, \
                      finish, q)                                                             \
    do {                                                                                     \
        int32_t mcu_o0_, mcu_o1_, mcu_o2_, mcu_o3_;                                          \
        int8_t *mcu_out_ = (out);                                                            \
        for (mcu_o0_ = 0; mcu_o0_ < (outer_dims)[0]; ++mcu_o0_)                              \
        for (mcu_o1_ = 0; mcu_o1_ < (outer_dims)[1]; ++mcu_o1_)                              \
        for (mcu_o2_ = 0; mcu_o2_ < (outer_dims)[2]; ++mcu_o2_)                              \
        for (mcu_o3_ = 0; mcu_o3_ < (outer_dims)[3]; ++mcu_o3_) {                            \
            const int8_t *mcu_base_ = (in) + mcu_o0_ * (outer_strides)[0] +                  \
                                      mcu_o1_ * (outer_strides)[1] +                         \
                                      mcu_o2_ * (outer_strides)[2] +                         \
                                      mcu_o3_ * (outer_strides)[3];                          \
            *mcu_out_++ = finish(mcu_reduce_one_s8(mcu_base_, (inner_dims), (inner_strides), \
                                                   (reducer)), (q));                         \
        }                                                                                    \
    } while (0)

#endif /* MCU_REDUCE_H */
