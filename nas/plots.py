"""The search's pictures: the FLOPs CDF of the best spaces (MCUNet's Figure 2) and the
evolution curve (best and mean accuracy per generation, MCUNet's Figure 11)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nas.space_search import Stage1Result, top_cdf_series


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    return plt


def flops_cdf(stage1: Stage1Result, path: Path, k: int = 5) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, macs in top_cdf_series(stage1, k):
        m = np.asarray(macs) / 1e6
        ax.plot(m, np.arange(1, len(m) + 1) / len(m), label=label)
    ax.set_xlabel("MMACs of the sampled networks that fit")
    ax.set_ylabel("cumulative probability")
    ax.set_title(f"Stage 1: best {k} spaces ({stage1.limits.describe()})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evolution_curve(history: Sequence[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    gens = [h["generation"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(gens, [h["best_accuracy"] for h in history], marker="o", label="best")
    ax.plot(gens, [h["mean_accuracy"] for h in history], marker=".", label="population mean")
    ax.set_xlabel("generation")
    ax.set_ylabel("held-out accuracy (supernet, BN recalibrated)")
    ax.set_title("Stage 2: evolution", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
