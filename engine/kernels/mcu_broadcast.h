/* The loop of the broadcasting element-wise kernels (ADD, SUB, MUL, MAXIMUM, MINIMUM, PRELU),
 * written once: each kernel supplies only its per-element arithmetic.
 *
 * The generator folds every operand shape into MCU_BCAST_DIMS dimensions, merging adjacent
 * dimensions where both inputs are contiguous (or both broadcast), and passes per-input
 * element strides with 0 on broadcast dimensions. The output is contiguous. The innermost
 * dimension is a "row": its input strides are 0 or 1, so a row is a plain loop.
 *
 * MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, expr) sets every int8 output element to
 * (int8_t)(expr), where expr reads x and y, the int32_t values of the int8 elements of a and
 * b that broadcast to it. MCU_BCAST_MAP(in_t, val_t, out_t, ...) is the same loop for other
 * element types (float32 with MCU_BCAST_MAP_F32).
 */
#ifndef MCU_BROADCAST_H
#define MCU_BROADCAST_H

#include "mcu_common.h"

#define MCU_BCAST_DIMS 6

#define MCU_BCAST_MAP(in_t, val_t, out_t, a, b, out, dims, sa, sb, x, y, ...)                 \
    do {                                                                                      \
        const int32_t mcu_n_ = (dims)[MCU_BCAST_DIMS - 1];                                    \
        const int32_t mcu_ia_ = (sa)[MCU_BCAST_DIMS - 1], mcu_ib_ = (sb)[MCU_BCAST_DIMS - 1]; \
        const int32_t mcu_rows_ = (dims)[0] * (dims)[1] * (dims)[2] * (dims)[3] * (dims)[4];  \
        int32_t mcu_idx_[MCU_BCAST_DIMS - 1] = {0, 0, 0, 0, 0};                               \
        int32_t mcu_oa_ = 0, mcu_ob_ = 0, mcu_oo_ = 0;                                        \
        int32_t mcu_r_;                                                                       \
        for (mcu_r_ = 0; mcu_r_ < mcu_rows_; ++mcu_r_) {                                      \
            const in_t *mcu_ra_ = (a) + mcu_oa_;                                              \
            const in_t *mcu_rb_ = (b) + mcu_ob_;                                              \
            out_t *mcu_ro_ = (out) + mcu_oo_;                                                 \
            int32_t mcu_i_;                                                                   \
            int mcu_k_;                                                                       \
            for (mcu_i_ = 0; mcu_i_ < mcu_n_; ++mcu_i_) {                                     \
                const val_t x = mcu_ra_[mcu_i_ * mcu_ia_];                                    \
                const val_t y = mcu_rb_[mcu_i_ * mcu_ib_];                                    \
                mcu_ro_[mcu_i_] = (out_t)(__VA_ARGS__);                                       \
            }                                                                                 \
            mcu_oo_ += mcu_n_;                                                                \
            for (mcu_k_ = MCU_BCAST_DIMS - 2; mcu_k_ >= 0; --mcu_k_) {                        \
                mcu_oa_ += (sa)[mcu_k_];                                                      \
                mcu_ob_ += (sb)[mcu_k_];                                                      \
                if (++mcu_idx_[mcu_k_] < (dims)[mcu_k_]) {                                    \
                    break;                                                                    \
                }                                                                             \
                mcu_oa_ -= (sa)[mcu_k_] * (dims)[mcu_k_];                                     \
                mcu_ob_ -= (sb)[mcu_k_] * (dims)[mcu_k_];                                     \
                mcu_idx_[mcu_k_] = 0;                                                         \
            }                                                                                 \
        }                                                                                     \
    } while (0)

#define MCU_BCAST_MAP_S8(a, b, out, dims, sa, sb, x, y, ...) \
    MCU_BCAST_MAP(int8_t, int32_t, int8_t, a, b, out, dims, sa, sb, x, y, __VA_ARGS__)

#define MCU_BCAST_MAP_F32(a, b, out, dims, sa, sb, x, y, ...) \
    MCU_BCAST_MAP(float, float, float, a, b, out, dims, sa, sb, x, y, __VA_ARGS__)

#endif /* MCU_BROADCAST_H */
