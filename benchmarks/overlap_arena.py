"""Arena with planner overlap beside the layer-by-layer bound, per model, outputs checked.

    python -m benchmarks.overlap_arena [--models=DIR ...] [--check=false]

For every .tflite that converts (default: ../shared/models, plus build/models when the MCUNet
exports are there): the layer-by-layer bound (every op's whole input and output live), the
arena without overlap (`convert --nooverlap`), the arena with overlap (the converter's
default, write_order.py), their ratio, and how many ops write over their input. With --check (default) the overlap C is
built for the host and run on two seeded random inputs against TFLM: "same" or "DIFFERENT".
Bytes are deterministic: no timing here.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

from absl import app, flags

from benchmarks.model_files import compiled_models, tflite_files
from engine.compare import host_vs_tflm
from tflite_converter.codegen.generate import generate
from tflite_converter.planner import plan_memory

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIRS = (REPO.parent / "shared" / "models", REPO / "build" / "models")
FLAGS = flags.FLAGS


def same_as_tflm(path: Path, out: Path, compiled) -> bool:
    generate(compiled.graph, compiled.plan, out, name="net", order=compiled.order)
    return host_vs_tflm(path, out, "net") is None


def main(dirs: Sequence[Path], check: bool) -> int:
    paths = tflite_files(dirs)
    if not paths:
        return 0
    print(f"{'model':40s} {'bound B':>9s} {'arena B':>9s} {'overlap B':>9s} {'ratio':>6s} "
          f"{'ops':>4s} {'vs bound':>8s}{'  C vs TFLM' if check else ''}")
    bad = 0
    with tempfile.TemporaryDirectory(prefix="overlap_arena_") as tmp:
        for path, compiled in compiled_models(paths, overlap=True):
            plan = compiled.plan
            plain = plan_memory(compiled.graph, compiled.order, overlap=False)
            verdict = ""
            if check:
                ok = same_as_tflm(path, Path(tmp) / path.stem, compiled)
                bad += not ok
                verdict = "  same" if ok else "  DIFFERENT"
            bound = plan.lower_bound_bytes
            print(f"{path.stem[:40]:40s} {bound:9,d} {plain.arena_bytes:9,d} {plan.arena_bytes:9,d} "
                  f"{plan.arena_bytes / max(plain.arena_bytes, 1):6.3f} {len(plan.overlaps):4d} "
                  f"{plan.arena_bytes / max(bound, 1):8.3f}{verdict}", flush=True)
    return 1 if bad else 0


def _main(argv: Sequence[str]) -> int:
    del argv
    dirs = [Path(d) for d in FLAGS.models] if FLAGS.models else list(DEFAULT_DIRS)
    return main(dirs, FLAGS.check)


if __name__ == "__main__":
    flags.DEFINE_multi_string("models", None, "Folders of .tflite models (default: ../shared/models "
                              "and build/models).")
    flags.DEFINE_bool("check", True, "Build the overlap C for the host and compare with TFLM.")
    app.run(_main)
