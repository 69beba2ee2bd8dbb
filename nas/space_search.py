"""Stage 1 of TinyNAS: choose the search space (width multiplier, resolution) to specialise.

MCUNet's observation: under a memory budget, the space whose *fitting* networks have the
most computation tends to hold the most accurate ones. So for every (width, resolution)
pair of a grid, sample ``m`` random sub-networks, keep those that fit the limits (peak SRAM
from the converter's planner, exactly the arena the generated C will use; Flash; latency
if limited) and score the space by the mean MACs of the fitting ones. The space with the
highest mean wins; the MACs of each space's fitting networks are kept for the CDF plot
(the paper's Figure 2).

Only spaces where at least ``MIN_FIT_FRACTION`` of the samples fit are eligible. A space
where one sample in a thousand fits can have the highest mean (that one network sits right
at the limits) but is a poor space to specialise: the supernet's sampled sub-networks and
evolution's population would be drawn from a sliver of it (measured on CIFAR-10 at 64 KiB /
256 KiB: w0.4 r80 with 1/1000 fitting outranked w0.3 r80 with 252/1000). Where no space
reaches the fraction, every space with a fitting network is eligible.

Resumable: every profiled space is appended to a partial file, and each space draws its
samples from its own seeded generator ``(seed, space index)``, so a stopped run that
resumes reaches exactly the result of an unbroken one.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from mcunet_tf.arch import SearchSpace
from nas.constraints import CandidateMeter, Limits
from nas.run_files import atomic_write_json, read_json

# MCUNet's grid: width multipliers 0.2 ... 1.0, resolutions 48 ... 224 in steps of 16.
MCUNET_WIDTHS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
RESOLUTION_STEP = 16
MIN_RESOLUTION = 32  # the backbone downsamples 32x: below it the last stages see 1x1 maps
MAX_RESOLUTION = 224
MIN_FIT_FRACTION = 0.05  # of a space's samples that must fit for it to be chosen


def resolutions_for_images(image_size: int, max_resolution: int = MAX_RESOLUTION) -> tuple[int, ...]:
    """The resolution grid adapted to the data: upsampling past ~3x the images' own size
    adds SRAM and MACs without new information (32x32 images: 32 ... 96)."""
    top = min(max_resolution, MAX_RESOLUTION, max(MIN_RESOLUTION + RESOLUTION_STEP, 3 * image_size))
    return tuple(range(MIN_RESOLUTION, top + 1, RESOLUTION_STEP))


@dataclasses.dataclass(frozen=True)
class SpaceGrid:
    widths: tuple[float, ...]
    resolutions: tuple[int, ...]
    num_classes: int
    in_channels: int = 3

    def spaces(self) -> list[SearchSpace]:
        return [SearchSpace(width_mult=w, resolution=r, num_classes=self.num_classes,
                            in_channels=self.in_channels)
                for w in self.widths for r in self.resolutions]

    def get_config(self) -> dict[str, Any]:
        return {"widths": list(self.widths), "resolutions": list(self.resolutions),
                "num_classes": self.num_classes, "in_channels": self.in_channels}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SpaceGrid":
        return cls(tuple(config["widths"]), tuple(config["resolutions"]),
                   int(config["num_classes"]), int(config.get("in_channels", 3)))


@dataclasses.dataclass(frozen=True)
class SpaceStats:
    """One space's sample: how many fit, and the MACs of those that do (sorted)."""

    width_mult: float
    resolution: int
    samples: int
    fitting_macs: tuple[int, ...]
    min_arena_bytes: int  # the smallest arena among the samples (fitting or not)
    min_flash_bytes: int

    @property
    def fitting_fraction(self) -> float:
        return self.fitting / self.samples if self.samples else 0.0

    @property
    def fitting(self) -> int:
        return len(self.fitting_macs)

    @property
    def mean_macs(self) -> float:
        return float(np.mean(self.fitting_macs)) if self.fitting_macs else 0.0

    def get_config(self) -> dict[str, Any]:
        return {"width_mult": self.width_mult, "resolution": self.resolution,
                "samples": self.samples, "fitting_macs": list(self.fitting_macs),
                "min_arena_bytes": self.min_arena_bytes, "min_flash_bytes": self.min_flash_bytes}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SpaceStats":
        return cls(float(config["width_mult"]), int(config["resolution"]), int(config["samples"]),
                   tuple(int(m) for m in config["fitting_macs"]), int(config["min_arena_bytes"]),
                   int(config["min_flash_bytes"]))

    def row(self) -> dict[str, Any]:
        """The summary the table shows (no per-sample data)."""
        return {"width_mult": self.width_mult, "resolution": self.resolution,
                "samples": self.samples, "fitting": self.fitting,
                "fitting_fraction": round(self.fitting / self.samples, 4) if self.samples else 0.0,
                "mean_macs": round(self.mean_macs), "max_macs": max(self.fitting_macs, default=0)}


def profile_space(space: SearchSpace, meter: CandidateMeter, limits: Limits, samples: int,
                  rng: np.random.Generator) -> SpaceStats:
    macs, min_arena, min_flash = [], None, None
    for _ in range(samples):
        fit = meter.measure(space.sample(rng))
        min_arena = fit.arena_bytes if min_arena is None else min(min_arena, fit.arena_bytes)
        min_flash = fit.flash_bytes if min_flash is None else min(min_flash, fit.flash_bytes)
        if fit.within(limits):
            macs.append(fit.macs)
    return SpaceStats(space.width_mult, space.resolution, samples, tuple(sorted(macs)),
                      int(min_arena or 0), int(min_flash or 0))


@dataclasses.dataclass(frozen=True)
class Stage1Result:
    grid: SpaceGrid
    limits: Limits
    stats: tuple[SpaceStats, ...]
    chosen_index: int

    @property
    def chosen(self) -> SpaceStats:
        return self.stats[self.chosen_index]

    def eligible(self) -> list[SpaceStats]:
        """The spaces stage 1 may choose (and ``--space=random`` draws from)."""
        return eligible_spaces(self.stats)

    def ranked(self) -> list[SpaceStats]:
        """Spaces by mean MACs of their fitting networks, best first (ties: grid order)."""
        order = sorted(range(len(self.stats)), key=lambda i: (-self.stats[i].mean_macs, i))
        return [self.stats[i] for i in order]

    def get_config(self) -> dict[str, Any]:
        return {"grid": self.grid.get_config(), "limits": self.limits.get_config(),
                "chosen": self.chosen.row(), "chosen_index": self.chosen_index,
                "spaces": [s.get_config() for s in self.stats]}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Stage1Result":
        return cls(SpaceGrid.from_config(config["grid"]), Limits.from_config(config["limits"]),
                   tuple(SpaceStats.from_config(s) for s in config["spaces"]),
                   int(config["chosen_index"]))

    def table_markdown(self) -> str:
        head = ("| width | resolution | fitting / sampled | mean MACs of fitting | max MACs |\n"
                "|---|---|---|---|---|\n")
        rows = []
        eligible = {id(s) for s in self.eligible()}
        for s in self.ranked():
            mark = " **(chosen)**" if s is self.chosen else ("" if id(s) in eligible or not s.fitting
                                                              else " (too few fit)")
            rows.append(f"| {s.width_mult:g} | {s.resolution} | {s.fitting} / {s.samples} | "
                        f"{s.mean_macs / 1e6:.2f} M{mark} | {max(s.fitting_macs, default=0) / 1e6:.2f} M |")
        return head + "\n".join(rows) + "\n"


def eligible_spaces(stats: Sequence[SpaceStats]) -> list[SpaceStats]:
    """Spaces with at least ``MIN_FIT_FRACTION`` of their samples fitting, or (when none has)
    every space with a fitting sample."""
    enough = [s for s in stats if s.fitting and s.fitting_fraction >= MIN_FIT_FRACTION]
    return enough or [s for s in stats if s.fitting]


class NothingFits(ValueError):
    """No sampled network of any space fits the limits."""


def optimise_spaces(grid: SpaceGrid, meter: CandidateMeter, limits: Limits, samples: int,
                    seed: int, partial_path: Optional[Path] = None,
                    progress: bool = True) -> Stage1Result:
    """Profile every space of ``grid`` (resuming from ``partial_path``) and choose one."""
    from tqdm import tqdm

    spaces = grid.spaces()
    done: list[SpaceStats] = []
    if partial_path is not None and partial_path.is_file():
        saved = read_json(partial_path)
        if saved.get("grid") == grid.get_config() and saved.get("samples") == samples \
                and saved.get("seed") == seed and saved.get("limits") == limits.get_config():
            done = [SpaceStats.from_config(s) for s in saved["stats"]]
    bar = tqdm(total=len(spaces), initial=len(done), desc="stage 1: spaces", unit="space",
               disable=not progress, dynamic_ncols=True)
    for index in range(len(done), len(spaces)):
        space = spaces[index]
        bar.set_postfix_str(f"profiling w{space.width_mult:g} r{space.resolution}")
        stats = profile_space(space, meter, limits, samples, np.random.default_rng([seed, 1, index]))
        done.append(stats)
        if partial_path is not None:
            atomic_write_json(partial_path, {"grid": grid.get_config(), "samples": samples,
                                             "seed": seed, "limits": limits.get_config(),
                                             "stats": [s.get_config() for s in done]})
        best = max(eligible_spaces(done) or done, key=lambda s: s.mean_macs)
        bar.set_postfix_str(f"w{space.width_mult:g} r{space.resolution}: {stats.fitting}/{samples} fit; "
                            f"best w{best.width_mult:g} r{best.resolution} {best.mean_macs / 1e6:.2f} MMACs")
        bar.update(1)
    bar.close()
    if not any(s.fitting for s in done):
        arena = min(s.min_arena_bytes for s in done)
        flash = min(s.min_flash_bytes for s in done)
        raise NothingFits(
            f"no sampled network fits {limits.describe()}: the smallest peak SRAM sampled is "
            f"{arena / 1024:.1f} KiB and the smallest Flash {flash / 1024:.1f} KiB")
    eligible = {id(s) for s in eligible_spaces(done)}
    chosen = max((i for i in range(len(done)) if id(done[i]) in eligible),
                 key=lambda i: (done[i].mean_macs, -i))
    return Stage1Result(grid, limits, tuple(done), chosen)


def smallest_reachable(grid: SpaceGrid, meter: CandidateMeter) -> tuple[int, int]:
    """(arena, Flash) of the smallest network of every space, minimised over the grid: what
    the space can reach at best, for the error message of impossible limits."""
    fits = [meter.measure(space.smallest()) for space in grid.spaces()]
    return min(f.arena_bytes for f in fits), min(f.flash_bytes for f in fits)


def random_space(stage1: Stage1Result, seed: int) -> SpaceStats:
    """A space drawn uniformly among the eligible ones (the control that shows stage 1's
    choice matters: same rule of enough fitting networks, no MACs ranking)."""
    candidates = stage1.eligible()
    return candidates[int(np.random.default_rng([seed, 7]).integers(len(candidates)))]


def chosen_space(stats: SpaceStats, grid: SpaceGrid) -> SearchSpace:
    return SearchSpace(width_mult=stats.width_mult, resolution=stats.resolution,
                       num_classes=grid.num_classes, in_channels=grid.in_channels)


def parse_space(text: str) -> tuple[float, int]:
    """``W,R`` (e.g. ``0.5,64``) as given to ``--space``."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(f"--space wants WIDTH,RESOLUTION (e.g. 0.5,64), got {text!r}")
    try:
        width, res = float(parts[0]), int(parts[1])
    except ValueError:
        raise ValueError(f"--space wants WIDTH,RESOLUTION (e.g. 0.5,64), got {text!r}") from None
    if width <= 0 or res < MIN_RESOLUTION:
        raise ValueError(f"--space: width must be > 0 and resolution >= {MIN_RESOLUTION}, got {text!r}")
    return width, res


def top_cdf_series(stage1: Stage1Result, k: int = 5) -> Sequence[tuple[str, Sequence[int]]]:
    """(label, sorted fitting MACs) of the ``k`` best spaces, for the CDF plot."""
    return [(f"w{s.width_mult:g}-r{s.resolution} (mean {s.mean_macs / 1e6:.1f}M)", s.fitting_macs)
            for s in stage1.ranked()[:k] if s.fitting]


def dump_table(stage1: Stage1Result) -> str:
    return json.dumps([s.row() for s in stage1.ranked()], indent=1)
