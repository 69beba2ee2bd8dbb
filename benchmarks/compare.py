"""`compare`: our generated C side by side with TensorFlow Lite Micro, one command.

    bazel run //benchmarks:compare -- --models=PATH_OR_GLOB[,...] --output_dir=DIR
    mcunet-bench --models=... --output_dir=DIR

Per model: correctness (output bytes vs TFLM and vs ai_edge_litert BUILTIN_REF, on seeded
random and real inputs), SRAM, Flash, host latency (interleaved with TFLM in this process) and
Cortex-M7 / Cortex-M4 instruction counts under QEMU. Writes DIR/results.json, DIR/results.md,
DIR/memory_<model>.png, DIR/summary.png, and the generated C under DIR/generated/.

--models defaults to the shared real models (<repo>/../shared/models) when present, else to
the project's own int8 exports of the published MCUNet architectures (these need TensorFlow,
imported only then). An entry may be a file, a folder (its *.tflite), a glob, or a published
MCUNet name (mcunet-in0, ...). Relative paths are the user's (BUILD_WORKING_DIRECTORY under
`bazel run`). A model the converter refuses is listed with its reasons; the run goes on.
"""
from __future__ import annotations

import glob as globlib
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from absl import app, flags
from tqdm import tqdm

from benchmarks import plots, report
from benchmarks.measure import BenchOptions, ModelResult, Status, load_baseline, machine_info, measure_model
from engine import qemu
from engine.cli_paths import resolve_user_path

REPO_ENV = "MCUNET_REPO_ROOT"


def repo_root() -> Path:
    env = os.environ.get(REPO_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    return repo_root().parent / "shared"


FLAGS = flags.FLAGS
flags.DEFINE_list("models", None, "Models: .tflite files, folders, globs or published MCUNet names, "
                  "comma-separated. Default: ../shared/models/*.tflite, else the MCUNet exports.")
flags.DEFINE_string("output_dir", None, "Folder for results.json, results.md, the PNGs and the C.")
flags.DEFINE_integer("num_inputs", 20, "Seeded random inputs per model.")
flags.DEFINE_integer("num_real", 20, "Real inputs per model, at most (where the shared data has them).")
flags.DEFINE_integer("host_repeats", 15, "Interleaved timing rounds on the host (0: no timing).")
flags.DEFINE_bool("qemu", True, "Run our C on Cortex-M under QEMU (--noqemu to skip).")
flags.DEFINE_list("cpus", [c.value for c in qemu.Cpu], "Cortex-M cores to run under QEMU.")
flags.DEFINE_integer("qemu_inputs", 2, "Samples per QEMU build (instruction counts, output check).")
flags.DEFINE_integer("seed", 0, "Seed of the random inputs.")
flags.DEFINE_string("data_dir", None, "Shared data sets for real inputs. Default: ../shared/data.")
flags.DEFINE_string("baseline", None, "TFLM Cortex-M7 figures (json). "
                    "Default: ../shared/baselines/tflm_cortex_m7.json.")
flags.DEFINE_bool("plots", True, "Write the PNG pictures.")
flags.DEFINE_bool("patch", True, "Also measure patch-based inference (--patch=auto) where it lowers the arena "
                  "(--nopatch to skip).")


class ModelSelectionError(ValueError):
    """A --models entry matches nothing."""


def _published_names() -> set[str]:
    from mcunet_tf.mcunet_configs import PUBLISHED  # plain data, no TensorFlow

    return {e.name for e in PUBLISHED}


def _export_mcunet(names: Sequence[str]) -> list[Path]:
    """int8 .tflite exports of published MCUNet networks (cached; TensorFlow only here)."""
    from mcunet_tf.export import default_model_cache, reference_model_path

    cache = default_model_cache()
    return [reference_model_path(n, cache) for n in names]


def default_models() -> list[Path]:
    models = shared_dir() / "models"
    if models.is_dir():
        found = sorted(models.glob("*.tflite"))
        if found:
            return found
    # the published networks, as mcunet_tf.export's DEFAULT_REFERENCE_MODELS lists them; only
    # the export itself imports TensorFlow
    from mcunet_tf.mcunet_configs import PUBLISHED

    return _export_mcunet([e.name for e in PUBLISHED])


def select_models(entries: Optional[Sequence[str]]) -> list[Path]:
    """Expand --models into .tflite paths (each once, in the order given)."""
    if not entries:
        return default_models()
    paths: list[Path] = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        p = resolve_user_path(entry)
        if any(ch in entry for ch in "*?["):
            found = [Path(m) for m in sorted(globlib.glob(str(p)))]
        elif p.is_dir():
            found = sorted(p.glob("*.tflite"))
        elif p.is_file():
            found = [p]
        elif entry in _published_names():
            found = _export_mcunet([entry])
        else:
            raise ModelSelectionError(f"--models entry '{entry}' matches no file ({p})")
        if not found:
            raise ModelSelectionError(f"--models entry '{entry}' matches no .tflite file")
        paths += found
    unique: list[Path] = []
    for p in paths:
        if p.resolve() not in {q.resolve() for q in unique}:
            unique.append(p)
    return unique


def run_benchmark(models: Sequence[Path], output_dir: Path, options: BenchOptions,
                  baseline_path: Optional[Path] = None, command: str = "",
                  make_plots: bool = True, show_progress: bool = True) -> tuple[dict, list[ModelResult]]:
    """Measure every model, write results.json, results.md and the PNGs; returns (document,
    per-model results)."""
    start = time.perf_counter()
    output_dir.mkdir(parents=True, exist_ok=True)
    baseline, baseline_source = load_baseline(baseline_path)
    results: list[ModelResult] = []
    stems: dict[str, int] = {}
    bar = tqdm(models, unit="model", disable=not show_progress, file=sys.stderr)
    for path in bar:
        stems[path.stem] = stems.get(path.stem, 0) + 1
        # same file name from two folders: keep both generated folders
        work = output_dir / "generated" / ("" if stems[path.stem] == 1 else f"dup{stems[path.stem]}")
        bar.set_description(path.stem)
        result = measure_model(path, work, options, baseline,
                               progress=lambda stage: bar.set_postfix_str(stage, refresh=True))
        if result.status == Status.REFUSED.value:
            tqdm.write(f"{path.stem}: refused by the converter:", file=sys.stderr)
            for line in result.reasons:
                tqdm.write(f"  {line}", file=sys.stderr)
        for stage, msg in result.errors.items():
            tqdm.write(f"{path.stem}: {stage} failed: {msg}", file=sys.stderr)
        results.append(result)
    bar.close()

    if make_plots:
        for r in results:
            plots.memory_profile_png(r, output_dir / f"memory_{r.model}.png")
        plots.summary_png(results, output_dir / "summary.png")
    doc = report.results_document(results, machine_info(), options.get_config(),
                                  str(baseline_path) if baseline and baseline_path else None,
                                  baseline_source, command, time.perf_counter() - start)
    report.write_json(doc, output_dir / report.RESULTS_JSON)
    report.write_markdown(doc, results, output_dir / report.RESULTS_MD)
    return doc, results


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.output_dir:
        raise app.UsageError("missing --output_dir")
    cpus = [c.strip() for c in FLAGS.cpus if c.strip()]
    known = [c.value for c in qemu.Cpu]
    unknown = [c for c in cpus if c not in known]
    if unknown:
        raise app.UsageError(f"unknown --cpus {unknown}: choose from {known}")
    for name in ("num_inputs", "num_real", "host_repeats", "qemu_inputs"):
        if getattr(FLAGS, name) < 0:
            raise app.UsageError(f"--{name} must be >= 0")
    if FLAGS.num_inputs == 0 and FLAGS.num_real == 0:
        raise app.UsageError("--num_inputs and --num_real are both 0: nothing to run")
    try:
        models = select_models(FLAGS.models)
    except ModelSelectionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    data_dir = resolve_user_path(FLAGS.data_dir) if FLAGS.data_dir else shared_dir() / "data"
    baseline = (resolve_user_path(FLAGS.baseline) if FLAGS.baseline
                else shared_dir() / "baselines" / "tflm_cortex_m7.json")
    options = BenchOptions(num_inputs=FLAGS.num_inputs, num_real=FLAGS.num_real,
                           host_repeats=FLAGS.host_repeats, qemu=FLAGS.qemu, cpus=tuple(cpus),
                           qemu_inputs=FLAGS.qemu_inputs, seed=FLAGS.seed,
                           data_dir=str(data_dir) if data_dir.is_dir() else None, patch=FLAGS.patch)
    output_dir = resolve_user_path(FLAGS.output_dir)
    command = "mcunet-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    doc, results = run_benchmark(models, output_dir, options, baseline, command, FLAGS.plots)
    md = (output_dir / report.RESULTS_MD).read_text()
    summary = md.split("## Summary", 1)[1].split("\n## ", 1)[0] if "## Summary" in md else ""
    print("## Summary" + summary.rstrip())
    print(f"\nwrote {output_dir / report.RESULTS_JSON}, {output_dir / report.RESULTS_MD} "
          f"and the PNGs ({doc['wall_seconds']:.0f} s)")
    return 0


def run(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point (`mcunet-bench`)."""
    app.run(main, argv=argv)


if __name__ == "__main__":
    run()
