/* int4 weights as TFLite packs them: two values a byte, element 2i in the low nibble of byte
 * i and element 2i + 1 in its high nibble, each two's complement in [-8, 7] (TFLM's
 * tensor_utils UnpackDenseInt4IntoInt8 reads them so).
 *
 * The generator stores each kernel's own int8 weight layout packed two a byte: in this order
 * for DEPTHWISE_CONV_2D (tflite_converter/int4.py pack), in the word layout below for CONV_2D
 * and FULLY_CONNECTED (pack_words). A kernel unpacks a run of weights (a block of rows, a
 * channel, a whole filter) into the int8 form its int8 core reads, or a group on the fly, and
 * the arithmetic after that is the int8 kernel's. Every run starts at an even element, so at
 * a whole byte (the word layout: at a group of eight, a whole word).
 */
#ifndef MCU_INT4_H
#define MCU_INT4_H

#include "mcu_common.h"

/* Four values from two packed bytes as the int8 lanes of one word (lane 0 = the low nibble
 * of p[0]): each nibble moved to its own byte, then all four sign-extended at once. For a
 * nibble v in [0, 15], (v ^ 8) + 0x78 is v + 0x80 for v < 8 and v + 0x70 for v >= 8, at most
 * 0x87 (no carry into the next lane); ^ 0x80 then gives v, or v + 0xF0 = v - 16 mod 256:
 * the int4 value in two's complement. */
MCU_INLINE uint32_t mcu_s4_word(const uint8_t *p) {
    const uint32_t b = (uint32_t)p[0] | ((uint32_t)p[1] << 8);
    const uint32_t x = (b & 0xFu) | ((b & 0xF0u) << 4) | ((b & 0xF00u) << 8) |
                       ((b & 0xF000u) << 12);
    return (((x ^ 0x08080808u) + 0x78787878u) ^ 0x80808080u);
}

/* n values (n a multiple of 4) from the packed bytes at src into dst as int8. */
MCU_INLINE void mcu_s4_unpack(const uint8_t *MCU_RESTRICT src, int n, int8_t *MCU_RESTRICT dst) {
    for (int i = 0; i < n; i += 4, src += 2) {
        mcu_write_u32(dst + i, mcu_s4_word(src));
    }
}

/* ---------------------------------------------------------------------------------------
 * The word layout (CONV_2D's and FULLY_CONNECTED's weights, int4.py pack_words): each group
 * of eight values v0..v7 is one 32-bit word whose byte j holds v_j in its low nibble and
 * v_{4+j} in its high nibble, so one AND and one shifted AND split a word into the int8 lanes
 * of v0..v3 and of v4..v7 (still two values a byte; a last group of four fills the low
 * nibbles only).
 */

/* Four nibbles in the low halves of the bytes of v (high halves zero), sign-extended in
 * place: (v ^ 8) - 8 in every byte lane (SSUB8 keeps lanes apart; the portable form is the
 * carry-free one of mcu_s4_word). */
MCU_INLINE uint32_t mcu_s4_sext4(uint32_t v) {
#if MCU_USE_DSP
    return (uint32_t)__ssub8((int8x4_t)(v ^ 0x08080808u), (int8x4_t)0x08080808u);
#else
    return ((v ^ 0x08080808u) + 0x78787878u) ^ 0x80808080u;
#endif
}

/* n values (a multiple of 4) of the word layout from src (word aligned, the group of n) into
 * dst as int8 (dst word aligned): two words of int8 per word read. */
MCU_INLINE void mcu_s4_unpack_words(const uint8_t *MCU_RESTRICT src, int n,
                                    int8_t *MCU_RESTRICT dst) {
    int i = 0;
    for (; i + 8 <= n; i += 8, src += 4) {
        const uint32_t w = mcu_read_u32(src);
        mcu_write_u32(dst + i, mcu_s4_sext4(w & 0x0F0F0F0Fu));
        mcu_write_u32(dst + i + 4, mcu_s4_sext4((w >> 4) & 0x0F0F0F0Fu));
    }
    if (i < n) {
        mcu_write_u32(dst + i, mcu_s4_sext4(mcu_read_u32(src) & 0x0F0F0F0Fu));
    }
}

#endif /* MCU_INT4_H */
