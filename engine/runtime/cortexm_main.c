/* Cortex-M harness for one generated model under QEMU, compiled with -DMCU_MODEL=NAME.
 *
 * Reads samples from the host file `mcu_inputs.bin` over semihosting (each sample: the bytes
 * of every input in order), invokes the model on each, writes the outputs to
 * `mcu_outputs.bin`, and prints one line per invoke with the SysTick ticks it took:
 *   MCU_INVOKE <sample> <status> <ticks>
 * then `MCU_DONE <samples>`. Reading inputs at run time keeps them out of the image, so the
 * image's sizes are the model's plus this harness and newlib's stdio.
 *
 * Built with -DMCU_PROFILE_OPS (engine.qemu, profile_ops=True), the generated invoke calls
 * mcu_profile_op_begin/end around each op, and after each invoke one line per op follows:
 *   MCU_OP <sample> <op index> <ticks>
 * The two SysTick reads per op add a few instructions each, inside and outside the ops; the
 * latency model's calibration only needs per-op counts to within that.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cortexm.h"

#include "model_api.h"

#ifdef MCU_PROFILE_OPS
#define MCU_PROFILE_MAX_OPS 1024
void mcu_profile_op_begin(int op);
void mcu_profile_op_end(int op);

static uint64_t profile_start;
static uint32_t profile_ticks[MCU_PROFILE_MAX_OPS];
static uint8_t profile_seen[MCU_PROFILE_MAX_OPS];

void mcu_profile_op_begin(int op) {
    (void)op;
    profile_start = mcu_ticks_now();
}

void mcu_profile_op_end(int op) {
    uint64_t now = mcu_ticks_now();
    if (op >= 0 && op < MCU_PROFILE_MAX_OPS) {
        profile_ticks[op] += (uint32_t)(now - profile_start);
        profile_seen[op] = 1u;
    }
}

/* Print and reset the per-op ticks of the invoke just run. */
static void profile_report(int sample) {
    int op;
    for (op = 0; op < MCU_PROFILE_MAX_OPS; ++op) {
        if (profile_seen[op]) {
            printf("MCU_OP %d %d %lu\n", sample, op, (unsigned long)profile_ticks[op]);
        }
        profile_ticks[op] = 0u;
        profile_seen[op] = 0u;
    }
}
#endif

int main(void) {
    FILE *fin = fopen("mcu_inputs.bin", "rb");
    FILE *fout = fopen("mcu_outputs.bin", "wb");
    int sample = 0;
    if (fin == NULL || fout == NULL) {
        printf("MCU_ERROR cannot open mcu_inputs.bin / mcu_outputs.bin\n");
        return 1;
    }
    mcu_ticks_start();
    for (;; ++sample) {
        int i, status;
        uint64_t t0, t1;
        for (i = 0; MODEL_FN(_input)(i) != NULL; ++i) {
            size_t want = MODEL_FN(_input_bytes)(i);
            if (fread(MODEL_FN(_input)(i), 1, want, fin) != want) break;
        }
        if (MODEL_FN(_input)(i) != NULL) break; /* end of the samples */
        t0 = mcu_ticks_now();
        status = MODEL_FN(_invoke)();
        t1 = mcu_ticks_now();
        printf("MCU_INVOKE %d %d %llu\n", sample, status, (unsigned long long)(t1 - t0));
#ifdef MCU_PROFILE_OPS
        profile_report(sample);
#endif
        for (i = 0; MODEL_FN(_output)(i) != NULL; ++i) {
            fwrite(MODEL_FN(_output)(i), 1, MODEL_FN(_output_bytes)(i), fout);
        }
    }
    fclose(fin);
    fclose(fout);
    printf("MCU_DONE %d\n", sample);
    return 0;
}
