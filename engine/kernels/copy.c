/* Byte copy between two arena tensors: RESHAPE / SQUEEZE / EXPAND_DIMS when the memory plan
 * did not alias output and input (normally it does, and nothing is emitted). memmove, not
 * memcpy, because the two ranges may overlap when the planner packs them closely. */
#include "mcu_common.h"

MCU_KERNEL void mcu_copy_bytes(const void *src, void *dst, size_t bytes) {
    if (src != dst) {
        memmove(dst, src, bytes);
    }
}
