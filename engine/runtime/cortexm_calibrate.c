/* Checks the instructions-per-SysTick-tick factor: times loops of a known number of
 * instructions (2 per iteration: SUBS + BNE) and prints `MCU_CALIBRATE <iterations> <ticks>`
 * for each, so engine/qemu.py can fit instructions = ticks * factor. */
#include <stdint.h>
#include <stdio.h>

#include "cortexm.h"

static void spin(uint32_t iterations) {
    __asm volatile(
        "1:\n\t"
        "subs %0, %0, #1\n\t"
        "bne 1b\n\t"
        : "+r"(iterations)
        :
        : "cc");
}

int main(void) {
    static const uint32_t sizes[] = {100000u, 1000000u, 20000000u};
    unsigned k;
    mcu_ticks_start();
    for (k = 0; k < sizeof sizes / sizeof sizes[0]; ++k) {
        uint64_t t0 = mcu_ticks_now();
        spin(sizes[k]);
        uint64_t t1 = mcu_ticks_now();
        printf("MCU_CALIBRATE %lu %llu\n", (unsigned long)sizes[k], (unsigned long long)(t1 - t0));
    }
    return 0;
}
