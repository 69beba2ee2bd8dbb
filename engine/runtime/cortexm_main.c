/* Cortex-M harness for one generated model under QEMU, compiled with -DMCU_MODEL=NAME.
 *
 * Reads samples from the host file `mcu_inputs.bin` over semihosting (each sample: the bytes
 * of every input in order), invokes the model on each, writes the outputs to
 * `mcu_outputs.bin`, and prints one line per invoke with the SysTick ticks it took:
 *   MCU_INVOKE <sample> <status> <ticks>
 * then `MCU_DONE <samples>`. Reading inputs at run time keeps them out of the image, so the
 * image's sizes are the model's plus this harness and newlib's stdio.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cortexm.h"

#include "model_api.h"

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
        for (i = 0; MODEL_FN(_output)(i) != NULL; ++i) {
            fwrite(MODEL_FN(_output)(i), 1, MODEL_FN(_output_bytes)(i), fout);
        }
    }
    fclose(fin);
    fclose(fout);
    printf("MCU_DONE %d\n", sample);
    return 0;
}
