/* SOFTMAX and LOG_SOFTMAX on float32 over the last dimension: TFLM's float reference
 * (reference_ops::Softmax, reference_ops::LogSoftmax) in its operation order, for a
 * classifier's float tail. Per row: the maximum (std::max from the lowest float), then the
 * exponentials summed in index order, then the division (SOFTMAX) or the subtraction of the
 * maximum and of log(sum) (LOG_SOFTMAX). expf / logf are the C library's (link with -lm), as
 * TFLM's std::exp / std::log. */
#include <float.h>
#include <math.h>

#include "mcu_common.h"

MCU_INLINE float mcu_row_max_f32(const float *x, int32_t depth) {
    float max = -FLT_MAX;
    int32_t c;
    for (c = 0; c < depth; ++c) {
        max = (max < x[c]) ? x[c] : max; /* std::max(max, x[c]) */
    }
    return max;
}

/* One row of either: SOFTMAX's exponentials of (x - max) * beta stored, then divided by their
 * sum; LOG_SOFTMAX's of x - max only summed, then x - max - log(sum). */
MCU_INLINE void mcu_softmax_row_f32(const float *x, float *y, int32_t depth, float beta,
                                    int log_softmax) {
    const float max = mcu_row_max_f32(x, depth);
    float sum = 0.0f;
    int32_t c;
    if (log_softmax) {
        float log_sum;
        for (c = 0; c < depth; ++c) {
            sum += expf(x[c] - max);
        }
        log_sum = logf(sum);
        for (c = 0; c < depth; ++c) {
            y[c] = x[c] - max - log_sum;
        }
        return;
    }
    for (c = 0; c < depth; ++c) {
        const float e = expf((x[c] - max) * beta);
        y[c] = e;
        sum += e;
    }
    for (c = 0; c < depth; ++c) {
        y[c] = y[c] / sum;
    }
}

MCU_KERNEL void mcu_softmax_f32(const float *in, float *out, int32_t rows, int32_t depth,
                                float beta) {
    int32_t r;
    for (r = 0; r < rows; ++r) {
        mcu_softmax_row_f32(in + (size_t)r * (size_t)depth, out + (size_t)r * (size_t)depth,
                            depth, beta, 0);
    }
}

MCU_KERNEL void mcu_log_softmax_f32(const float *in, float *out, int32_t rows, int32_t depth) {
    int32_t r;
    for (r = 0; r < rows; ++r) {
        mcu_softmax_row_f32(in + (size_t)r * (size_t)depth, out + (size_t)r * (size_t)depth,
                            depth, 1.0f, 1);
    }
}
