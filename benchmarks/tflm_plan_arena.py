"""TFLM's arena with our offline plan beside its own, per model, outputs checked.

    python -m benchmarks.tflm_plan_arena [--models=DIR ...] [--samples=3] [--seed=0]

For every .tflite TFLM runs (default: ../shared/models): TFLM's recorded arena with its own
planner, the same with our offline plan in the model (`convert --tflm_plan`,
tflite_converter/tflm_plan.py), their ratio, the bytes of TFLM's non-persistent section our
plan spans beside TFLM's greedy rule on the same tensors and their lower bound, and whether
TFLM's outputs with the plan are byte-identical to its outputs without it on seeded random
inputs ("same" / "DIFFERENT"). Exit status 1 if any differs. Bytes are deterministic.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from absl import app, flags

from benchmarks.model_files import tflite_files
from engine.compare import first_difference
from engine.tflm import TflmModel, random_inputs
from tflite_converter.errors import ConversionError
from tflite_converter.tflm_plan import TflmPlan, with_offline_plan

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO.parent / "shared" / "models"
FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Row:
    model: str
    default_arena: int  # TFLM's recorded arena total, its own planner
    plan_arena: int  # the same with our offline plan in the model
    plan: TflmPlan
    difference: Optional[str]  # None: every output byte-identical

    @property
    def ratio(self) -> float:
        return self.plan_arena / max(self.default_arena, 1)


def measure(path: Path, samples: int = 3, seed: int = 0) -> Optional[Row]:
    """The row of one model, or None when TFLM cannot run it or it cannot be planned."""
    data = path.read_bytes()
    try:
        default = TflmModel(data)
    except RuntimeError:
        return None
    try:
        planned_model, plan = with_offline_plan(data)
    except ConversionError:
        return None
    planned = TflmModel(planned_model)
    rng = np.random.default_rng(seed)
    details = [default.input_details(i) for i in range(default.num_inputs)]
    inputs = [random_inputs(details, rng) for _ in range(samples)]
    # run the planned interpreter in between, so a stale output cannot pass for a fresh one
    want, got = [], []
    for x in inputs:
        want.append(default.run(x))
        got.append(planned.run(x))
    return Row(path.stem, default.arena_used_bytes(), planned.arena_used_bytes(), plan,
               first_difference(got, want))


def main(dirs: Sequence[Path], samples: int, seed: int) -> int:
    paths = tflite_files(dirs)
    if not paths:
        return 0
    print(f"{'model':38s} {'TFLM B':>9s} {'w/ plan B':>9s} {'ratio':>6s} {'plan B':>9s} {'greedy B':>9s} "
          f"{'bound B':>9s} {'tensors':>7s}  outputs")
    bad = 0
    for row in filter(None, (measure(path, samples, seed) for path in paths)):
        bad += row.difference is not None
        print(format_row(row), flush=True)
    return 1 if bad else 0


def format_row(row: Row) -> str:
    p = row.plan
    cells = [f"{row.model[:38]:38s}", *(f"{v:9,d}" for v in (row.default_arena, row.plan_arena)), f"{row.ratio:6.3f}",
             *(f"{v:9,d}" for v in (p.arena_bytes, p.greedy_bytes, p.lower_bound_bytes)), f"{p.n_planned:7d}",
             " same" if row.difference is None else " DIFFERENT"]
    return " ".join(cells)


def _main(argv: Sequence[str]) -> int:
    del argv
    dirs = [Path(d) for d in FLAGS.models] if FLAGS.models else [DEFAULT_DIR]
    return main(dirs, FLAGS.samples, FLAGS.seed)


if __name__ == "__main__":
    flags.DEFINE_multi_string("models", None, "Folders of .tflite models (default: ../shared/models).")
    flags.DEFINE_integer("samples", 3, "Seeded random inputs per model.")
    flags.DEFINE_integer("seed", 0, "Seed of the random inputs.")
    app.run(_main)
