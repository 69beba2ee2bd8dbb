"""Pictures of the benchmark (matplotlib, Agg backend, PNG).

- `memory_profile_png`: per model, the bytes live at each op -- ours (our schedule, in-place
  reuse, from plan.json) and TFLM's (our replica of its greedy plan on the unmodified graph in
  file order, `measure.replicate_tflm_plan`) -- with each peak marked and the arenas drawn as
  horizontal lines: MCUNetV2's "imbalanced memory distribution" view.
- `summary_png`: per model, TFLM / ours for SRAM, host latency and Cortex-M7 instructions
  (log scale, 1x marked).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on build machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.measure import ModelResult, Status  # noqa: E402

OURS_COLOUR = "#1f77b4"
TFLM_COLOUR = "#d62728"


def _kib(n: float) -> float:
    return n / 1024.0


def _peak(ax, live: Sequence[int], colour: str, marker: str) -> str:
    """Mark the peak on the curve; returns its description for the legend."""
    peak = int(np.argmax(live))
    ax.plot([peak], [_kib(live[peak])], marker=marker, color=colour, markersize=9, zorder=5,
            linestyle="none")
    return f"peak {live[peak]:,} B at op {peak}"


def memory_profile_png(result: ModelResult, path: Path) -> Optional[Path]:
    """Bytes live per op, ours vs TFLM's replica; None if the model has no profile."""
    prof = result.profile
    if prof is None or not prof.ours_live_bytes:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    steps = np.arange(len(prof.ours_live_bytes))
    # TFLM first, so ours is drawn on top where they coincide
    if prof.tflm_live_bytes:
        t_steps = np.arange(len(prof.tflm_live_bytes))
        peak = _peak(ax, prof.tflm_live_bytes, TFLM_COLOUR, "^")
        ax.step(t_steps, [_kib(v) for v in prof.tflm_live_bytes], where="mid", color=TFLM_COLOUR,
                linewidth=2.2, alpha=0.75, label=f"TFLM live bytes (replica of its plan, file order); {peak}")
    peak = _peak(ax, prof.ours_live_bytes, OURS_COLOUR, "v")
    ax.step(steps, [_kib(v) for v in prof.ours_live_bytes], where="mid", color=OURS_COLOUR,
            linewidth=1.4, label=f"ours live bytes (our schedule, in place); {peak}")
    s = result.sram
    if s is not None:
        if s.tflm_head_bytes is not None:
            ax.axhline(_kib(s.tflm_head_bytes), color=TFLM_COLOUR, linestyle="--", linewidth=1.2,
                       label=f"TFLM planned arena (head) {s.tflm_head_bytes:,} B")
        ax.axhline(_kib(s.ours_arena_bytes), color=OURS_COLOUR, linestyle=(0, (2, 2)), linewidth=1.2,
                   label=f"ours arena {s.ours_arena_bytes:,} B")
        if s.tflm_smallest_bytes is not None:
            ax.axhline(_kib(s.tflm_smallest_bytes), color=TFLM_COLOUR, linestyle=":", linewidth=1,
                       label=f"TFLM smallest whole arena {s.tflm_smallest_bytes:,} B")
    ax.set_xlabel("op, in execution order (ours: after graph passes, our schedule; TFLM: file order)")
    ax.set_ylabel("KiB")
    ax.set_ylim(bottom=0, top=ax.get_ylim()[1] * 1.15)
    ax.set_title(f"{result.model}: activation memory per op")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def summary_png(results: Sequence[ModelResult], path: Path) -> Optional[Path]:
    """Grouped bars of TFLM / ours per model (above 1: ours is better)."""
    ok = [r for r in results if r.status == Status.OK.value]
    if not ok:
        return None
    series = [
        ("SRAM (TFLM smallest arena / ours)", [r.sram.ratio if r.sram else None for r in ok], "#2ca02c"),
        ("host latency (TFLM / ours)", [r.latency.host_ratio if r.latency else None for r in ok], "#1f77b4"),
        ("Cortex-M7 instructions (TFLM+CMSIS-NN / ours DSP)",
         [r.latency.m7_ratio if r.latency else None for r in ok], "#ff7f0e"),
    ]
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(ok) + 3), 4.8), dpi=110)
    x = np.arange(len(ok))
    width = 0.8 / len(series)
    for k, (label, values, colour) in enumerate(series):
        xs = [xi + (k - (len(series) - 1) / 2) * width for xi, v in zip(x, values) if v]
        ys = [v for v in values if v]
        bars = ax.bar(xs, ys, width, label=label, color=colour)
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in ys], fontsize=6.5, padding=1)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels([r.model for r in ok], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("TFLM / ours (log; > 1: ours better)")
    ax.set_title("Our generated C vs TFLM")
    ax.grid(axis="y", alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


__all__ = ["memory_profile_png", "summary_png"]
