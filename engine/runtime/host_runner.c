/* Host harness for one generated model, compiled next to its NAME.c with -DMCU_MODEL=NAME.
 *
 * As a shared library (loaded with ctypes by engine/host.py) it adds a timing entry point
 * that runs NAME_invoke N times inside C, so Python overhead does not enter latency ratios.
 * With -DMCU_HOST_MAIN it is a program (used for sanitizer builds, which cannot be loaded
 * into a Python process): `runner INPUTS OUTPUTS` reads samples from INPUTS (each sample the
 * bytes of every input in order, back to back), invokes the model on each and writes the
 * bytes of every output, in order, to OUTPUTS.
 * With -DMCU_DEBUG_LAYERS (and -DMCU_PROFILE_OPS, which makes NAME_invoke call
 * mcu_profile_op_end(op) after each op's statements; the generated code is unchanged) it
 * copies the whole arena after every op into a caller's buffer: `convert --debug_layers`
 * (tflite_converter/debug_layers.py) reads each op's outputs from those snapshots.
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

#ifdef MCU_DEBUG_LAYERS
#ifndef MCU_PROFILE_OPS
#error "MCU_DEBUG_LAYERS needs MCU_PROFILE_OPS (the generated invoke's per-op hook)"
#endif
static const int8_t *mcu_debug_arena;
static size_t mcu_debug_arena_bytes;
static int8_t *mcu_debug_snapshots;
static int *mcu_debug_ops;
static int mcu_debug_max_ops, mcu_debug_count;

/* From the next invoke on, after the k-th op (k < max_ops) ops[k] = its op index and
 * snapshots[k * arena_bytes ...] = the arena's bytes. */
void mcu_debug_layers_start(const void *arena, size_t arena_bytes, void *snapshots, int *ops,
                            int max_ops) {
    mcu_debug_arena = (const int8_t *)arena;
    mcu_debug_arena_bytes = arena_bytes;
    mcu_debug_snapshots = (int8_t *)snapshots;
    mcu_debug_ops = ops;
    mcu_debug_max_ops = max_ops;
    mcu_debug_count = 0;
}

/* How many ops ran since mcu_debug_layers_start (also those past max_ops). */
int mcu_debug_layers_count(void) { return mcu_debug_count; }

void mcu_profile_op_begin(int op) { (void)op; }

void mcu_profile_op_end(int op) {
    if (mcu_debug_count < mcu_debug_max_ops && mcu_debug_snapshots != NULL) {
        memcpy(mcu_debug_snapshots + (size_t)mcu_debug_count * mcu_debug_arena_bytes, mcu_debug_arena,
               mcu_debug_arena_bytes);
        mcu_debug_ops[mcu_debug_count] = op;
    }
    ++mcu_debug_count;
}
#endif

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
