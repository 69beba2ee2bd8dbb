/* The engine's copy kernel: every op that only moves bytes.
 *
 * mcu_copy_nd_8: strided N-d byte copy, the data movement of TRANSPOSE, STRIDED_SLICE, SPLIT,
 * CONCATENATION and PAD / PADV2 (the interior), for 8-bit tensors. The generator describes
 * the copy as MCU_COPY_DIMS sizes with a source and a destination element stride per
 * dimension (strides may be negative for reversed slices), merging dimensions that are
 * contiguous in both. When the innermost dimension is contiguous in both tensors a row is one
 * memcpy. None of these ops reads and writes the same bytes (the planner never places them
 * in place), so memcpy is safe.
 *
 * mcu_copy_8: one contiguous block, the RESHAPE / SQUEEZE / EXPAND_DIMS whose output the plan
 * did not alias to its input (normally it does, and nothing is emitted). It takes no stride
 * arrays (no Flash beyond the call), and uses memmove: the planner may pack the two ranges
 * so that they overlap.
 *
 * mcu_fill_8: the PAD / PADV2 border. */
#include "mcu_common.h"

#define MCU_COPY_DIMS 6

MCU_KERNEL void mcu_copy_8(const void *src, void *dst, size_t bytes) {
    if (src != dst) {
        memmove(dst, src, bytes);
    }
}

MCU_KERNEL void mcu_copy_nd_8(const void *src, void *dst, const int32_t *dims,
                              const int32_t *src_strides, const int32_t *dst_strides) {
    const uint8_t *s = (const uint8_t *)src;
    uint8_t *d = (uint8_t *)dst;
    const int32_t n = dims[MCU_COPY_DIMS - 1];
    const int32_t ss = src_strides[MCU_COPY_DIMS - 1], ds = dst_strides[MCU_COPY_DIMS - 1];
    int32_t idx[MCU_COPY_DIMS - 1] = {0, 0, 0, 0, 0};
    int32_t rows = 1, r, k, i;
    int32_t so = 0, dof = 0;
    for (k = 0; k < MCU_COPY_DIMS - 1; ++k) {
        rows *= dims[k];
    }
    for (r = 0; r < rows; ++r) {
        if (ss == 1 && ds == 1) {
            memcpy(d + dof, s + so, (size_t)n);
        } else {
            for (i = 0; i < n; ++i) {
                d[dof + i * ds] = s[so + i * ss];
            }
        }
        for (k = MCU_COPY_DIMS - 2; k >= 0; --k) {
            so += src_strides[k];
            dof += dst_strides[k];
            if (++idx[k] < dims[k]) {
                break;
            }
            so -= src_strides[k] * dims[k];
            dof -= dst_strides[k] * dims[k];
            idx[k] = 0;
        }
    }
}

/* PAD / PADV2 border: fill the whole output with the pad value first (then copy the interior). */
MCU_KERNEL void mcu_fill_8(void *dst, int32_t value, size_t bytes) {
    memset(dst, value & 0xff, bytes);
}
