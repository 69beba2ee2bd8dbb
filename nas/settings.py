"""The settings of one search run, checked before any work starts.

Everything the command line can say, as one typed value that is saved with the run
(``run_config.json``): ``--resume`` continues only a run with the same settings, and two
runs with the same settings give the same ``arch.json``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from nas.budget import Budget
from nas.constraints import Limits
from nas.mcu import McuProfile, Reserve
from tflite_converter.patch import PatchSetting


class SearchInputError(ValueError):
    """A bad input, explained in one line (the command exits with status 2)."""


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    mcu: McuProfile
    limits: Limits
    reserve: Reserve
    budget: Budget
    dataset: str
    data_dir: Optional[str]
    seed: int = 0
    space: str = "search"  # "search" (stage 1), "random" (a random fitting space), or "W,R"
    baseline: bool = False
    quantization: str = "qat"  # or "ptq"
    strategy: str = "default"
    qemu: bool = True
    # MCUNetV2's joint search: candidates over the SRAM limit layer by layer are profiled (and
    # the winner deployed) with patch-based inference of their first stage
    patch: bool = False

    def get_config(self) -> dict[str, Any]:
        return {"mcu": self.mcu.get_config(), "limits": self.limits.get_config(),
                "reserve": self.reserve.get_config(), "budget": self.budget.get_config(),
                "dataset": self.dataset, "data_dir": self.data_dir, "seed": self.seed,
                "space": self.space, "baseline": self.baseline,
                "quantization": self.quantization, "strategy": self.strategy, "qemu": self.qemu,
                "patch": self.patch}

    def patch_setting(self) -> Optional[PatchSetting]:
        """The converter's `--patch` for this run: auto under the SRAM limit, or None."""
        return PatchSetting("auto", sram_limit=self.limits.sram_bytes) if self.patch else None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SearchSettings":
        c = dict(config)
        return cls(McuProfile.from_config(c.pop("mcu")), Limits.from_config(c.pop("limits")),
                   Reserve.from_config(c.pop("reserve")), Budget.from_config(c.pop("budget")), **c)

    def result_defining(self) -> dict[str, Any]:
        """What decides the result: a resumed run must agree on all of it (``strategy`` and
        ``qemu`` change how, not what)."""
        config = self.get_config()
        config.pop("strategy")
        config.pop("qemu")
        return config
