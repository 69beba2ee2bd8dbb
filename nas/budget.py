"""How much work a search does: the presets behind ``--budget=smoke|default|full``.

Sized for where each runs: ``smoke`` (about 3 minutes on 2 CPU cores, what the tests run),
``default`` (about 15 minutes on 2 CPU cores on the embedded digits; a laptop), ``full`` (a
GPU machine or a cluster, with ``--strategy=mirrored`` or ``multi_worker``: MCUNet-sized
sampling, supernet training and evolution). Every figure can be overridden by its own flag.

Training budget: the searched network gets ``supernet_steps`` steps of supernet training
(plus the sub-networks trained inside each elastic step) and then ``finetune_steps`` steps
of its own; the ``--baseline`` MobileNetV2 is trained from scratch for the same number of
steps of the same batch size (``training_steps``), i.e. it sees as many images.
At ``default``'s one epoch or so, more than half of the steps go to the chosen network's own
fine-tuning: the supernet only has to rank candidates, and on Fashion-MNIST 200 + 200 supernet
steps and 500 of fine-tuning gave 82.9% where 300 + 300 and 300 gave 81.3% (same total, same
machine, both at the fine-tune's lr 0.05).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class Budget:
    name: str
    # stage 1
    samples_per_space: int
    widths: tuple[float, ...]
    max_resolution: int
    # supernet
    batch_size: int
    largest_steps: int
    elastic_steps: int
    num_subnets: int
    # stage 2
    population: int
    generations: int
    calibration_images: int  # BN recalibration per candidate
    eval_images: int  # held-out images per candidate accuracy
    # the chosen network
    finetune_steps: int
    qat_steps: int
    verify_images: int  # held-out inputs checked byte for byte against TFLM
    qemu_images: int

    @property
    def supernet_steps(self) -> int:
        return self.largest_steps + self.elastic_steps

    @property
    def training_steps(self) -> int:
        """Steps of ``batch_size`` images the searched network is trained for in all."""
        return self.supernet_steps + self.finetune_steps

    def get_config(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["widths"] = list(self.widths)
        return out

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Budget":
        values = dict(config)
        values["widths"] = tuple(values["widths"])
        return cls(**values)

    def replace(self, **changes: Any) -> "Budget":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


BUDGETS: dict[str, Budget] = {b.name: b for b in (
    Budget("smoke", samples_per_space=100, widths=(0.2, 0.3, 0.4, 0.5), max_resolution=48,
           batch_size=32, largest_steps=40, elastic_steps=40, num_subnets=2,
           population=16, generations=3, calibration_images=64, eval_images=200,
           finetune_steps=40, qat_steps=20, verify_images=50, qemu_images=2),
    Budget("default", samples_per_space=1000, widths=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
           max_resolution=96, batch_size=64, largest_steps=200, elastic_steps=200, num_subnets=3,
           population=100, generations=6, calibration_images=200, eval_images=500,
           finetune_steps=500, qat_steps=150, verify_images=200, qemu_images=5),
    Budget("full", samples_per_space=1000, widths=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
           max_resolution=224, batch_size=256, largest_steps=20000, elastic_steps=40000,
           num_subnets=4, population=100, generations=30, calibration_images=2000,
           eval_images=10000, finetune_steps=20000, qat_steps=3000, verify_images=1000,
           qemu_images=10),
)}


def get_budget(name: str) -> Budget:
    try:
        return BUDGETS[name]
    except KeyError:
        raise ValueError(f"unknown budget {name!r}: known are {', '.join(BUDGETS)}") from None
