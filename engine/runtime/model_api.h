/* The generated model's public API, named by -DMCU_MODEL=<name>, as the harnesses (host runner,
 * Cortex-M main) call it without including the model's own header. */
#ifndef MCU_MODEL_API_H_
#define MCU_MODEL_API_H_

#include <stddef.h>

#ifndef MCU_MODEL
#error "compile with -DMCU_MODEL=<model name>"
#endif

#define MCU_CAT_(a, b) a##b
#define MCU_CAT(a, b) MCU_CAT_(a, b)
#define MODEL_FN(suffix) MCU_CAT(MCU_MODEL, suffix)

void *MODEL_FN(_input)(int index);
size_t MODEL_FN(_input_bytes)(int index);
const void *MODEL_FN(_output)(int index);
size_t MODEL_FN(_output_bytes)(int index);
int MODEL_FN(_invoke)(void);

#endif /* MCU_MODEL_API_H_ */
