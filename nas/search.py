"""TinyNAS: from a microcontroller's budget to a trained int8 network and verified C.

    bazel run //nas:search -- [--mcu=stm32f746] [--dataset=digits] [--data_dir=DIR]
        [--output_dir=build/search] [--sram_kb=N --flash_kb=N --latency_ms=N]
        [--budget=smoke|default|full] [--baseline] [--resume]
    mcunet-search ...        (installed)

With no --dataset it runs on the embedded default, scikit-learn's handwritten digits (no
download). Stages (nas/search_run.py): (1) search-space optimisation over widths x
resolutions with the converter's own planner as the SRAM oracle; (2) supernet training,
evolution with BN-recalibrated supernet accuracy under SRAM / Flash / latency; the chosen
network fine-tuned, quantized (QAT with TF-MOT, or PTQ), converted to C, checked byte for
byte against TFLite Micro, run on the emulated Cortex-M; report.json / report.md.

Limits: the part's SRAM and Flash (nas/mcu.py) less a reserve for the rest of the firmware
(16 KiB SRAM for the stack and the C runtime, 64 KiB Flash for code: nas.mcu.Reserve);
--sram_kb / --flash_kb give the network's limits directly (no reserve taken off).

Bad input (unknown MCU, impossible limits, missing / empty / one-class data) is explained in
one line, exit status 2. A stopped run continues with --resume and the same flags.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from absl import app, flags, logging

from engine.cli_paths import resolve_user_path
from nas.budget import BUDGETS, get_budget
from nas.constraints import Limits
from nas.mcu import DEFAULT_RESERVE, Reserve, get_profile
from nas.search_data import check_data_location
from nas.settings import SearchInputError, SearchSettings

FLAGS = flags.FLAGS
flags.DEFINE_string("mcu", "stm32f746", "Target microcontroller (nas/mcu.py: stm32f412, stm32f746, "
                    "stm32f765, stm32h743).")
flags.DEFINE_string("dataset", "digits", "digits (embedded, no download) | mnist | fashion_mnist | "
                    "cifar10 | image_folder")
flags.DEFINE_string("data_dir", None, "Folder (or tarball) of the data set; not needed for digits.")
flags.DEFINE_string("output_dir", "build/search", "Where the run's files go.")
flags.DEFINE_float("sram_kb", None, "Peak SRAM limit of the network in KiB (overrides the MCU's).")
flags.DEFINE_float("flash_kb", None, "Flash limit of the network in KiB (overrides the MCU's).")
flags.DEFINE_float("latency_ms", None, "Latency limit in ms at the MCU's clock (estimated from the "
                   "QEMU-calibrated model of our kernels).")
flags.DEFINE_string("budget", "default", f"How much work: {' | '.join(BUDGETS)}.")
flags.DEFINE_integer("seed", 0, "Seed of everything random.")
flags.DEFINE_string("space", "search", "search (stage 1 chooses) | random (a random space with "
                    "fitting networks, the control) | W,R (e.g. 0.5,64: skip the choice).")
flags.DEFINE_bool("baseline", False, "Also train the compound-scaled MobileNetV2 that fits the "
                  "same limits, with the same training budget, and report it beside.")
flags.DEFINE_enum("quantization", "qat", ["qat", "ptq"], "QAT with TF-MOT, or post-training.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy of supernet training (multi_worker reads TF_CONFIG).")
flags.DEFINE_bool("patch", False, "MCUNetV2's joint search: candidates whose layer-by-layer arena is over "
                  "the SRAM limit are profiled with patch-based inference of their first stage (the fewest "
                  "extra MACs that fit; a few seconds each), and the result is deployed with --patch=auto.")
flags.DEFINE_bool("qemu", True, "Run the C on the emulated Cortex-M (needs arm-none-eabi-gcc, QEMU).")
flags.DEFINE_bool("resume", False, "Continue the run in --output_dir (same flags).")
flags.DEFINE_bool("progress", True, "Progress bars.")
# budget overrides
flags.DEFINE_integer("samples_per_space", None, "Stage 1: networks sampled per space.")
flags.DEFINE_integer("population", None, "Stage 2: population size.")
flags.DEFINE_integer("generations", None, "Stage 2: generations.")
flags.DEFINE_integer("supernet_steps", None, "Supernet steps (split half largest, half elastic).")
flags.DEFINE_integer("sram_reserve_kb", None, "SRAM kept for the firmware when the MCU's limits apply.")
flags.DEFINE_integer("flash_reserve_kb", None, "Flash kept for code when the MCU's limits apply.")


def settings_from_flags() -> SearchSettings:
    try:
        mcu = get_profile(FLAGS.mcu)
        budget = get_budget(FLAGS.budget)
    except ValueError as e:
        raise SearchInputError(str(e)) from None
    steps = FLAGS.supernet_steps
    budget = budget.replace(samples_per_space=FLAGS.samples_per_space, population=FLAGS.population,
                            generations=FLAGS.generations,
                            largest_steps=None if steps is None else steps // 2,
                            elastic_steps=None if steps is None else steps - steps // 2)
    for name in ("sram_kb", "flash_kb", "latency_ms"):
        value = getattr(FLAGS, name)
        if value is not None and value <= 0:
            raise SearchInputError(f"--{name} must be positive, got {value:g}")
    reserve = Reserve(
        DEFAULT_RESERVE.sram_bytes if FLAGS.sram_reserve_kb is None else FLAGS.sram_reserve_kb * 1024,
        DEFAULT_RESERVE.flash_bytes if FLAGS.flash_reserve_kb is None else FLAGS.flash_reserve_kb * 1024)
    limits = Limits.for_mcu(mcu, reserve, FLAGS.sram_kb, FLAGS.flash_kb, FLAGS.latency_ms)
    if limits.sram_bytes <= 0 or limits.flash_bytes <= 0:
        raise SearchInputError(f"the reserve ({reserve.sram_bytes // 1024} KiB SRAM, "
                               f"{reserve.flash_bytes // 1024} KiB Flash) leaves nothing of {mcu.name}")
    data_dir = str(resolve_user_path(FLAGS.data_dir)) if FLAGS.data_dir else None
    check_data_location(FLAGS.dataset, data_dir)
    if FLAGS.space not in ("search", "random"):
        from nas.space_search import parse_space

        try:
            parse_space(FLAGS.space)
        except ValueError as e:
            raise SearchInputError(str(e)) from None
    return SearchSettings(mcu=mcu, limits=limits, reserve=reserve, budget=budget,
                          dataset=FLAGS.dataset, data_dir=data_dir, seed=FLAGS.seed,
                          space=FLAGS.space, baseline=FLAGS.baseline,
                          quantization=FLAGS.quantization, strategy=FLAGS.strategy, qemu=FLAGS.qemu,
                          patch=FLAGS.patch)


def main(argv: Sequence[str]) -> Optional[int]:
    if len(argv) > 1:
        print(f"search: error: unexpected arguments {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    try:
        settings = settings_from_flags()
        from nas.search_run import SearchRun

        out = Path(resolve_user_path(FLAGS.output_dir))
        run = SearchRun(settings, out, resume=FLAGS.resume, progress=FLAGS.progress)
        report = run.run()
    except SearchInputError as e:
        print(f"search: error: {e}", file=sys.stderr)
        return 2
    logging.info("done in %.0f s", report["seconds"])
    print((out / "report.md").read_text())
    print(f"wrote {out}/report.md, report.json, arch.json, model_int8.tflite, c/")
    return 0


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parser, with a bad flag explained in one line and exit status 2 like any other
    bad input (absl's own handler prints a usage hint and exits with 1)."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        print(f"search: error: {e}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
