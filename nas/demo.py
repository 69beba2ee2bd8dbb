"""The main job on its embedded default, until the two-stage search lands (`make demo`).

    bazel run //nas:demo -- [--mcu=stm32f746] [--output_dir=build/demo]
    python -m nas.demo

The whole pipeline on data that ships inside a registry package (scikit-learn's handwritten
digits, no download):

1. pick a network of the MCUNet search space for the microcontroller: sample candidates,
   ask the converter's own memory planner (nas.memory_oracle, the SRAM figure the deployed C
   will need) and keep the one with the most MACs that fits the SRAM and Flash budget -- a
   random-sampling stand-in for TinyNAS, which the search issue replaces;
2. train it in tf_keras, quantize it to a full-int8 .tflite (post-training quantization);
3. convert it to C, run that C on the host and on the emulated Cortex-M (QEMU) next to
   TFLite Micro, and report accuracy, SRAM, Flash, instructions and output identity.

Everything measured is printed and written to OUTPUT_DIR/summary.json.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from absl import app, flags, logging

from engine.cli_paths import resolve_user_path
from mcunet_tf.arch import SearchSpace
from nas.demo_steps import pick_architecture, run_side_by_side, train_and_quantize
from nas.mcu import get_profile
from nas.memory_oracle import MemoryOracle

FLAGS = flags.FLAGS
flags.DEFINE_string("mcu", "stm32f746", "Target microcontroller profile (nas.mcu.PROFILES).")
flags.DEFINE_string("output_dir", "build/demo", "Where the .tflite, the C folder and summary.json go.")
flags.DEFINE_integer("resolution", 32, "Input resolution of the search space.")
flags.DEFINE_float("width_mult", 0.35, "Width multiplier of the search space.")
flags.DEFINE_integer("candidates", 300, "Architectures sampled and checked against the budget.")
flags.DEFINE_integer("max_macs", 6_000_000, "Upper bound on MACs, to keep training short on a CPU.")
flags.DEFINE_integer("epochs", 15, "Training epochs on the digits.")
flags.DEFINE_integer("seed", 0, "Seed of sampling, training and data split.")
flags.DEFINE_bool("qemu", True, "Also run the C on the emulated Cortex-M (needs qemu-system-arm).")
flags.DEFINE_integer("qemu_images", 10, "Test images run under QEMU.")


def main(argv: Sequence[str]) -> int:
    del argv
    started = time.time()
    out = Path(resolve_user_path(FLAGS.output_dir))
    out.mkdir(parents=True, exist_ok=True)
    mcu = get_profile(FLAGS.mcu)
    space = SearchSpace(width_mult=FLAGS.width_mult, resolution=FLAGS.resolution, num_classes=10)
    cfg, choice = pick_architecture(space, mcu, MemoryOracle(), FLAGS.candidates, FLAGS.max_macs,
                                    np.random.default_rng(FLAGS.seed))
    logging.info("picked %s", choice)
    (out / "arch.json").write_text(cfg.to_json(indent=1))
    flatbuffer, accuracy, test = train_and_quantize(cfg, FLAGS.epochs, FLAGS.seed)
    (out / "demo.tflite").write_bytes(flatbuffer)
    measured = run_side_by_side(flatbuffer, out, test, mcu, FLAGS.qemu, FLAGS.qemu_images)
    summary = {"mcu": mcu.get_config(), "architecture": choice, **accuracy, **measured,
               "seconds": round(time.time() - started, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))
    print(f"wrote {out}/summary.json, {out}/demo.tflite, {out}/c/")
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
