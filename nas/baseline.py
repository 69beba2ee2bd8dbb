"""The baseline of the MCUNet paper (Table 2): MobileNetV2 scaled down by a compound rule until
it fits the same SRAM / Flash / latency limits the search had, then trained from scratch.

The compound path (:data:`WIDTH_PATH` and :func:`compound_path`): width multipliers
1.0, 0.75, 0.5, 0.35, 0.25, 0.2, 0.15, 0.1, the i-th paired with the resolution at the same
*relative* position of the resolution grid sorted from largest to smallest (the first width
gets the largest resolution, the last width the smallest). Width and resolution therefore
shrink together, as the paper's scaled MobileNetV2 baselines do, instead of one of them
collapsing while the other stays large. The first (largest) point that fits is the baseline.

:func:`choose_baseline` asks the same memory oracle as the search (the converter's planner),
and imports no TensorFlow; :func:`train_baseline` does.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Sequence

from mcunet_tf.mcunet_configs import mobilenet_v2_spec
from mcunet_tf.network import NetworkSpec
from nas.flash_estimate import estimate_fits
from nas.memory_oracle import MemoryOracle

WIDTH_PATH: tuple[float, ...] = (1.0, 0.75, 0.5, 0.35, 0.25, 0.2, 0.15, 0.1)
RESOLUTION_STEP = 16  # the search space's grid step: resolutions off it are dropped


def compound_path(resolutions: Sequence[int],
                  widths: Sequence[float] = WIDTH_PATH) -> list[tuple[float, int]]:
    """(width, resolution) pairs from the largest to the smallest network, both decreasing
    together: width i of ``widths`` takes the resolution at the same relative position of
    the grid (multiples of 16 of ``resolutions``) sorted from largest to smallest."""
    grid = sorted({int(r) for r in resolutions if int(r) > 0 and int(r) % RESOLUTION_STEP == 0},
                  reverse=True)
    if not grid:
        raise ValueError(f"baseline: no resolution that is a multiple of {RESOLUTION_STEP} in "
                         f"{list(resolutions)}")
    if not widths:
        raise ValueError("baseline: empty width path")
    last_w, last_r = len(widths) - 1, len(grid) - 1
    path = []
    for i, width in enumerate(widths):
        # Same relative position; rounding keeps the ends exact (first -> max, last -> min).
        j = round(i * last_r / last_w) if last_w else 0
        path.append((float(width), grid[j]))
    return path


def mobilenet_v2_network(width_mult: float, resolution: int, num_classes: int,
                         in_channels: int) -> NetworkSpec:
    """MobileNetV2 taking ``in_channels`` input channels (the builder's default is RGB)."""
    spec = mobilenet_v2_spec(width_mult, resolution, num_classes,
                             name=f"mbv2_w{width_mult:g}_r{resolution}")
    return dataclasses.replace(spec, in_channels=int(in_channels))


@dataclasses.dataclass(frozen=True)
class PathPoint:
    """One point of the compound path and what the limits made of it."""

    width_mult: float
    resolution: int
    arena_bytes: int
    flash_bytes: int  # the oracle's weights estimate
    latency_ms: Optional[float]  # measured only when memory fits and a latency limit is set
    fits: bool

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "PathPoint":
        return cls(**dict(config))


@dataclasses.dataclass(frozen=True)
class BaselineChoice:
    """The chosen MobileNetV2 and the compound path that led to it."""

    spec: NetworkSpec
    width_mult: float
    resolution: int
    arena_bytes: int
    flash_bytes: int
    latency_ms: Optional[float]
    limits: dict[str, Optional[float]]
    path: tuple[PathPoint, ...]

    def get_config(self) -> dict[str, Any]:
        return {"width_mult": self.width_mult, "resolution": self.resolution,
                "arena_bytes": self.arena_bytes, "flash_estimate_bytes": self.flash_bytes,
                "latency_ms": self.latency_ms, "limits": dict(self.limits),
                "path": [p.get_config() for p in self.path],
                "spec": self.spec.get_config()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "BaselineChoice":
        return cls(spec=NetworkSpec.from_config(config["spec"]),
                   width_mult=float(config["width_mult"]), resolution=int(config["resolution"]),
                   arena_bytes=int(config["arena_bytes"]),
                   flash_bytes=int(config["flash_estimate_bytes"]),
                   latency_ms=config.get("latency_ms"), limits=dict(config.get("limits", {})),
                   path=tuple(PathPoint.from_config(p) for p in config.get("path", ())))


def choose_baseline(num_classes: int, in_channels: int, resolutions: Sequence[int], *,
                    sram_bytes: int, flash_bytes: int, latency_ms: Optional[float] = None,
                    oracle: Optional[MemoryOracle] = None,
                    latency: Optional[Callable[[NetworkSpec], Optional[float]]] = None,
                    widths: Sequence[float] = WIDTH_PATH) -> BaselineChoice:
    """The largest MobileNetV2 on the compound path (see the module docstring) whose planned
    arena fits ``sram_bytes``, whose weights estimate fits ``flash_bytes`` and, when
    ``latency_ms`` is given, whose ``latency(spec)`` fits it. Raises ValueError when none
    fits."""
    if latency_ms is not None and latency is None:
        raise ValueError("baseline: a latency limit needs a latency(spec) -> ms function")
    oracle = oracle if oracle is not None else MemoryOracle()
    tried: list[PathPoint] = []
    limits = {"sram_bytes": sram_bytes, "flash_bytes": flash_bytes, "latency_ms": latency_ms}
    for width, resolution in compound_path(resolutions, widths):
        spec = mobilenet_v2_network(width, resolution, num_classes, in_channels)
        mem = oracle.profile(spec)
        fits = mem.arena_bytes <= sram_bytes and estimate_fits(mem.flash_estimate_bytes, flash_bytes)
        ms = None
        # Latency is measured only past the memory check: it is the expensive figure.
        if fits and latency_ms is not None:
            if latency is None:
                raise ValueError("a latency limit needs a latency model")
            ms = latency(spec)
            if ms is None:
                raise ValueError(f"the latency model gives no estimate for {spec.name}")
            fits = ms <= latency_ms
        point = PathPoint(width, resolution, mem.arena_bytes, mem.flash_estimate_bytes, ms, fits)
        tried.append(point)
        if fits:
            return BaselineChoice(spec, width, resolution, mem.arena_bytes,
                                  mem.flash_estimate_bytes, ms, limits, tuple(tried))
    smallest_arena = min(p.arena_bytes for p in tried)
    smallest_flash = min(p.flash_bytes for p in tried)
    latency_part = ""
    measured = [p.latency_ms for p in tried if p.latency_ms is not None]
    if latency_ms is not None:
        latency_part = (f", latency {min(measured):.1f} ms > {latency_ms:g} ms" if measured
                        else f", latency limit {latency_ms:g} ms not reached")
    raise ValueError(
        f"no MobileNetV2 on the compound path fits: smallest arena {smallest_arena} B "
        f"(limit {sram_bytes} B), smallest flash {smallest_flash} B (limit {flash_bytes} B)"
        f"{latency_part}")


def train_baseline(spec: NetworkSpec, splits: Any, prepared_train: Any, *, steps: int,
                   batch_size: int, seed: int, progress: bool = True,
                   learning_rate: float = 0.05, warmup_steps: Optional[int] = None) -> Any:
    """``spec`` built as a tf_keras model and trained from scratch on ``prepared_train``
    (the train split already at ``spec.resolution`` with ``spec.in_channels`` channels),
    seeded. ``warmup_steps`` defaults to 5% of the steps (at least one when training):
    from scratch at lr 0.05 a short warm-up keeps the first batches from diverging."""
    from mcunet_tf.keras_builder import build_keras_model
    from mcunet_tf.tf_env import keras
    from nas.training import train_steps

    shape = tuple(prepared_train.image_shape)
    if shape != (spec.resolution, spec.resolution, spec.in_channels):
        raise ValueError(f"baseline: training images are {shape}, the network takes "
                         f"{(spec.resolution, spec.resolution, spec.in_channels)}")
    keras.utils.set_random_seed(seed)
    model = build_keras_model(spec)
    if warmup_steps is None:
        warmup_steps = max(1, steps // 20) if steps > 1 else 0
    train_steps(model, prepared_train, splits.flip, steps, batch_size, seed,
                learning_rate=learning_rate, warmup_steps=warmup_steps, progress=progress,
                desc=f"training the baseline {spec.name or 'MobileNetV2'}")
    return model


__all__ = ["WIDTH_PATH", "compound_path", "mobilenet_v2_network", "PathPoint", "BaselineChoice",
           "choose_baseline", "train_baseline"]
