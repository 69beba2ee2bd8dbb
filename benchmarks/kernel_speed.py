"""Cortex-M7 instruction counts of our generated C against TFLM + CMSIS-NN, per shared model.

For each model: convert, run one seeded random input under QEMU (mps2-an500, -icount shift=0)
in the portable (-DMCU_NO_DSP) and DSP builds, check both outputs equal TFLM's bytes, and
print the counts next to ../shared/baselines/tflm_cortex_m7.json's CMSIS-NN figure and the
ratio DSP / CMSIS-NN (the goal is <= 0.5). A kernel developer's tool, not a test.

    .venv/bin/python -m benchmarks.kernel_speed [model ...]
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from engine import qemu
from engine.tflm import TflmModel, random_inputs
from tflite_converter.codegen.generate import convert_model

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
MODELS = ("mlperf_tiny_vww_96_int8", "tflm_person_detect", "mlperf_tiny_kws_ref_model_int8",
          "mlperf_tiny_ic_resnet_quant", "tinymaix_cifar10_q", "tinymaix_mnist_resnet_q",
          "tinyengine_mcunet_vww", "mlperf_tiny_ad01_int8")


def measure(model: str, work: Path) -> tuple[int, int, bool]:
    """(portable instructions, DSP instructions, both outputs identical to TFLM's)."""
    path = SHARED / "models" / f"{model}.tflite"
    convert_model(path, work / model, name="net")
    tflm = TflmModel(path)
    details = [tflm.input_details(i) for i in range(tflm.num_inputs)]
    sample = random_inputs(details, np.random.default_rng(7))
    want = tflm.run(sample)
    counts, same = [], True
    for dsp in (False, True):
        r = qemu.run_on_qemu(work / model, "net", [sample], dsp=dsp)
        counts.append(r.instructions_per_invoke[0])
        same &= all(np.array_equal(np.asarray(g).view(np.uint8).reshape(-1),
                                   np.asarray(w).view(np.uint8).reshape(-1))
                    for g, w in zip(r.outputs[0], want))
    return counts[0], counts[1], same


def main(argv: Sequence[str]) -> int:
    base = json.loads((SHARED / "baselines" / "tflm_cortex_m7.json").read_text())["models"]
    print(f"{'model':34s} {'portable':>11s} {'DSP':>11s} {'CMSIS-NN':>11s} {'DSP/CMSIS':>9s} bytes")
    with tempfile.TemporaryDirectory(prefix="kernel_speed_") as tmp:
        for model in argv or MODELS:
            port, dsp, same = measure(model, Path(tmp))
            ref = base[model]["instructions_cmsis_nn"]
            print(f"{model:34s} {port:11,d} {dsp:11,d} {ref:11,d} {dsp / ref:9.3f} "
                  f"{'same' if same else 'DIFFERENT'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
