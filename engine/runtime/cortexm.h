/* Services of the Cortex-M start-up (cortexm_startup.c) for the harnesses. */
#ifndef MCU_CORTEXM_H
#define MCU_CORTEXM_H

#include <stdint.h>

/* Start SysTick as a free-running counter of processor clock ticks. */
void mcu_ticks_start(void);
/* Ticks since mcu_ticks_start (wraps of the 24-bit counter included). */
uint64_t mcu_ticks_now(void);
void mcu_semihost_write0(const char *s);
void mcu_semihost_exit(int status);

#endif
