/* Row iteration for broadcasting element-wise kernels (ADD, SUB, MUL, MAXIMUM, MINIMUM, PRELU).
 *
 * The generator folds every operand shape into MCU_BCAST_DIMS dimensions, merging adjacent
 * dimensions where both inputs are contiguous (or both broadcast), and passes per-input
 * element strides with 0 on broadcast dimensions. The output is contiguous. The innermost
 * dimension is a "row": its input strides are 0 or 1, so a row is a plain loop.
 *
 * MCU_FOR_EACH_ROW(dims, sa, sb, oa, ob, oo, body...) runs the body once per row with the element
 * offsets oa / ob / oo of the row's first element in a, b and out.
 */
#ifndef MCU_BROADCAST_H
#define MCU_BROADCAST_H

#include "mcu_common.h"

#define MCU_BCAST_DIMS 6

#define MCU_FOR_EACH_ROW(dims, sa, sb, oa, ob, oo, ...)                                       \
    do {                                                                                      \
        int32_t mcu_idx_[MCU_BCAST_DIMS - 1] = {0, 0, 0, 0, 0};                               \
        int32_t oa = 0, ob = 0, oo = 0;                                                       \
        const int32_t mcu_rows_ = (dims)[0] * (dims)[1] * (dims)[2] * (dims)[3] * (dims)[4];  \
        int32_t mcu_r_;                                                                       \
        for (mcu_r_ = 0; mcu_r_ < mcu_rows_; ++mcu_r_) {                                      \
            int mcu_k_;                                                                       \
            __VA_ARGS__;                                                                      \
            oo += (dims)[MCU_BCAST_DIMS - 1];                                                 \
            for (mcu_k_ = MCU_BCAST_DIMS - 2; mcu_k_ >= 0; --mcu_k_) {                        \
                oa += (sa)[mcu_k_];                                                           \
                ob += (sb)[mcu_k_];                                                           \
                if (++mcu_idx_[mcu_k_] < (dims)[mcu_k_]) {                                    \
                    break;                                                                    \
                }                                                                             \
                oa -= (sa)[mcu_k_] * (dims)[mcu_k_];                                          \
                ob -= (sb)[mcu_k_] * (dims)[mcu_k_];                                          \
                mcu_idx_[mcu_k_] = 0;                                                         \
            }                                                                                 \
        }                                                                                     \
    } while (0)

#endif /* MCU_BROADCAST_H */
