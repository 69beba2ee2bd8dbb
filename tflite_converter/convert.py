"""`convert`: .tflite -> memory plan and interpreter-free C.

    bazel run //tflite_converter:convert -- --model=M.tflite --output_dir=DIR [--name=model] [--plan_only]
        [--debug_layers [--debug_input=X.npy] [--debug_seed=0]] [--tflm_plan=OUT.tflite]
        [--patch=off|auto|SPLIT:N [--patch_max_macs=0.3] [--patch_sram_limit=BYTES]]
    mcunet-convert --model=M.tflite --output_dir=DIR ...

Pipeline (`tflite_converter.pipeline.compile_model`, the one `convert_model` runs too): read
the flatbuffer, legalize, schedule, plan memory; write DIR/plan.json and print the per-layer
table of that plan; without --plan_only also emit the C folder laid out by the same plan. A
model that cannot be converted is refused with one line per problem on stderr and exit status 2 (no traceback).
With --debug_layers the C is then built for the host with a per-op hook and run beside TFLM
on one input (`tflite_converter.debug_layers`): one line per op with the largest difference and
the count of differing elements, and the first op that differs; exit status 1 if any does.
With --tflm_plan the model is first written to OUT.tflite with our placement of the tensors
TFLM allocates as its "OfflineMemoryAllocation" metadata (`tflite_converter.tflm_plan`), for
users who keep TFLM; with it --output_dir may be left out (then nothing else is written).
With --patch the first stage runs patch by patch (MCUNetV2, `tflite_converter.patch`): the
table then lists every patch's ops, a summary line gives the arena against layer by layer,
and plan.json's "patch" entry every candidate weighed.
Relative paths are the user's (Bazel's BUILD_WORKING_DIRECTORY under `bazel run`).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

from absl import app, flags

from engine.cli_paths import resolve_user_path
from tflite_converter import plan_report
from tflite_converter.codegen.generate import PLAN_JSON, generate, plan_json
from tflite_converter.debug_layers import DebugInputError
from tflite_converter.debug_layers import run as debug_layers_run
from tflite_converter.errors import ConversionError
from tflite_converter.patch import PatchSetting
from tflite_converter.pipeline import LAYER_BY_LAYER, compile_model, patch_summary, plan_extra
from tflite_converter.tflm_plan import write_tflm_plan

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Input .tflite model.")
flags.DEFINE_string("output_dir", None, "Folder for plan.json (and the generated C).")
flags.DEFINE_string("name", "model", "C identifier prefix of the generated API (NAME_invoke, ...).")
flags.DEFINE_bool("plan_only", False, "Only plan memory: write plan.json and print the table.")
flags.DEFINE_bool("overlap", True, "Let a convolution's output start inside its dying input as far as "
                  "the kernel's read/write order proves safe (below the layer-by-layer bound; "
                  "tflite_converter/write_order.py). --nooverlap: every op's input and output apart.")
flags.DEFINE_bool("debug_layers", False, "After generating, run the C (host build, every op's output "
                  "observed) and TFLM on one input and compare every op's outputs; exit 1 if any differs.")
flags.DEFINE_string("debug_input", None, "With --debug_layers: the input, a .npy (or a .npz with one "
                    "array per input) of each input's shape and dtype; default seeded random.")
flags.DEFINE_integer("debug_seed", 0, "With --debug_layers and no --debug_input: the random input's seed.")
flags.DEFINE_string("patch", "off", "Patch-based inference (MCUNetV2) of the first stage: off; auto (the "
                    "lowest arena within --patch_max_macs of the MACs, layer by layer where none is lower); or "
                    "SPLIT:N, the stage ending at op SPLIT on an NxN grid.")
flags.DEFINE_float("patch_max_macs", 0.3, "With --patch=auto: grids recomputing more than this share of "
                   "the MACs are not weighed.")
flags.DEFINE_integer("patch_sram_limit", None, "With --patch=auto: the fewest MACs whose arena fits this many "
                     "bytes instead of the lowest arena.")
flags.DEFINE_string("tflm_plan", None, "Also write this .tflite: the model with our placement of the tensors "
                    "TFLM allocates as its OfflineMemoryAllocation metadata (TFLM then uses our arena).")

EXIT_REFUSED = 2


def convert(model: Path, output_dir: Optional[Path], name: str = "model", plan_only: bool = False,
            debug_layers: bool = False, debug_input: Optional[Path] = None, debug_seed: int = 0,
            overlap: bool = True, tflm_plan: Optional[Path] = None,
            patch: PatchSetting = LAYER_BY_LAYER) -> int:
    """Run the pipeline; returns the exit status. Raises ConversionError on refusal
    (and debug_layers.DebugInputError on a bad --debug_input). With `tflm_plan` the TFLM
    offline plan is written first; `output_dir` None: only that."""
    if tflm_plan is not None:
        offline = write_tflm_plan(model, tflm_plan)
        print(f"wrote {tflm_plan}: TFLM offline plan, {offline.arena_bytes:,} B for {offline.n_planned} tensors "
              f"(TFLM's greedy rule on the same tensors: {offline.greedy_bytes:,} B)")
    if output_dir is None:
        return 0
    compiled = compile_model(model, overlap=overlap, patch=patch)
    graph, plan = compiled.graph, compiled.plan
    output_dir.mkdir(parents=True, exist_ok=True)
    # Written before generating, so a model whose C is refused still leaves its plan.
    extra = plan_extra(compiled)
    (output_dir / PLAN_JSON).write_text(plan_json(graph, plan, extra))
    print(plan_report.format_table(graph, plan))
    summary = patch_summary(compiled)
    if summary:
        print(summary)
    print(f"wrote {output_dir / PLAN_JSON}")
    if plan_only:
        return 0
    generate(graph, plan, output_dir, name=name, order=compiled.order, plan_extra=extra)
    print(f"wrote C sources to {output_dir} (API prefix {name}_)")
    if debug_layers:
        return debug_layers_run(model, output_dir, input_file=debug_input, seed=debug_seed, compiled=compiled)
    return 0


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    needed = ("model",) if FLAGS.tflm_plan else ("model", "output_dir")
    missing = [f"--{f}" for f in needed if not getattr(FLAGS, f)]
    if missing:
        raise app.UsageError(f"missing {' and '.join(missing)}")
    model = Path(resolve_user_path(FLAGS.model))
    output_dir = Path(resolve_user_path(FLAGS.output_dir)) if FLAGS.output_dir else None
    tflm_plan = Path(resolve_user_path(FLAGS.tflm_plan)) if FLAGS.tflm_plan else None
    debug_input = Path(resolve_user_path(FLAGS.debug_input)) if FLAGS.debug_input else None
    if output_dir is None and (FLAGS.plan_only or FLAGS.debug_layers):
        print("--plan_only and --debug_layers write into --output_dir: give it", file=sys.stderr)
        return EXIT_REFUSED
    if FLAGS.debug_layers and FLAGS.plan_only:
        print("--debug_layers runs the generated C: it cannot go with --plan_only", file=sys.stderr)
        return EXIT_REFUSED
    if debug_input is not None and not FLAGS.debug_layers:
        print("--debug_input is the input of --debug_layers: give both", file=sys.stderr)
        return EXIT_REFUSED
    try:
        patch = PatchSetting.parse(FLAGS.patch, FLAGS.patch_max_macs, FLAGS.patch_sram_limit)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return EXIT_REFUSED
    if patch.mode != "off" and FLAGS.debug_layers:
        print("--debug_layers compares the layer-by-layer ops with TFLM's: use it without --patch", file=sys.stderr)
        return EXIT_REFUSED
    if debug_input is not None and not debug_input.is_file():
        print(f"--debug_input {debug_input}: no such file", file=sys.stderr)
        return EXIT_REFUSED
    try:
        return convert(model, output_dir, FLAGS.name, FLAGS.plan_only, FLAGS.debug_layers,
                       debug_input, FLAGS.debug_seed, FLAGS.overlap, tflm_plan, patch)
    except ConversionError as e:
        for problem in e.problems:
            print(f"{model.name}: {problem}", file=sys.stderr)
        return EXIT_REFUSED
    except DebugInputError as e:  # bad input, or nothing to compare with
        print(f"{model.name}: {e}", file=sys.stderr)
        return EXIT_REFUSED


def run(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point (`mcunet-convert`)."""
    app.run(main, argv=argv)


if __name__ == "__main__":
    run()
