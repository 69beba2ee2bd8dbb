/* FULLY_CONNECTED, int8, bit-exact with TFLite Micro's reference FullyConnected /
 * FullyConnectedPerChannel.
 *
 * Generation-time contract (tflite_converter/codegen/ops/fully_connected.py): weights are
 * [units][depth] int8 with zero point 0, packed in blocks of MCU_FC_RB rows
 * (mcu_matmul_s8.h layout: [depth4/4 groups][rows][4], zero padded); rq holds {bias,
 * multiplier, shift} per unit with the input zero point folded into the bias
 * (bias[c] - zp_in * sum(w[c])); fast as in conv2d.c. No scratch: each word of the input row
 * is split into 16-bit halves once and shared by the MCU_FC_RB rows of a block.
 */
#include "mcu_common.h"
#include "mcu_matmul_s8.h"

#define MCU_FC_RB 4

/* Four input values as the halves the packed weights pair with (x0,x2) and (x1,x3). */
MCU_INLINE void mcu_fc_split(const int8_t *x, int n, uint32_t *xe, uint32_t *xo) {
    int8_t v[4] = {0, 0, 0, 0};
    if (n >= 4) {
        memcpy(v, x, 4);
    } else {
        for (int t = 0; t < n; ++t) {
            v[t] = x[t];
        }
    }
    const uint32_t w = mcu_read_u32(v);
    *xe = mcu_sxtb16(w);
    *xo = mcu_mm_sxtb16_hi(w);
}

MCU_INLINE int32_t mcu_fc_mac(const int8_t *pw, uint32_t xe, uint32_t xo, int32_t acc) {
    const uint32_t w = mcu_read_u32(pw);
    return mcu_smlad(mcu_mm_sxtb16_hi(w), xo, mcu_smlad(mcu_sxtb16(w), xe, acc));
}

/* `rows` (1..4, a literal at each call) packed rows against one input row. */
MCU_INLINE void mcu_fc_block(const int8_t *MCU_RESTRICT x, int depth, const int8_t *pw,
                             int rows, const int32_t *rq, int fast, int8_t *out,
                             int32_t out_zp, int32_t act_min, int32_t act_max) {
    int32_t a0 = rq[0], a1 = rows > 1 ? rq[3] : 0, a2 = rows > 2 ? rq[6] : 0;
    int32_t a3 = rows > 3 ? rq[9] : 0;
    for (int k = 0; k < depth; k += 4, pw += 4 * rows) {
        uint32_t xe, xo;
        mcu_fc_split(x + k, depth - k, &xe, &xo);
        a0 = mcu_fc_mac(pw, xe, xo, a0);
        if (rows > 1) {
            a1 = mcu_fc_mac(pw + 4, xe, xo, a1);
        }
        if (rows > 2) {
            a2 = mcu_fc_mac(pw + 8, xe, xo, a2);
        }
        if (rows > 3) {
            a3 = mcu_fc_mac(pw + 12, xe, xo, a3);
        }
    }
    const int32_t acc[4] = {a0, a1, a2, a3};
    for (int r = 0; r < rows; ++r) {
        const int32_t *e = rq + 3 * r;
        const int32_t rnd = fast ? mcu_requant_rnd(e[2], out_zp) : 0;
        out[r] = mcu_requant_entry(acc[r], e, rnd, fast, out_zp, act_min, act_max);
    }
}

MCU_INLINE void mcu_fc_body(const int8_t *input, int batches, int depth, const int8_t *wpk,
                            const int32_t *rq, int fast, int8_t *output, int units,
                            int32_t out_zp, int32_t act_min, int32_t act_max) {
    const int block_bytes = MCU_FC_RB * ((depth + 3) & ~3);
    for (int b = 0; b < batches; ++b) {
        const int8_t *x = input + (size_t)b * depth;
        int8_t *out = output + (size_t)b * units;
        const int8_t *pw = wpk;
        int c = 0;
        for (; c + MCU_FC_RB <= units; c += MCU_FC_RB, pw += block_bytes) {
            mcu_fc_block(x, depth, pw, MCU_FC_RB, rq + 3 * c, fast, out + c, out_zp, act_min,
                         act_max);
        }
        switch (units - c) {
        case 3:
            mcu_fc_block(x, depth, pw, 3, rq + 3 * c, fast, out + c, out_zp, act_min, act_max);
            break;
        case 2:
            mcu_fc_block(x, depth, pw, 2, rq + 3 * c, fast, out + c, out_zp, act_min, act_max);
            break;
        case 1:
            mcu_fc_block(x, depth, pw, 1, rq + 3 * c, fast, out + c, out_zp, act_min, act_max);
            break;
        default:
            break;
        }
    }
}

MCU_KERNEL void mcu_fully_connected_s8(const int8_t *input, int batches, int depth,
                                       const int8_t *wpk, const int32_t *rq, int fast,
                                       int8_t *output, int units, int32_t out_zp,
                                       int32_t act_min, int32_t act_max) {
    if (fast) {
        mcu_fc_body(input, batches, depth, wpk, rq, 1, output, units, out_zp, act_min, act_max);
    } else {
        mcu_fc_body(input, batches, depth, wpk, rq, 0, output, units, out_zp, act_min, act_max);
    }
}
