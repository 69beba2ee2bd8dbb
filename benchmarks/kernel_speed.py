"""Cortex-M7 instruction counts of our generated C against TFLM + CMSIS-NN, per shared model.

For each model: convert, run one seeded random input under QEMU (mps2-an500, -icount shift=0)
in the portable (-DMCU_NO_DSP) and DSP builds, check both outputs equal TFLM's bytes, and
print the counts next to ../shared/baselines/tflm_cortex_m7.json's CMSIS-NN figure and the
ratio DSP / CMSIS-NN (the goal is <= 0.5). A kernel developer's tool, not a test.

A second table turns the DSP counts into milliseconds: instructions x CPI / clock, with the
Cortex-M7 CPI of nas/latency.py CPI_ASSUMPTIONS (printed with the table: it assumes caches on
or code and arena in tightly coupled memory, so Flash wait states hidden; QEMU counts
instructions, not cycles, so this is an estimate, not a measurement), at the clock of the
boards the commercial engines published MLPerf Tiny closed-division figures on: STM32F746 at
216 MHz (Plumerai) and STM32H7A3 at 280 MHz (X-CUBE-AI 9.0). Their figures are printed beside
ours, marked as published, not measured here.

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
from nas.latency import CPI_ASSUMPTIONS
from tflite_converter.codegen.generate import convert_model

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
MODELS = ("mlperf_tiny_vww_96_int8", "tflm_person_detect", "mlperf_tiny_kws_ref_model_int8",
          "mlperf_tiny_ic_resnet_quant", "tinymaix_cifar10_q", "tinymaix_mnist_resnet_q",
          "tinyengine_mcunet_vww", "mlperf_tiny_ad01_int8", "mlperf_tiny_ad_toycar_fullint_floatio",
          "tflm_micro_speech_quantized", "tflm_hello_world_int8")


# MLPerf Tiny closed division, published latency in ms (not measured here): the benchmark's
# task -> (our model of that task, Plumerai on STM32F746 @216 MHz, X-CUBE-AI 9.0 on STM32H7A3
# @280 MHz).
PUBLISHED_MS: dict[str, tuple[str, float, float]] = {
    "VWW": ("mlperf_tiny_vww_96_int8", 34.1, 23.8),
    "IC": ("mlperf_tiny_ic_resnet_quant", 62.9, 40.8),
    "KWS": ("mlperf_tiny_kws_ref_model_int8", 17.7, 11.3),
    "AD": ("mlperf_tiny_ad01_int8", 1.71, 1.23),
}
F746_HZ, H7A3_HZ = 216_000_000, 280_000_000


def estimated_ms(instructions: int, clock_hz: int, core: str = "cortex-m7") -> float:
    """Milliseconds at `clock_hz` under the core's stated CPI assumption."""
    return instructions * CPI_ASSUMPTIONS[core][0] / clock_hz * 1e3


def published_table(dsp_counts: dict[str, int]) -> list[str]:
    """Lines of the estimated-ms table for the MLPerf Tiny tasks whose model was measured."""
    cpi, why = CPI_ASSUMPTIONS["cortex-m7"]
    lines = [f"estimated ms = DSP instructions x CPI {cpi} / clock ({why})",
             f"{'task':5s} {'ours F746':>10s} {'Plumerai*':>10s} {'ours H7A3':>10s} {'X-CUBE-AI*':>10s}"]
    for task, (model, plumerai, xcube) in PUBLISHED_MS.items():
        if model in dsp_counts:
            n = dsp_counts[model]
            lines.append(f"{task:5s} {estimated_ms(n, F746_HZ):10.2f} {plumerai:10.2f} "
                         f"{estimated_ms(n, H7A3_HZ):10.2f} {xcube:10.2f}")
    lines.append("* published (MLPerf Tiny closed division), not measured here; F746 = STM32F746 "
                 "@216 MHz, H7A3 = STM32H7A3 @280 MHz")
    return lines


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
    dsp_counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="kernel_speed_") as tmp:
        for model in argv or MODELS:
            port, dsp, same = measure(model, Path(tmp))
            dsp_counts[model] = dsp
            ref = base[model]["instructions_cmsis_nn"]
            print(f"{model:34s} {port:11,d} {dsp:11,d} {ref:11,d} {dsp / ref:9.3f} "
                  f"{'same' if same else 'DIFFERENT'}", flush=True)
    print()
    print("\n".join(published_table(dsp_counts)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
