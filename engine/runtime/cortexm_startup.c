/* Bare-metal start-up for the QEMU MPS2 boards (Cortex-M4 mps2-an386, Cortex-M7 mps2-an500):
 * vector table, reset handler (copy .data, zero .bss, enable the FPU), and SysTick used as
 * a 64-bit tick counter. Linked with -nostartfiles, so it also supplies what newlib's crt0
 * would: the monitor handles for semihosting I/O and the empty _init/_fini hooks.
 *
 * With QEMU's `-icount shift=0` every guest instruction advances virtual time by 1 ns and
 * SysTick, clocked from the processor clock of these boards (25 MHz), ticks every 40 ns:
 * instructions = ticks * 40 (engine/qemu.py checks the factor on a loop of known length).
 */
#include <stdint.h>

#include "cortexm.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern int main(void);
extern void initialise_monitor_handles(void);
extern void exit(int status);

void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYST_RELOAD 0x00FFFFFFu

static volatile uint32_t systick_wraps;

/* Initial stack pointer, then the 15 system exceptions; external interrupts stay unused. */
__attribute__((section(".isr_vector"), used))
void (*const mcu_vector_table[16])(void) = {
    (void (*)(void))(&_estack),
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
};

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; ++dst) *dst = 0u;
    /* Full access to CP10/CP11: the hard-float ABI may use FPU registers anywhere. */
    SCB_CPACR |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");
    initialise_monitor_handles();
    exit(main());
    for (;;) {
    }
}

/* A fault ends the run with a message the Python side recognises, instead of a hang. */
void Default_Handler(void) {
    static const char msg[] = "MCU_FAULT\n";
    mcu_semihost_write0(msg);
    mcu_semihost_exit(1);
}

void SysTick_Handler(void) {
    systick_wraps++;
}

void mcu_ticks_start(void) {
    SYST_CSR = 0u;
    SYST_RVR = SYST_RELOAD;
    SYST_CVR = 0u;
    systick_wraps = 0u;
    SYST_CSR = 7u; /* processor clock, interrupt on wrap, enable */
    /* The counter starts from 0 and loads RELOAD on the first tick without an interrupt:
     * wait for that load so that wraps * 2^24 + (RELOAD - value) counts from here on. */
    while ((SYST_CVR & SYST_RELOAD) == 0u) {
    }
}

uint64_t mcu_ticks_now(void) {
    uint32_t before, value, after;
    do {
        before = systick_wraps;
        value = SYST_CVR;
        after = systick_wraps;
    } while (before != after);
    return (uint64_t)before * (SYST_RELOAD + 1u) + (SYST_RELOAD - (value & SYST_RELOAD));
}

/* SYS_WRITE0 (0x04): a NUL-terminated string to the debug console, no libc involved. */
void mcu_semihost_write0(const char *s) {
    register uint32_t r0 __asm("r0") = 0x04u;
    register const char *r1 __asm("r1") = s;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
}

/* SYS_EXIT (0x18) with ADP_Stopped_ApplicationExit or ADP_Stopped_InternalError. */
void mcu_semihost_exit(int status) {
    register uint32_t r0 __asm("r0") = 0x18u;
    register uint32_t r1 __asm("r1") = status == 0 ? 0x20026u : 0x20024u;
    __asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {
    }
}

void _init(void) {}
void _fini(void) {}
