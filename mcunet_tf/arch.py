"""The MCUNet search space: :class:`SearchSpace` and its points, :class:`ArchConfig`.

MCUNet's backbone (NeurIPS'20, after OFA / ProxylessNAS):

* a 3x3 stride-2 stem convolution (``stem_width`` x width multiplier channels);
* a fixed first MBConv: 3x3 depthwise, expand ratio 1 (``first_block_width`` x w channels);
* six stages with base widths [24, 40, 80, 96, 192, 320] and strides [2, 2, 2, 1, 2, 1];
  each has up to 4 blocks (the last exactly 1); a stage's first block carries its stride;
* every searchable block picks a kernel size in {3, 5, 7} and an expand ratio in {3, 4, 5, 6};
  every stage (but the last) picks a depth in {2, 3, 4};
* an identity shortcut iff stride 1 and equal channel counts;
* global average pooling and a linear classifier.

Channel counts are ``make_divisible(base * width_mult, 8)``; a block's hidden width is
``make_divisible(round(in_channels * expand_ratio), 8)`` as in MCUNet's supernet.

A :class:`SearchSpace` is one (width multiplier, resolution) pair -- the unit TinyNAS stage 1
chooses among; an :class:`ArchConfig` is one sub-network in it. Genes for every block *slot*
(``sum(max_depths)`` of them) are kept even when a stage uses fewer blocks: slots beyond a
stage's depth are ignored when building, but the weight-sharing supernet keeps them.

No TensorFlow import here: the search and the profile run without it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from mcunet_tf.network import Activation, BlockSpec, ConvSpec, NetworkSpec


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` the way MCUNet/MobileNet do.

    Never below ``min_value`` (default ``divisor``); if rounding down lost more than 10% of
    ``v``, one more ``divisor`` is added back.
    """
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * v:
        rounded += divisor
    return int(rounded)


def _as_int_tuple(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


@dataclass(frozen=True)
class SearchSpace:
    """MCUNet's search space at one width multiplier and one input resolution."""

    width_mult: float
    resolution: int
    base_widths: tuple[int, ...] = (24, 40, 80, 96, 192, 320)
    strides: tuple[int, ...] = (2, 2, 2, 1, 2, 1)
    max_depths: tuple[int, ...] = (4, 4, 4, 4, 4, 1)
    kernel_choices: tuple[int, ...] = (3, 5, 7)
    expand_choices: tuple[int, ...] = (3, 4, 5, 6)
    depth_choices: tuple[int, ...] = (2, 3, 4)
    stem_width: int = 32
    first_block_width: int = 16
    num_classes: int = 1000
    in_channels: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "width_mult", float(self.width_mult))
        object.__setattr__(self, "resolution", int(self.resolution))
        for name in ("base_widths", "strides", "max_depths", "kernel_choices",
                     "expand_choices", "depth_choices"):
            object.__setattr__(self, name, _as_int_tuple(getattr(self, name)))
        if self.width_mult <= 0:
            raise ValueError(f"SearchSpace: width_mult must be > 0, got {self.width_mult}")
        if self.resolution <= 0:
            raise ValueError(f"SearchSpace: resolution must be > 0, got {self.resolution}")
        if not (len(self.base_widths) == len(self.strides) == len(self.max_depths)):
            raise ValueError(
                "SearchSpace: base_widths, strides and max_depths need one entry per stage "
                f"(got {len(self.base_widths)}, {len(self.strides)}, {len(self.max_depths)})"
            )
        for name in ("kernel_choices", "expand_choices", "depth_choices"):
            if not getattr(self, name):
                raise ValueError(f"SearchSpace: {name} is empty")
        if any(k % 2 == 0 for k in self.kernel_choices):
            raise ValueError(
                f"SearchSpace: kernel sizes must be odd (MCUNet pads k//2), got "
                f"{self.kernel_choices}"
            )

    # ----------------------------------------------------------------- structure
    @property
    def num_stages(self) -> int:
        return len(self.base_widths)

    @property
    def num_block_slots(self) -> int:
        return sum(self.max_depths)

    def stage_slot_offsets(self) -> tuple[int, ...]:
        """Index of each stage's first block slot."""
        offsets, total = [], 0
        for depth in self.max_depths:
            offsets.append(total)
            total += depth
        return tuple(offsets)

    def allowed_depths(self, stage: int) -> tuple[int, ...]:
        """Depth choices of a stage: those within its max depth, else exactly its max depth.

        This is how the last stage (max depth 1) comes out fixed at 1, as in MCUNet.
        """
        max_depth = self.max_depths[stage]
        allowed = tuple(d for d in self.depth_choices if d <= max_depth)
        return allowed if allowed else (max_depth,)

    def stem_channels(self) -> int:
        return make_divisible(self.stem_width * self.width_mult)

    def first_block_channels(self) -> int:
        return make_divisible(self.first_block_width * self.width_mult)

    def stage_channels(self) -> tuple[int, ...]:
        return tuple(make_divisible(w * self.width_mult) for w in self.base_widths)

    # ----------------------------------------------------------------- sampling
    def _make(self, kernels: Sequence[int], expands: Sequence[int],
              depths: Sequence[int]) -> "ArchConfig":
        return ArchConfig(
            resolution=self.resolution,
            width_mult=self.width_mult,
            kernel_sizes=tuple(int(k) for k in kernels),
            expand_ratios=tuple(int(e) for e in expands),
            depths=tuple(int(d) for d in depths),
            num_classes=self.num_classes,
            space=self,
        )

    def sample(self, rng: np.random.Generator) -> "ArchConfig":
        """A uniformly random sub-network (every slot's genes drawn, used or not)."""
        n = self.num_block_slots
        kernels = [self.kernel_choices[i] for i in rng.integers(len(self.kernel_choices), size=n)]
        expands = [self.expand_choices[i] for i in rng.integers(len(self.expand_choices), size=n)]
        depths = []
        for stage in range(self.num_stages):
            allowed = self.allowed_depths(stage)
            depths.append(allowed[int(rng.integers(len(allowed)))])
        return self._make(kernels, expands, depths)

    def largest(self) -> "ArchConfig":
        n = self.num_block_slots
        return self._make(
            [max(self.kernel_choices)] * n,
            [max(self.expand_choices)] * n,
            [max(self.allowed_depths(s)) for s in range(self.num_stages)],
        )

    def smallest(self) -> "ArchConfig":
        n = self.num_block_slots
        return self._make(
            [min(self.kernel_choices)] * n,
            [min(self.expand_choices)] * n,
            [min(self.allowed_depths(s)) for s in range(self.num_stages)],
        )

    def mutate(self, cfg: "ArchConfig", rng: np.random.Generator,
               prob: float = 0.1) -> "ArchConfig":
        """Re-draw each gene independently with probability ``prob``.

        One uniform draw is consumed per gene whether it mutates or not, so the stream of
        random numbers -- and hence the result for a given seed -- does not depend on which
        genes happened to mutate earlier.
        """
        self._require(cfg)
        kernels = list(cfg.kernel_sizes)
        expands = list(cfg.expand_ratios)
        depths = list(cfg.depths)
        for i in range(self.num_block_slots):
            if rng.random() < prob:
                kernels[i] = self.kernel_choices[int(rng.integers(len(self.kernel_choices)))]
            if rng.random() < prob:
                expands[i] = self.expand_choices[int(rng.integers(len(self.expand_choices)))]
        for stage in range(self.num_stages):
            if rng.random() < prob:
                allowed = self.allowed_depths(stage)
                depths[stage] = allowed[int(rng.integers(len(allowed)))]
        return self._make(kernels, expands, depths)

    def crossover(self, a: "ArchConfig", b: "ArchConfig",
                  rng: np.random.Generator) -> "ArchConfig":
        """Uniform crossover: every gene comes from ``a`` or ``b`` with equal chance."""
        self._require(a)
        self._require(b)

        def pick(x: Sequence[int], y: Sequence[int]) -> list[int]:
            take_x = rng.random(len(x)) < 0.5
            return [xi if t else yi for xi, yi, t in zip(x, y, take_x)]

        return self._make(
            pick(a.kernel_sizes, b.kernel_sizes),
            pick(a.expand_ratios, b.expand_ratios),
            pick(a.depths, b.depths),
        )

    def contains(self, cfg: "ArchConfig") -> bool:
        """Whether ``cfg`` is a point of this space (same backbone, legal genes)."""
        if cfg.space != self:
            return False
        return (
            len(cfg.kernel_sizes) == self.num_block_slots
            and len(cfg.expand_ratios) == self.num_block_slots
            and len(cfg.depths) == self.num_stages
            and all(k in self.kernel_choices for k in cfg.kernel_sizes)
            and all(e in self.expand_choices for e in cfg.expand_ratios)
            and all(d in self.allowed_depths(s) for s, d in enumerate(cfg.depths))
        )

    def _require(self, cfg: "ArchConfig") -> None:
        if not self.contains(cfg):
            raise ValueError(f"ArchConfig is not in this search space: {cfg.to_json()}")

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SearchSpace":
        known = {f.name for f in fields(cls)}
        unknown = set(config) - known
        if unknown:
            raise ValueError(f"SearchSpace.from_config: unknown keys {sorted(unknown)}")
        return cls(**dict(config))


# to_network runs for every candidate the search profiles: the backbone's channel counts and
# the (frozen, so shareable) layer specs are made once per distinct value.
@functools.lru_cache(maxsize=256)
def _backbone(space: SearchSpace) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    """Stem channels, first block channels, stage channels and stage slot offsets."""
    return space.stem_channels(), space.first_block_channels(), space.stage_channels(), space.stage_slot_offsets()


@functools.lru_cache(maxsize=1 << 14, typed=True)
def _block_spec(channels: int, width: int, expand: int, kernel: int, stride: int) -> BlockSpec:
    """The MBConv block of the space from `channels` to `width` channels: hidden width
    ``make_divisible(round(channels * expand))``, identity shortcut iff stride 1 and equal
    channel counts, ReLU6."""
    return BlockSpec(
        in_channels=channels,
        out_channels=width,
        mid_channels=make_divisible(round(channels * expand)),
        kernel_size=kernel,
        stride=stride,
        expand_ratio=expand,
        residual=stride == 1 and channels == width,
        act=Activation.RELU6,
    )


@functools.lru_cache(maxsize=256)
def _stem_spec(channels: int) -> ConvSpec:
    return ConvSpec(out_channels=channels, kernel=3, stride=2, act=Activation.RELU6)


@dataclass(frozen=True)
class ArchConfig:
    """One sub-network of an MCUNet :class:`SearchSpace`.

    ``kernel_sizes`` and ``expand_ratios`` have one entry per block slot
    (``space.num_block_slots``), ``depths`` one per stage. ``space`` defaults to MCUNet's
    backbone at this ``width_mult`` / ``resolution`` / ``num_classes``; when given it must
    agree with them. Construction checks lengths but not choices (see
    :meth:`SearchSpace.contains`), so configurations outside the choice sets can still be
    described and profiled.
    """

    resolution: int
    width_mult: float
    kernel_sizes: tuple[int, ...]
    expand_ratios: tuple[int, ...]
    depths: tuple[int, ...]
    num_classes: int = 1000
    space: SearchSpace | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "resolution", int(self.resolution))
        object.__setattr__(self, "width_mult", float(self.width_mult))
        object.__setattr__(self, "num_classes", int(self.num_classes))
        for name in ("kernel_sizes", "expand_ratios", "depths"):
            object.__setattr__(self, name, _as_int_tuple(getattr(self, name)))
        space = self.space
        if space is None:
            space = SearchSpace(width_mult=self.width_mult, resolution=self.resolution,
                                num_classes=self.num_classes)
            object.__setattr__(self, "space", space)
        if (space.width_mult, space.resolution, space.num_classes) != (
                self.width_mult, self.resolution, self.num_classes):
            raise ValueError(
                "ArchConfig: width_mult/resolution/num_classes "
                f"({self.width_mult}, {self.resolution}, {self.num_classes}) disagree with its "
                f"space ({space.width_mult}, {space.resolution}, {space.num_classes})"
            )
        if len(self.kernel_sizes) != space.num_block_slots:
            raise ValueError(f"ArchConfig: {len(self.kernel_sizes)} kernel sizes for "
                             f"{space.num_block_slots} block slots")
        if len(self.expand_ratios) != space.num_block_slots:
            raise ValueError(f"ArchConfig: {len(self.expand_ratios)} expand ratios for "
                             f"{space.num_block_slots} block slots")
        if len(self.depths) != space.num_stages:
            raise ValueError(f"ArchConfig: {len(self.depths)} depths for "
                             f"{space.num_stages} stages")
        for stage, (depth, max_depth) in enumerate(zip(self.depths, space.max_depths)):
            if not 1 <= depth <= max_depth:
                raise ValueError(f"ArchConfig: stage {stage} depth {depth} outside "
                                 f"1..{max_depth}")
        if any(k % 2 == 0 or k <= 0 for k in self.kernel_sizes):
            raise ValueError(f"ArchConfig: kernel sizes must be odd and positive, got "
                             f"{self.kernel_sizes}")
        if any(e <= 0 for e in self.expand_ratios):
            raise ValueError(f"ArchConfig: expand ratios must be positive, got "
                             f"{self.expand_ratios}")

    @property
    def active_slots(self) -> tuple[int, ...]:
        """Indices of the block slots the network really uses, in order."""
        assert self.space is not None
        return tuple(
            offset + i
            for offset, depth in zip(self.space.stage_slot_offsets(), self.depths)
            for i in range(depth)
        )

    def to_network(self, name: str = "") -> NetworkSpec:
        """The explicit layer-level network of this configuration."""
        space = self.space
        assert space is not None
        stem, first, widths, offsets = _backbone(space)
        blocks = [_block_spec(stem, first, 1, 3, 1)]
        channels = first
        kernels, expands, strides = self.kernel_sizes, self.expand_ratios, space.strides
        for stage, width in enumerate(widths):
            slot = offsets[stage]
            for i in range(self.depths[stage]):
                blocks.append(_block_spec(channels, width, expands[slot + i], kernels[slot + i],
                                          strides[stage] if i == 0 else 1))
                channels = width
        return NetworkSpec(
            resolution=self.resolution,
            in_channels=space.in_channels,
            first_conv=_stem_spec(stem),
            blocks=tuple(blocks),
            feature_mix=None,
            num_classes=self.num_classes,
            name=name,
        )

    # ----------------------------------------------------------------- config
    def get_config(self) -> dict[str, Any]:
        assert self.space is not None
        return {
            "resolution": self.resolution,
            "width_mult": self.width_mult,
            "kernel_sizes": list(self.kernel_sizes),
            "expand_ratios": list(self.expand_ratios),
            "depths": list(self.depths),
            "num_classes": self.num_classes,
            "space": self.space.get_config(),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ArchConfig":
        space_cfg = config.get("space")
        return cls(
            resolution=config["resolution"],
            width_mult=config["width_mult"],
            kernel_sizes=tuple(config["kernel_sizes"]),
            expand_ratios=tuple(config["expand_ratios"]),
            depths=tuple(config["depths"]),
            num_classes=config.get("num_classes", 1000),
            space=None if space_cfg is None else SearchSpace.from_config(space_cfg),
        )

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.get_config(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "ArchConfig":
        return cls.from_config(json.loads(text))


def is_arch_config(config: Mapping[str, Any]) -> bool:
    """Whether a parsed JSON object looks like :meth:`ArchConfig.get_config` output."""
    return {"kernel_sizes", "expand_ratios", "depths", "width_mult", "resolution"} <= set(config)
