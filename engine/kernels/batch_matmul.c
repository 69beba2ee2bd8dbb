/* BATCH_MATMUL int8 with broadcast batch dimensions: TFLite Micro's reference arithmetic
 * (micro/kernels/batch_matmul.cc, kernels/internal/reference/batch_matmul.h). Per output
 * element (b, i, j): acc = sum_k (lhs[b][i][k] - zp_lhs) * (rhs[b][k][j] - zp_rhs) in int32,
 * MultiplyByQuantizedMultiplier by the multiplier of s_lhs * s_rhs / s_out, plus the output
 * zero point, clamped to int8 (the op has no fused activation).
 *
 * TFLM transposes its operands into persistent buffers so that both are read along k; here
 * each operand is read through strides instead (the generator lays a constant operand out
 * with k innermost), so no scratch is needed and the integer sums are the same. Where the
 * plan has room free at the op, mcu_batch_matmul_taps_last_s8 copies each batch's matrix of
 * a computed operand whose taps are not innermost (an LHS with adj_x, an RHS without adj_y)
 * into scratch with its taps innermost first, and every product runs on contiguous bytes.
 * The generator has checked that the accumulator cannot overflow (engine/quant_ops.py
 * BATCH_MATMUL_MAX_DEPTH). The output is [b0][b1][b2][M][N], row-major.
 *
 * DSP build, both operands contiguous along k: four taps a step, each operand's bytes
 * sign-extended and offset by its (minus) zero point in one SXTAB16 (|x - zp| <= 255 fits
 * a halfword), two SMLADs: exactly the portable sum. */
#include "mcu_common.h"

/* Quantization parameters, one const int32 array in this order (quant_ops.BatchMatMulParams). */
enum {
    MCU_BMM_LHS_OFFSET, MCU_BMM_RHS_OFFSET, MCU_BMM_OUT_OFFSET, MCU_BMM_MULT, MCU_BMM_SHIFT,
    MCU_BMM_NUM_PARAMS
};

/* The layout, one const int32 array: three batch sizes, each operand's stride per batch
 * dimension (0 where it is broadcast), M, N, K, and the element strides of lhs (per row i,
 * per tap k) and rhs (per column j, per tap k). */
enum {
    MCU_BMM_B0, MCU_BMM_B1, MCU_BMM_B2, MCU_BMM_L0, MCU_BMM_L1, MCU_BMM_L2, MCU_BMM_R0,
    MCU_BMM_R1, MCU_BMM_R2, MCU_BMM_M, MCU_BMM_N, MCU_BMM_K, MCU_BMM_LI, MCU_BMM_LK,
    MCU_BMM_RJ, MCU_BMM_RK, MCU_BMM_NUM_DIMS
};

/* sum_k (l[k * lk] + lo) * (r[k * rk] + ro); lk, rk literal 1 at the contiguous call. */
MCU_INLINE int32_t mcu_bmm_dot(const int8_t *l, int32_t lk, const int8_t *r, int32_t rk,
                               int32_t k, int32_t lo, int32_t ro) {
    int32_t acc = 0;
    int32_t t = 0;
#if MCU_USE_DSP
    if (lk == 1 && rk == 1) {
        const int32_t lo2 = (int32_t)mcu_pack16(lo, lo), ro2 = (int32_t)mcu_pack16(ro, ro);
        for (; t + 4 <= k; t += 4) {
            const uint32_t wl = mcu_read_u32(l + t), wr = mcu_read_u32(r + t);
            acc = __smlad(__sxtab16(lo2, (int32_t)wl), __sxtab16(ro2, (int32_t)wr), acc);
            acc = __smlad(__sxtab16(lo2, (int32_t)((wl >> 8) | (wl << 24))),
                          __sxtab16(ro2, (int32_t)((wr >> 8) | (wr << 24))), acc);
        }
    }
#endif
    for (; t < k; ++t) {
        acc += ((int32_t)l[t * lk] + lo) * ((int32_t)r[t * rk] + ro);
    }
    return acc;
}

/* One matrix product: row i of the LHS at lhs + i * li (taps lk apart), column j of the RHS
 * at rhs + j * rj (taps rk apart); lk = rk = 1 a literal at the contiguous call. */
MCU_INLINE void mcu_bmm_matrix(const int8_t *lhs, int32_t li, int32_t lk, const int8_t *rhs,
                               int32_t rj, int32_t rk, int8_t *out, const int32_t *d,
                               const int32_t *q) {
    const int32_t m = d[MCU_BMM_M], n = d[MCU_BMM_N], k = d[MCU_BMM_K];
    for (int32_t i = 0; i < m; ++i) {
        const int8_t *row = lhs + i * li;
        for (int32_t j = 0; j < n; ++j) {
            const int32_t acc = mcu_bmm_dot(row, lk, rhs + j * rj, rk, k,
                                            q[MCU_BMM_LHS_OFFSET], q[MCU_BMM_RHS_OFFSET]);
            *out++ = mcu_requantize_s8(acc, q[MCU_BMM_MULT], q[MCU_BMM_SHIFT],
                                       q[MCU_BMM_OUT_OFFSET], -128, 127);
        }
    }
}

/* The rows x taps matrix at src (row r, tap t at src[r * rs + t * ts]) into dst as
 * [rows][taps]. */
MCU_INLINE void mcu_bmm_taps_last(const int8_t *src, int32_t rows, int32_t rs, int32_t ts,
                                  int32_t taps, int8_t *dst) {
    for (int32_t r = 0; r < rows; ++r) {
        for (int32_t t = 0; t < taps; ++t) {
            *dst++ = src[r * rs + t * ts];
        }
    }
}

/* Every batch (b0, b1, b2): its two matrices, given to `body`. */
#define MCU_BMM_BATCHES(lhs, rhs, out, d, l, r, body)                                          \
    do {                                                                                       \
        const int32_t matrix_ = (d)[MCU_BMM_M] * (d)[MCU_BMM_N];                               \
        for (int32_t b0 = 0; b0 < (d)[MCU_BMM_B0]; ++b0) {                                     \
            for (int32_t b1 = 0; b1 < (d)[MCU_BMM_B1]; ++b1) {                                 \
                for (int32_t b2 = 0; b2 < (d)[MCU_BMM_B2]; ++b2) {                             \
                    const int8_t *l = (lhs) + b0 * (d)[MCU_BMM_L0] + b1 * (d)[MCU_BMM_L1] +    \
                                      b2 * (d)[MCU_BMM_L2];                                    \
                    const int8_t *r = (rhs) + b0 * (d)[MCU_BMM_R0] + b1 * (d)[MCU_BMM_R1] +    \
                                      b2 * (d)[MCU_BMM_R2];                                    \
                    body;                                                                      \
                    (out) += matrix_;                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    } while (0)

MCU_KERNEL void mcu_batch_matmul_s8(const int8_t *lhs, const int8_t *rhs, int8_t *out,
                                    const int32_t *d, const int32_t *q) {
    const int32_t li = d[MCU_BMM_LI], lk = d[MCU_BMM_LK], rj = d[MCU_BMM_RJ];
    const int32_t rk = d[MCU_BMM_RK];
    if (lk == 1 && rk == 1) {
        MCU_BMM_BATCHES(lhs, rhs, out, d, l, r, mcu_bmm_matrix(l, li, 1, r, rj, 1, out, d, q));
    } else {
        MCU_BMM_BATCHES(lhs, rhs, out, d, l, r, mcu_bmm_matrix(l, li, lk, r, rj, rk, out, d, q));
    }
}

/* The same with scratch of (lk != 1 ? M * K : 0) + (rk != 1 ? N * K : 0) bytes: an operand
 * whose taps are not innermost is copied taps-last, one batch's matrix at a time (again only
 * when the batch moves to another matrix of it), and every product is contiguous. */
MCU_KERNEL void mcu_batch_matmul_taps_last_s8(const int8_t *lhs, const int8_t *rhs,
                                              int8_t *out, const int32_t *d,
                                              const int32_t *q, int8_t *scratch) {
    const int32_t m = d[MCU_BMM_M], n = d[MCU_BMM_N], k = d[MCU_BMM_K];
    const int32_t lk = d[MCU_BMM_LK], rk = d[MCU_BMM_RK];
    int8_t *lt = scratch, *rt = scratch + (lk != 1 ? m * k : 0);
    const int8_t *l_done = NULL, *r_done = NULL;
    MCU_BMM_BATCHES(lhs, rhs, out, d, l, r, {
        if (lk != 1 && l != l_done) {
            mcu_bmm_taps_last(l, m, d[MCU_BMM_LI], lk, k, lt);
            l_done = l;
        }
        if (rk != 1 && r != r_done) {
            mcu_bmm_taps_last(r, n, d[MCU_BMM_RJ], rk, k, rt);
            r_done = r;
        }
        mcu_bmm_matrix(lk != 1 ? lt : l, lk != 1 ? k : d[MCU_BMM_LI], 1,
                       rk != 1 ? rt : r, rk != 1 ? k : d[MCU_BMM_RJ], 1, out, d, q);
    });
}
