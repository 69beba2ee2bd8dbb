"""`convert`: .tflite -> memory plan (and C, once the code generator is there).

    bazel run //tflite_converter:convert -- --model=M.tflite --output_dir=DIR [--name=model] [--plan_only]
    mcunet-convert --model=M.tflite --output_dir=DIR ...

Pipeline: read the flatbuffer, legalize, schedule, plan memory, write DIR/plan.json and
print the per-layer table; without --plan_only also emit the C folder. A model that cannot be
converted is refused with one line per problem on stderr and exit status 2 (no traceback).
Relative paths are the user's (Bazel's BUILD_WORKING_DIRECTORY under `bazel run`).
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from absl import app, flags

from engine.cli_paths import resolve_user_path
from tflite_converter.errors import ConversionError, Problem

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Input .tflite model.")
flags.DEFINE_string("output_dir", None, "Folder for plan.json (and the generated C).")
flags.DEFINE_string("name", "model", "C identifier prefix of the generated API (NAME_invoke, ...).")
flags.DEFINE_bool("plan_only", False, "Only plan memory: write plan.json and print the table.")

EXIT_REFUSED = 2


def _load_codegen():
    """The C generator's `generate`, or None while it is not built."""
    try:
        module = importlib.import_module("tflite_converter.codegen.generate")
    except ImportError:
        return None
    return getattr(module, "generate", None)


def convert(model: Path, output_dir: Path, name: str = "model", plan_only: bool = False) -> int:
    """Run the pipeline; returns the exit status. Raises ConversionError on refusal."""
    from tflite_converter import plan_report
    from tflite_converter.passes import legalize
    from tflite_converter.planner import plan_memory
    from tflite_converter.reader import load_tflite
    from tflite_converter.schedule import schedule

    try:
        graph = load_tflite(model)
    except OSError as e:
        raise ConversionError(Problem(f"cannot read {model}: {e.strerror or e}")) from None
    graph = legalize(graph)
    order = schedule(graph)
    plan = plan_memory(graph, order)

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "plan.json").write_text(json.dumps(plan_report.plan_to_json(graph, plan), indent=1))
    print(plan_report.format_table(graph, plan))
    print(f"wrote {output_dir / 'plan.json'}")
    if plan_only:
        return 0
    generate = _load_codegen()
    if generate is None:
        print("C emission not built yet: wrote plan only")
        return 0
    generate(graph, plan, output_dir, name=name, order=list(plan.order))
    print(f"wrote C sources to {output_dir} (API prefix {name}_)")
    return 0


def main(argv: Sequence[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    missing = [f"--{f}" for f in ("model", "output_dir") if not getattr(FLAGS, f)]
    if missing:
        raise app.UsageError(f"missing {' and '.join(missing)}")
    model = Path(resolve_user_path(FLAGS.model))
    output_dir = Path(resolve_user_path(FLAGS.output_dir))
    try:
        return convert(model, output_dir, FLAGS.name, FLAGS.plan_only)
    except ConversionError as e:
        for problem in e.problems:
            print(f"{model.name}: {problem}", file=sys.stderr)
        return EXIT_REFUSED


def run(argv: Optional[list[str]] = None) -> None:
    """Console-script entry point (`mcunet-convert`)."""
    app.run(main, argv=argv)


if __name__ == "__main__":
    run()
