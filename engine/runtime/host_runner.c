/* Host harness for one generated model, compiled next to its NAME.c with -DMCU_MODEL=NAME.
 *
 * As a shared library (loaded with ctypes by engine/host.py) it adds a timing entry point
 * that runs NAME_invoke N times inside C, so Python overhead does not enter latency ratios.
 * With -DMCU_HOST_MAIN it is a program (used for sanitizer builds, which cannot be loaded
 * into a Python process): `runner INPUTS OUTPUTS` reads samples from INPUTS (each sample the
 * bytes of every input in order, back to back), invokes the model on each and writes the
 * bytes of every output, in order, to OUTPUTS.
 */
#define _POSIX_C_SOURCE 199309L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model_api.h"

/* Nanoseconds taken by `n` consecutive invokes (on whatever the arena holds), or -1 if an
 * invoke failed. */
long long mcu_host_time_invokes(int n) {
    struct timespec t0, t1;
    int i;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < n; ++i) {
        if (MODEL_FN(_invoke)() != 0) {
            return -1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (long long)(t1.tv_nsec - t0.tv_nsec);
}

#ifdef MCU_HOST_MAIN
static int count(void *(*in)(int), const void *(*out)(int), int want_inputs) {
    int n = 0;
    if (want_inputs) {
        while (in(n) != NULL) ++n;
    } else {
        while (out(n) != NULL) ++n;
    }
    return n;
}

int main(int argc, char **argv) {
    FILE *fin, *fout;
    int n_in, n_out, i, status = 0;
    if (argc != 3) {
        fprintf(stderr, "usage: %s INPUTS OUTPUTS\n", argv[0]);
        return 2;
    }
    n_in = count(MODEL_FN(_input), MODEL_FN(_output), 1);
    n_out = count(MODEL_FN(_input), MODEL_FN(_output), 0);
    fin = fopen(argv[1], "rb");
    fout = fopen(argv[2], "wb");
    if (fin == NULL || fout == NULL) {
        fprintf(stderr, "cannot open %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    for (;;) {
        int got_all = 1;
        for (i = 0; i < n_in; ++i) {
            size_t want = MODEL_FN(_input_bytes)(i);
            if (fread(MODEL_FN(_input)(i), 1, want, fin) != want) {
                got_all = 0;
                break;
            }
        }
        if (!got_all) {
            break; /* end of samples (a partial sample is reported by the Python side) */
        }
        if (MODEL_FN(_invoke)() != 0) {
            status = 1;
            break;
        }
        for (i = 0; i < n_out; ++i) {
            fwrite(MODEL_FN(_output)(i), 1, MODEL_FN(_output_bytes)(i), fout);
        }
    }
    fclose(fin);
    if (fclose(fout) != 0) status = 2;
    return status;
}
#endif
