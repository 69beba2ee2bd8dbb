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
#include "mcu_int4.h"
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

/* Row r's four weights of one group at pw: int8 (4 bytes a row), or (s4, a literal at each
 * call) int4 in the word layout (mcu_int4.h) of a whole MCU_FC_RB-row group, 8 bytes: rows
 * 0 and 1 in the low and high nibbles of the first word, rows 2 and 3 in the second. */
MCU_INLINE uint32_t mcu_fc_weights(const int8_t *pw, int s4, int r) {
    if (!s4) {
        return mcu_read_u32(pw + 4 * r);
    }
    const uint32_t w = mcu_read_u32(pw + 4 * (r >> 1));
    return mcu_s4_sext4(((r & 1) ? w >> 4 : w) & 0x0F0F0F0Fu);
}

MCU_INLINE int32_t mcu_fc_mac(uint32_t w, uint32_t xe, uint32_t xo, int32_t acc) {
    return mcu_smlad(mcu_mm_sxtb16_hi(w), xo, mcu_smlad(mcu_sxtb16(w), xe, acc));
}

/* `rows` (1..4, a literal at each call) packed rows against one input row; s4 (a literal):
 * int4 weights, whose blocks always hold MCU_FC_RB rows (the last one zero-padded), 8 bytes a
 * group of four taps. */
MCU_INLINE void mcu_fc_block(const int8_t *MCU_RESTRICT x, int depth, const int8_t *pw,
                             int s4, int rows, const int32_t *rq, int fast, int8_t *out,
                             int32_t out_zp, int32_t act_min, int32_t act_max) {
    const int step = s4 ? 2 * MCU_FC_RB : 4 * rows; /* bytes of one group of four taps */
    int32_t a0 = rq[0], a1 = rows > 1 ? rq[3] : 0, a2 = rows > 2 ? rq[6] : 0;
    int32_t a3 = rows > 3 ? rq[9] : 0;
    for (int k = 0; k < depth; k += 4, pw += step) {
        uint32_t xe, xo;
        mcu_fc_split(x + k, depth - k, &xe, &xo);
        a0 = mcu_fc_mac(mcu_fc_weights(pw, s4, 0), xe, xo, a0);
        if (rows > 1) {
            a1 = mcu_fc_mac(mcu_fc_weights(pw, s4, 1), xe, xo, a1);
        }
        if (rows > 2) {
            a2 = mcu_fc_mac(mcu_fc_weights(pw, s4, 2), xe, xo, a2);
        }
        if (rows > 3) {
            a3 = mcu_fc_mac(mcu_fc_weights(pw, s4, 3), xe, xo, a3);
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
                            int s4, const int32_t *rq, int fast, int8_t *output, int units,
                            int32_t out_zp, int32_t act_min, int32_t act_max) {
    const int block_int8 = MCU_FC_RB * ((depth + 3) & ~3);
    const int block_bytes = s4 ? block_int8 / 2 : block_int8;
    for (int b = 0; b < batches; ++b) {
        const int8_t *x = input + (size_t)b * depth;
        int8_t *out = output + (size_t)b * units;
        const int8_t *pw = wpk;
        int c = 0;
        for (; c + MCU_FC_RB <= units; c += MCU_FC_RB, pw += block_bytes) {
            mcu_fc_block(x, depth, pw, s4, MCU_FC_RB, rq + 3 * c, fast, out + c, out_zp, act_min,
                         act_max);
        }
        switch (units - c) {
        case 3:
            mcu_fc_block(x, depth, pw, s4, 3, rq + 3 * c, fast, out + c, out_zp, act_min, act_max);
            break;
        case 2:
            mcu_fc_block(x, depth, pw, s4, 2, rq + 3 * c, fast, out + c, out_zp, act_min, act_max);
            break;
        case 1:
            mcu_fc_block(x, depth, pw, s4, 1, rq + 3 * c, fast, out + c, out_zp, act_min, act_max);
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
        mcu_fc_body(input, batches, depth, wpk, 0, rq, 1, output, units, out_zp, act_min,
                    act_max);
    } else {
        mcu_fc_body(input, batches, depth, wpk, 0, rq, 0, output, units, out_zp, act_min,
                    act_max);
    }
}

/* The same on int4 weights (TFLM runs them per tensor only): w4 is pack_weight_rows' layout
 * with the units padded to a multiple of MCU_FC_RB, in the word layout (tflite_converter/
 * int4.py pack_words); each group is widened to the int8 words as it is used, so the kernel
 * needs no scratch. */
MCU_KERNEL void mcu_fully_connected_s4(const int8_t *input, int batches, int depth,
                                       const uint8_t *w4, const int32_t *rq, int fast,
                                       int8_t *output, int units, int32_t out_zp,
                                       int32_t act_min, int32_t act_max) {
    const int8_t *wpk = (const int8_t *)w4;
    if (fast) {
        mcu_fc_body(input, batches, depth, wpk, 1, rq, 1, output, units, out_zp, act_min,
                    act_max);
    } else {
        mcu_fc_body(input, batches, depth, wpk, 1, rq, 0, output, units, out_zp, act_min,
                    act_max);
    }
}

/* ---------------------------------------------------------------------------------------
 * The offset-byte kernel (mcu_fc_offset_s8): one sign extension per weight word instead of
 * two.
 *
 * Each group of four weights w0..w3 is stored (generation time, fully_connected.py
 * pack_offset_weights) as the bytes [w1+128, w0, w3+128, w2], so that the word W read as two
 * signed halfwords is (256*w0 + w1+128, 256*w2 + w3+128) and UXTB16(W) is (w1+128, w3+128).
 * The input group x0..x3 becomes, once per group and shared by the rows of a block,
 *     P = SXTB16(x) = (x0, x2),   Q = x EOR 0x007F007F = (256*x1 + 127-x0, 256*x3 + 127-x2)
 * (Q's low bytes are 127 - x, in [0, 255], under the signed high bytes x1, x3: both lanes
 * within int16, two instructions and no constant register). Then
 *     SMLAD(W, P) + SMLAD(UXTB16(W), Q) = 256 * (w0*x0 + w1*x1 + w2*x2 + w3*x3)
 *                                         + 256*128*(x1 + x3) + 127*(w1+128 + w3+128).
 * The weight term is a per-row constant the generator puts into the start value
 * rq[0] = 256 * bias - 127 * (sum over the odd taps of the padded row of w + 128)
 * (mod 2^32); the input term is the same for every row and is subtracted once per input row
 * (cx). The accumulator is then 256 * (bias + sum w*x) modulo 2^32, exact because the
 * generator only takes this kernel when |bias| + 128 * sum|w| < 2^23; an arithmetic shift by
 * 8 gives TFLite's accumulator. All sums are taken modulo 2^32 (SMLAD wraps; the portable
 * code uses unsigned arithmetic), as the intermediate values may exceed int32 even though the
 * final one does not. Padding taps (zero weights, inputs read as zero) follow the same sums.
 */

/* Q = x EOR MCU_FCO_Q_FLIP (a Thumb-2 modified immediate, written into the asm below). */
#define MCU_FCO_Q_FLIP 0x007F007F
#define MCU_FCO_STR_(v) #v
#define MCU_FCO_STR(v) MCU_FCO_STR_(v)
/* Rows per block of the offset-byte weights (fully_connected.py FCO_ROW_BLOCK). */
#define MCU_FCO_RB 8

/* P and Q of one group of four inputs. */
MCU_INLINE void mcu_fco_lanes(uint32_t x, uint32_t *p, uint32_t *q) {
#if MCU_USE_DSP
    *p = mcu_sxtb16(x);
#else
    *p = mcu_pack16((int8_t)(x & 0xffu), (int8_t)((x >> 16) & 0xffu));
#endif
    *q = x ^ (uint32_t)MCU_FCO_Q_FLIP;
}

/* acc + SMLAD(w, p) + SMLAD(UXTB16(w), q), wrapping modulo 2^32. */
MCU_INLINE uint32_t mcu_fco_mac(uint32_t w, uint32_t p, uint32_t q, uint32_t acc) {
#if MCU_USE_DSP
    acc = (uint32_t)__smlad((int16x2_t)w, (int16x2_t)p, (int32_t)acc);
    return (uint32_t)__smlad((int16x2_t)__uxtb16(w), (int16x2_t)q, (int32_t)acc);
#else
    const int32_t w0 = (int16_t)(w & 0xffffu), w1 = (int16_t)(w >> 16);
    const int32_t p0 = (int16_t)(p & 0xffffu), p1 = (int16_t)(p >> 16);
    const int32_t q0 = (int16_t)(q & 0xffffu), q1 = (int16_t)(q >> 16);
    acc += (uint32_t)(w0 * p0) + (uint32_t)(w1 * p1);
    return acc + (uint32_t)((int32_t)(w & 0xffu) * q0) + (uint32_t)((int32_t)((w >> 16) & 0xffu) * q1);
#endif
}

/* One input group (n valid values, the rest read as zero: their weights are zero padding). */
MCU_INLINE uint32_t mcu_fco_read(const int8_t *x, int n) {
    if (n >= 4) {
        return mcu_read_u32(x);
    }
    int8_t v[4] = {0, 0, 0, 0};
    for (int t = 0; t < n; ++t) {
        v[t] = x[t];
    }
    return mcu_read_u32(v);
}

#if MCU_USE_SSE2
/* mcu_fco_mac on four rows at once: PMADDWD against the broadcast P, and against Q after the
 * AND that is UXTB16, is the DSP build's pair of SMLADs (both wrap modulo 2^32 the same way). */
MCU_INLINE __m128i mcu_fco_mac4(__m128i acc, __m128i w, __m128i vp, __m128i vq) {
    const __m128i lo = _mm_and_si128(w, _mm_set1_epi32(0x00FF00FF));
    return _mm_add_epi32(_mm_add_epi32(acc, _mm_madd_epi16(w, vp)), _mm_madd_epi16(lo, vq));
}
#endif

/* `rows` (1..MCU_FCO_RB, a literal at each call) packed rows from group `k0` (a multiple of
 * 4) to the end of the row, in C. */
MCU_INLINE void mcu_fco_rows_c(const int8_t *x, int k0, int depth, const int8_t *pw, int rows,
                               uint32_t *acc) {
#if MCU_USE_SSE2
    /* 4, 6 or 8 rows on SSE2: a group's weight words are one vector, one and a half, or
     * two (mcu_fco_mac4). */
    if ((rows == 4 || rows == 6 || rows == 8) && k0 + 4 <= depth) {
        __m128i a0 = _mm_loadu_si128((const __m128i *)(const void *)acc);
        __m128i a1 = rows == 8   ? _mm_loadu_si128((const __m128i *)(const void *)(acc + 4))
                     : rows == 6 ? _mm_loadl_epi64((const __m128i *)(const void *)(acc + 4))
                                 : _mm_setzero_si128();
        for (; k0 + 4 <= depth; k0 += 4, pw += 4 * rows) {
            uint32_t p, q;
            mcu_fco_lanes(mcu_read_u32(x + k0), &p, &q);
            const __m128i vp = _mm_set1_epi32((int32_t)p), vq = _mm_set1_epi32((int32_t)q);
            const __m128i w0 = _mm_loadu_si128((const __m128i *)(const void *)pw);
            a0 = mcu_fco_mac4(a0, w0, vp, vq);
            if (rows == 8) {
                a1 = mcu_fco_mac4(a1, _mm_loadu_si128((const __m128i *)(const void *)(pw + 16)),
                                  vp, vq);
            } else if (rows == 6) {
                a1 = mcu_fco_mac4(a1, _mm_loadl_epi64((const __m128i *)(const void *)(pw + 16)),
                                  vp, vq);
            }
        }
        _mm_storeu_si128((__m128i *)(void *)acc, a0);
        if (rows == 8) {
            _mm_storeu_si128((__m128i *)(void *)(acc + 4), a1);
        } else if (rows == 6) {
            _mm_storel_epi64((__m128i *)(void *)(acc + 4), a1);
        }
    }
#endif
    for (int k = k0; k < depth; k += 4, pw += 4 * rows) {
        uint32_t p, q;
        mcu_fco_lanes(mcu_fco_read(x + k, depth - k), &p, &q);
        for (int r = 0; r < rows; ++r) {
            acc[r] = mcu_fco_mac(mcu_read_u32(pw + 4 * r), p, q, acc[r]);
        }
    }
}

#if MCU_USE_DSP
/* The asm of one group, on registers named by the caller (operand names in the inline asm,
 * fixed registers in the naked 8-row functions below):
 * the lanes from the inputs at PX (LDR, SXTB16, EOR; the input word is read into Q), and
 * two rows A, B on their weight words WA, WB (4 SMLAD + 2 UXTB16, each weight word widened
 * in place after its first SMLAD). */
#define MCU_FCO_ASM_LANES(PX, P, Q)                                                           \
    "ldr " Q ", [" PX "], #4\n\t"                                                             \
    "sxtb16 " P ", " Q "\n\t"                                                                 \
    "eor " Q ", " Q ", #" MCU_FCO_STR(MCU_FCO_Q_FLIP) "\n\t"
#define MCU_FCO_ASM_MAC2(A, B, WA, WB, P, Q)                                                  \
    "smlad " A ", " WA ", " P ", " A "\n\t"                                                   \
    "uxtb16 " WA ", " WA "\n\t"                                                               \
    "smlad " A ", " WA ", " Q ", " A "\n\t"                                                   \
    "smlad " B ", " WB ", " P ", " B "\n\t"                                                   \
    "uxtb16 " WB ", " WB "\n\t"                                                               \
    "smlad " B ", " WB ", " Q ", " B "\n\t"

/* The inline asm's forms: two rows of one group (LDRD of both weight words first), and the
 * lanes. */
#define MCU_FCO_W2(A, B)                                                                      \
    "ldrd %[wa], %[wb], [%[pw]], #8\n\t"                                                      \
    MCU_FCO_ASM_MAC2("%[" A "]", "%[" B "]", "%[wa]", "%[wb]", "%[p]", "%[q]")
#define MCU_FCO_LANES_X MCU_FCO_ASM_LANES("%[px]", "%[p]", "%[q]")

/* One group of a 6-row tail block: 24 instructions per 24 MACs; of a 4-row one 17 per 16. */
#define MCU_FCO_G6 MCU_FCO_LANES_X MCU_FCO_W2("a0", "a1") MCU_FCO_W2("a2", "a3")               \
    MCU_FCO_W2("a4", "a5")
#define MCU_FCO_G4 MCU_FCO_LANES_X MCU_FCO_W2("a0", "a1") MCU_FCO_W2("a2", "a3")

#define MCU_FCO_PTRS                                                                          \
    [px] "+r"(px), [pw] "+r"(pw), [p] "=&r"(p), [q] "=&r"(q), [wa] "=&r"(wa), [wb] "=&r"(wb)
#define MCU_FCO_ACC6                                                                          \
    [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4), [a5] "+r"(a5)
#define MCU_FCO_ACC4 [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3)

/* The whole groups of a block on the accumulators ACCS, from px to the caller's `end`: the
 * `lead` (G % 4) leading groups one at a time, then four a turn, each group the asm string
 * GROUP; the loop's end is read from memory into wa (free at the end of a group), 3
 * instructions per four groups. */
#define MCU_FCO_GROUPS(lead, GROUP, ACCS)                                                \
    do {                                                                                       \
        for (int mcu_g_ = 0; mcu_g_ < (lead); ++mcu_g_) {                                      \
            __asm__ volatile(GROUP : ACCS, MCU_FCO_PTRS : : "memory");                         \
        }                                                                                      \
        if (px != end) {                                                                       \
            __asm__ volatile("1:\n\t" GROUP GROUP GROUP GROUP                                    \
                             "ldr %[wa], %[end]\n\t"                                           \
                             "cmp %[px], %[wa]\n\t"                                            \
                             "bne 1b\n\t"                                                      \
                             : ACCS, MCU_FCO_PTRS                                              \
                             : [end] "m"(end)                                                  \
                             : "cc", "memory");                                                \
        }                                                                                      \
    } while (0)

/* G >= 1 whole groups of a 6- or 4-row tail block (`rows`, a literal at each call) from
 * the inputs x. */
MCU_INLINE void mcu_fco_rows_asm(const int8_t *x, int G, const int8_t *pw, int rows,
                                 uint32_t *acc) {
    uint32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    uint32_t a4 = rows > 4 ? acc[4] : 0, a5 = rows > 4 ? acc[5] : 0;
    uint32_t p, q, wa, wb;
    const int lead = G & 3;
    const int8_t *px = x;
    const int8_t *const end = px + 4 * G;
    if (rows == 6) {
        MCU_FCO_GROUPS(lead, MCU_FCO_G6, MCU_FCO_ACC6);
    } else {
        MCU_FCO_GROUPS(lead, MCU_FCO_G4, MCU_FCO_ACC4);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    if (rows > 4) {
        acc[4] = a4;
        acc[5] = a5;
    }
}

/* The whole 8-row blocks: all 14 allocatable registers, which GCC's register allocator
 * cannot always give an inline asm where the kernel inlines ("impossible constraints"), so
 * they are two naked functions whose registers are fixed here, called once per block and
 * saving what AAPCS says a callee saves:
 *   r0 the inputs or their lanes (walking), r2 the packed weights (walking),
 *   r4-r11 the 8 accumulators (loaded from and stored back to acc[0..8)),
 *   r12, lr the lanes P and Q; r1, r3 two weight words (LDRD);
 *   [sp] the end of the groups, [sp, #4] the end of the G % 4 leading groups, [sp, #8] acc.
 * One group: 31 instructions per 32 MACs from the inputs, 29 from the lanes. */
#define MCU_FCO8_W2(A, B) MCU_FCO_ASM_MAC2(A, B, "r1", "r3", "r12", "lr")
#define MCU_FCO8_ROWS                                                                         \
    "ldrd r1, r3, [r2], #8\n\t" MCU_FCO8_W2("r4", "r5")                                      \
    "ldrd r1, r3, [r2], #8\n\t" MCU_FCO8_W2("r6", "r7")                                      \
    "ldrd r1, r3, [r2], #8\n\t" MCU_FCO8_W2("r8", "r9")                                      \
    "ldrd r1, r3, [r2], #8\n\t" MCU_FCO8_W2("r10", "r11")
#define MCU_FCO8_GX MCU_FCO_ASM_LANES("r0", "r12", "lr") MCU_FCO8_ROWS
#define MCU_FCO8_GL "ldrd r12, lr, [r0], #8\n\t" MCU_FCO8_ROWS
/* (x or lanes, G >= 1, pw, acc): `SHIFT` is log2 of the bytes a group of x or lanes takes. */
#define MCU_FCO8_BODY(GROUP, SHIFT)                                                           \
    __asm__ volatile(                                                                         \
        "push {r4-r11, lr}\n\t"                                                               \
        "sub sp, sp, #12\n\t"                                                                 \
        "str r3, [sp, #8]\n\t"                                                                \
        "and r12, r1, #3\n\t"                                                                 \
        "add r1, r0, r1, lsl #" #SHIFT "\n\t"                                                 \
        "str r1, [sp]\n\t"                                                                    \
        "add r12, r0, r12, lsl #" #SHIFT "\n\t"                                               \
        "str r12, [sp, #4]\n\t"                                                               \
        "ldm r3, {r4-r11}\n\t"                                                                \
        "1:\n\t"                                                                              \
        "ldr r1, [sp, #4]\n\t"                                                                \
        "cmp r0, r1\n\t"                                                                      \
        "beq 2f\n\t" GROUP                                                                    \
        "b 1b\n\t"                                                                            \
        "2:\n\t"                                                                              \
        "ldr r1, [sp]\n\t"                                                                    \
        "cmp r0, r1\n\t"                                                                      \
        "beq 4f\n\t"                                                                          \
        "3:\n\t" GROUP GROUP GROUP GROUP                                                      \
        "ldr r1, [sp]\n\t"                                                                    \
        "cmp r0, r1\n\t"                                                                      \
        "bne 3b\n\t"                                                                          \
        "4:\n\t"                                                                              \
        "ldr r3, [sp, #8]\n\t"                                                                \
        "stm r3, {r4-r11}\n\t"                                                                \
        "add sp, sp, #12\n\t"                                                                 \
        "pop {r4-r11, pc}\n\t")

/* The arguments arrive in r0-r3 (AAPCS) and only the asm reads them. */
#define MCU_FCO8_ARG __attribute__((unused))

__attribute__((naked, noinline, unused)) static void
mcu_fco_rows8_x(const int8_t *x MCU_FCO8_ARG, int G MCU_FCO8_ARG, const int8_t *pw MCU_FCO8_ARG,
                uint32_t *acc MCU_FCO8_ARG) {
    MCU_FCO8_BODY(MCU_FCO8_GX, 2);
}

__attribute__((naked, noinline, unused)) static void
mcu_fco_rows8_l(const uint32_t *lanes MCU_FCO8_ARG, int G MCU_FCO8_ARG,
                const int8_t *pw MCU_FCO8_ARG, uint32_t *acc MCU_FCO8_ARG) {
    MCU_FCO8_BODY(MCU_FCO8_GL, 3);
}

/* F(r) for each row r of an 8-row block. */
#define MCU_FCO8_EACH_ROW(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7)

/* G >= 1 whole groups of an 8-row block, from the lanes where `lanes` is not null. */
MCU_INLINE void mcu_fco_rows8(const int8_t *x, const uint32_t *lanes, int G, const int8_t *pw,
                              uint32_t *acc) {
    if (lanes) {
        mcu_fco_rows8_l(lanes, G, pw, acc);
    } else {
        mcu_fco_rows8_x(x, G, pw, acc);
    }
}
#endif

/* One output from its accumulator 256 * (bias + sum w*x) and its table entry
 * e = {start, multiplier, shift, rnd} (rnd: mcu_requant_rnd, precomputed when fast). */
MCU_INLINE int8_t mcu_fco_out(uint32_t acc, const int32_t *e, int fast, int32_t out_zp,
                              int32_t act_min, int32_t act_max) {
    const int32_t v = (int32_t)acc >> 8; /* exact: the low 8 bits are zero */
    const int32_t y = fast ? mcu_requant_fast(v * 2, v, e[1], e[3], e[2], MCU_RQF_AFTER)
                           : mcu_multiply_by_quantized_multiplier(v, e[1], (int)e[2]) + out_zp;
    return (int8_t)mcu_clamp_i32(y, act_min, act_max);
}

/* `rows` (1..MCU_FCO_RB, a literal at each call) rows of one block: accumulate, then
 * requantise. */
MCU_INLINE void mcu_fco_block(const int8_t *MCU_RESTRICT x, const uint32_t *lanes, int depth,
                              const int8_t *pw, int rows, const int32_t *rq, uint32_t cx,
                              int fast, int8_t *out, int32_t out_zp, int32_t act_min,
                              int32_t act_max) {
    (void)lanes; /* read by the DSP build only */
    uint32_t acc[MCU_FCO_RB];
    for (int r = 0; r < rows; ++r) {
        acc[r] = (uint32_t)rq[4 * r] - cx;
    }
    int k0 = 0;
#if MCU_USE_DSP
    if ((rows == 8 || rows == 6 || rows == 4) && depth >= 4) {
        if (rows == 8) {
            mcu_fco_rows8(x, lanes, depth >> 2, pw, acc);
        } else {
            mcu_fco_rows_asm(x, depth >> 2, pw, rows, acc);
        }
        k0 = depth & ~3;
        pw += (size_t)rows * k0;
    }
#endif
    if (k0 < depth) {
        mcu_fco_rows_c(x, k0, depth, pw, rows, acc);
    }
    for (int r = 0; r < rows; ++r) {
        out[r] = mcu_fco_out(acc[r], rq + 4 * r, fast, out_zp, act_min, act_max);
    }
}

#if MCU_USE_DSP
/* The fused-range fast output of a DSP build straight from the raw accumulator:
 * (acc >> 7) is exactly 2 * (acc >> 8) since the low 8 bits are zero, so the doubled
 * mcu_requant_fast operand costs one shift, and the clamp to [-128, 127] is one SSAT. */
MCU_INLINE int8_t mcu_fco_out_sat(uint32_t acc, int32_t mult, int32_t rs, int32_t rnd) {
    return (int8_t)mcu_ssat8(mcu_requant_fast((int32_t)acc >> 7, (int32_t)acc >> 8, mult, rnd,
                                              rs, MCU_RQF_AFTER));
}

/* Every whole MCU_FCO_RB-row block of a row of G >= 1 groups (depth == 4 * G), fast
 * requantisation into the fused range [-128, 127]. */
MCU_INLINE void mcu_fco_blocks_sat(const int8_t *x, const uint32_t *lanes, int G,
                                   const int8_t *pw, const int32_t *rq, uint32_t cx,
                                   int nblocks, int8_t *out) {
    for (int blk = 0; blk < nblocks; ++blk, rq += 4 * MCU_FCO_RB, out += MCU_FCO_RB) {
        /* spelled out row by row: GCC does not unroll these loops at -O2, and their
         * counters cost 12 of the 26 instructions a row would take */
        uint32_t acc[MCU_FCO_RB];
#define MCU_FCO8_START(r) acc[r] = (uint32_t)rq[4 * (r)] - cx;
#define MCU_FCO8_OUT(r) out[r] = mcu_fco_out_sat(acc[r], rq[4 * (r) + 1], rq[4 * (r) + 2], rq[4 * (r) + 3]);
        MCU_FCO8_EACH_ROW(MCU_FCO8_START)
        mcu_fco_rows8(x, lanes, G, pw, acc);
        pw += (size_t)(4 * MCU_FCO_RB) * (size_t)G;
        MCU_FCO8_EACH_ROW(MCU_FCO8_OUT)
#undef MCU_FCO8_START
#undef MCU_FCO8_OUT
    }
}
#endif

/* 256 * 128 * (sum of the odd-index inputs of one row), modulo 2^32. */
MCU_INLINE uint32_t mcu_fco_input_term(const int8_t *x, int depth) {
    int32_t s = 0;
    int k = 1;
#if MCU_USE_DSP
    /* a word at a time: SXTB16 ROR 8 gives the odd bytes, SMLAD by (1, 1) sums them */
    for (; k + 3 <= depth; k += 4) {
        s = __smlad((int16x2_t)mcu_mm_sxtb16_hi(mcu_read_u32(x + k - 1)), (int16x2_t)0x00010001u,
                    s);
    }
#endif
    for (; k < depth; k += 2) {
        s += x[k];
    }
    return (uint32_t)s << 15;
}

/* The P and Q lanes of x's G whole groups, two words a group, into lanes[0 .. 2G). */
MCU_INLINE void mcu_fco_put_lanes(const int8_t *x, int G, uint32_t *lanes) {
    for (int g = 0; g < G; ++g, x += 4, lanes += 2) {
        mcu_fco_lanes(mcu_read_u32(x), &lanes[0], &lanes[1]);
    }
}

/* `lanes`: null, or room for the lanes of one input row (8 bytes a whole group), computed
 * once per row for the DSP build's whole 8-row blocks (the portable build reads the inputs). */
MCU_INLINE void mcu_fco_body(const int8_t *input, int batches, int depth, const int8_t *wpk,
                             const int32_t *rq, int fast, int8_t *output, int units,
                             int32_t out_zp, int32_t act_min, int32_t act_max,
                             uint32_t *lanes) {
    const size_t block_bytes = (size_t)MCU_FCO_RB * (size_t)((depth + 3) & ~3);
#if !MCU_USE_DSP
    lanes = 0;
#endif
    for (int b = 0; b < batches; ++b) {
        const int8_t *x = input + (size_t)b * depth;
        int8_t *out = output + (size_t)b * units;
        const uint32_t cx = mcu_fco_input_term(x, depth);
        const int8_t *pw = wpk;
        int c = 0;
        if (lanes) {
            mcu_fco_put_lanes(x, depth >> 2, lanes);
        }
#if MCU_USE_DSP
        /* fast && fused range: a literal at each call of mcu_fco_body, so this folds away */
        if (fast && act_min == -128 && act_max == 127 && (depth & 3) == 0 && depth > 0) {
            const int nb = units / MCU_FCO_RB;
            mcu_fco_blocks_sat(x, lanes, depth >> 2, pw, rq, cx, nb, out);
            c = nb * MCU_FCO_RB;
            pw += (size_t)nb * block_bytes;
        }
#endif
        for (; c + MCU_FCO_RB <= units; c += MCU_FCO_RB, pw += block_bytes) {
            mcu_fco_block(x, lanes, depth, pw, MCU_FCO_RB, rq + 4 * c, cx, fast, out + c,
                          out_zp, act_min, act_max);
        }
        int8_t *const o = out + c;
        const int32_t *const e = rq + 4 * c;
        /* the row count a literal in each case, so each tail block unrolls */
#define MCU_FCO_TAIL(n)                                                                       \
    case n:                                                                                   \
        mcu_fco_block(x, 0, depth, pw, n, e, cx, fast, o, out_zp, act_min, act_max);          \
        break;
        switch (units - c) {
            MCU_FCO_TAIL(7)
            MCU_FCO_TAIL(6)
            MCU_FCO_TAIL(5)
            MCU_FCO_TAIL(4)
            MCU_FCO_TAIL(3)
            MCU_FCO_TAIL(2)
            MCU_FCO_TAIL(1)
        default:
            break;
        }
#undef MCU_FCO_TAIL
    }
}

/* FULLY_CONNECTED on offset-byte weights. rq: four int32 per unit {start value described
 * above, multiplier, shift (the right shift when fast), rnd (fast only)}. The common fused
 * range [-128, 127] gets its own copy so the clamp is a saturation. */
MCU_INLINE void mcu_fco_modes(const int8_t *input, int batches, int depth, const int8_t *wpk,
                              const int32_t *rq, int fast, int8_t *output, int units,
                              int32_t out_zp, int32_t act_min, int32_t act_max,
                              uint32_t *lanes) {
    if (fast && act_min == -128 && act_max == 127) {
        mcu_fco_body(input, batches, depth, wpk, rq, 1, output, units, out_zp, -128, 127, lanes);
    } else if (fast) {
        mcu_fco_body(input, batches, depth, wpk, rq, 1, output, units, out_zp, act_min, act_max,
                     lanes);
    } else {
        mcu_fco_body(input, batches, depth, wpk, rq, 0, output, units, out_zp, act_min, act_max,
                     lanes);
    }
}

MCU_KERNEL void mcu_fc_offset_s8(const int8_t *input, int batches, int depth, const int8_t *wpk,
                                 const int32_t *rq, int fast, int8_t *output, int units,
                                 int32_t out_zp, int32_t act_min, int32_t act_max) {
    mcu_fco_modes(input, batches, depth, wpk, rq, fast, output, units, out_zp, act_min, act_max,
                  0);
}

/* The same with the lanes of each input row precomputed into `scratch` (8 * (depth / 4)
 * bytes, word aligned: the "lanes" variant, fully_connected.py offset_lanes_bytes), where
 * the plan had that room free: 29 instead of 31 instructions per 32 MACs. */
MCU_KERNEL void mcu_fc_offset_lanes_s8(const int8_t *input, int batches, int depth,
                                       const int8_t *wpk, const int32_t *rq, int fast,
                                       int8_t *output, int units, int32_t out_zp,
                                       int32_t act_min, int32_t act_max, void *scratch) {
    mcu_fco_modes(input, batches, depth, wpk, rq, fast, output, units, out_zp, act_min, act_max,
                  (uint32_t *)scratch);
}
