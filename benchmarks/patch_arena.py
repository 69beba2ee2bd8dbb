"""Patch-based inference beside layer by layer, per model, outputs checked against TFLM.

    python -m benchmarks.patch_arena [--models=DIR ...] [--max_macs_overhead=0.3] [--check=false]
        [--candidates] [--qemu]

For every .tflite that converts (default: ../shared/models, plus build/models when the MCUNet
exports are there): the layer-by-layer arena (the converter's default plan) with the graph
input in the arena and held outside it, then `--patch=auto` (tflite_converter/patch.py): the
split (the file index of the stage's last op), the grid, its arena with and without the
input, the ratios, and the MACs overhead. "lbl" in the split column: no split lowers the
peak, so auto keeps layer by layer. With --check (default) the chosen C is built for the host
and run on two seeded random inputs against TFLM: "same" or "DIFFERENT". With --candidates
every candidate weighed is listed too. With --qemu, every model auto patches is also built for
the emulated Cortex-M7 (DSP build, engine/qemu.py) layer by layer and patched: the outputs of
both against TFLM's on one seeded input, the instructions of each invoke and their ratio, and
the model's Flash (code + constants) of each. Bytes, MACs and QEMU instruction counts are
deterministic: no timing here.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from absl import app, flags

from benchmarks.model_files import compiled_models, tflite_files
from engine import qemu
from engine.compare import first_difference, host_vs_tflm
from engine.tflm import TflmModel, random_inputs
from tflite_converter.codegen.generate import generate
from tflite_converter.patch import PatchSetting, grid_text
from tflite_converter.pipeline import CompiledModel, compile_model

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIRS = (REPO.parent / "shared" / "models", REPO / "build" / "models")
FLAGS = flags.FLAGS


def cortex_m7_row(path: Path, work: Path, compiled: CompiledModel, base: CompiledModel) -> str:
    """Layer by layer and patched on the emulated Cortex-M7: instructions, Flash, and
    whether each gives TFLM's bytes (a build that does not run on the emulated board, e.g.
    an arena beyond its RAM, says so)."""
    tflm = TflmModel(path)
    sample = random_inputs([tflm.input_details(i) for i in range(tflm.num_inputs)], np.random.default_rng(7))
    want = tflm.run(sample)
    runs: dict[str, tuple[int, int, bool]] = {}
    failed: dict[str, str] = {}
    for tag, c in (("lbl", base), ("patch", compiled)):
        out = work / f"{path.stem}_{tag}"
        generate(c.graph, c.plan, out, name="net", order=c.order)
        try:
            r = qemu.run_on_qemu(out, "net", [sample], dsp=True)
        except qemu.QemuError as e:
            failed[tag] = str(e).splitlines()[1 if len(str(e).splitlines()) > 1 else 0][:80]
            continue
        flash = r.model.text + r.model.rodata if r.model is not None else 0
        runs[tag] = (r.instructions_per_invoke[0], flash, first_difference([r.outputs[0]], [want]) is None)
    parts = []
    if "lbl" in runs and "patch" in runs:
        (n0, f0, _), (n1, f1, _) = runs["lbl"], runs["patch"]
        parts.append(f"{n0:,} -> {n1:,} instructions ({n1 / n0:.3f}), model Flash {f0:,} -> {f1:,} B")
    else:
        parts += [f"{tag}: {n:,} instructions, model Flash {f:,} B" for tag, (n, f, _) in runs.items()]
    parts += [f"{tag} does not run on the emulated board ({why})" for tag, why in failed.items()]
    same = [ok for _, _, ok in runs.values()]
    verdict = "not run" if not same else "same as TFLM" if all(same) else "DIFFERENT from TFLM"
    return "    Cortex-M7: " + "; ".join(parts) + f", {verdict}"


def main(dirs: Sequence[Path], max_macs_overhead: float, check: bool, candidates: bool, on_qemu: bool = False) -> int:
    paths = tflite_files(dirs)
    if not paths:
        return 0
    print(f"{'model':32s} {'lbl B':>9s} {'lbl-in B':>9s} {'split':>6s} {'grid':>4s} {'patch B':>9s} "
          f"{'patch-in B':>10s} {'ratio':>6s} {'ratio-in':>8s} {'MACs +':>7s}{'  C vs TFLM' if check else ''}")
    bad = 0
    setting = PatchSetting("auto", max_macs_overhead=max_macs_overhead)
    with tempfile.TemporaryDirectory(prefix="patch_arena_") as tmp:
        for path, compiled in compiled_models(paths, patch=setting):
            lbl, lbl_out = compiled.layer_by_layer_arena, compiled.layer_by_layer_without_input
            assert lbl is not None and lbl_out is not None  # set whenever patches are asked for
            c = compiled.patch
            if c is None:
                split, grid, arena, arena_out, macs = "lbl", "-", lbl, lbl_out, 0.0
            else:
                split, grid = str(c.plan.split.last_op_index), grid_text(c.plan.grid)
                arena, arena_out, macs = c.arena_bytes, c.arena_bytes_without_input, c.plan.macs_overhead
            verdict = ""
            if check and c is not None:
                out = Path(tmp) / path.stem
                generate(compiled.graph, compiled.plan, out, name="net", order=compiled.order)
                ok = host_vs_tflm(path, out, "net") is None
                bad += not ok
                verdict = "  same" if ok else "  DIFFERENT"
            print(f"{path.stem[:32]:32s} {lbl:9,d} {lbl_out:9,d} {split:>6s} {grid:>4s} {arena:9,d} "
                  f"{arena_out:10,d} {lbl / max(arena, 1):6.2f} {lbl_out / max(arena_out, 1):8.2f} "
                  f"{100 * macs:6.1f}%{verdict}", flush=True)
            if on_qemu and c is not None:
                row = cortex_m7_row(path, Path(tmp), compiled, compile_model(path))
                bad += "DIFFERENT" in row
                print(row, flush=True)
            if candidates:
                for k in compiled.patch_candidates:
                    print(f"    split {k.plan.split.last_op_index:4d} grid {grid_text(k.plan.grid)}: "
                          f"{k.arena_bytes:9,d} B, "
                          f"{k.arena_bytes_without_input:9,d} B without the input, "
                          f"MACs +{100 * k.plan.macs_overhead:.1f}%")
    return 1 if bad else 0


def _main(argv: Sequence[str]) -> int:
    del argv
    dirs = [Path(d) for d in FLAGS.models] if FLAGS.models else list(DEFAULT_DIRS)
    if FLAGS.qemu and not qemu.toolchain_available():
        print("--qemu: the Cortex-M toolchain or QEMU is not installed (scripts/setup.sh installs them)")
        return 2
    return main(dirs, FLAGS.max_macs_overhead, FLAGS.check, FLAGS.candidates, FLAGS.qemu)


if __name__ == "__main__":
    flags.DEFINE_multi_string("models", None, "Folders of .tflite models (default: ../shared/models "
                              "and build/models).")
    flags.DEFINE_float("max_macs_overhead", 0.3, "Grids recomputing more MACs than this share are not weighed.")
    flags.DEFINE_bool("check", True, "Build the chosen C for the host and compare with TFLM.")
    flags.DEFINE_bool("candidates", False, "List every candidate weighed.")
    flags.DEFINE_bool("qemu", False, "Also run layer by layer and patched on the emulated Cortex-M7.")
    app.run(_main)
