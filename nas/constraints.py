"""What a candidate network must fit, and how the search measures it.

:class:`Limits` are the budget the search gives the network: the part's SRAM and Flash less
what the rest of the firmware needs (:class:`nas.mcu.Reserve`), and an optional latency.
:class:`CandidateMeter` measures a candidate with the same tools the deployed C is judged
by: peak SRAM from the converter's own memory planner (:class:`nas.memory_oracle.MemoryOracle`,
the arena the generated code allocates), Flash from the oracle's count of weights and
requantisation parameters, latency from the QEMU-calibrated model of our kernels
(:mod:`nas.latency`), MACs from MCUNet's analytic profile. No TensorFlow here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Union

from mcunet_tf.arch import ArchConfig
from mcunet_tf.network import NetworkSpec
from mcunet_tf.profile import profile
from nas.flash_estimate import estimate_fits
from nas.mcu import DEFAULT_RESERVE, McuProfile, Reserve
from nas.memory_oracle import MemoryOracle

Candidate = Union[ArchConfig, NetworkSpec]
LatencyFn = Callable[[NetworkSpec], float]  # milliseconds at the MCU's clock


@dataclasses.dataclass(frozen=True)
class Limits:
    """The network's budget (bytes, milliseconds); ``latency_ms`` None means unlimited."""

    sram_bytes: int
    flash_bytes: int
    latency_ms: Optional[float] = None

    @classmethod
    def for_mcu(cls, mcu: McuProfile, reserve: Reserve = DEFAULT_RESERVE,
                sram_kb: Optional[float] = None, flash_kb: Optional[float] = None,
                latency_ms: Optional[float] = None) -> "Limits":
        """Explicit limits (KiB) override the part's memory; the reserve applies only to the
        part's own figures (an explicit limit is what the user gives the network)."""
        sram = int(sram_kb * 1024) if sram_kb is not None else mcu.sram_bytes - reserve.sram_bytes
        flash = int(flash_kb * 1024) if flash_kb is not None else mcu.flash_bytes - reserve.flash_bytes
        return cls(sram, flash, latency_ms)

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Limits":
        return cls(**dict(config))

    def describe(self) -> str:
        text = f"SRAM {self.sram_bytes / 1024:.1f} KiB, Flash {self.flash_bytes / 1024:.1f} KiB"
        return text + (f", latency {self.latency_ms:g} ms" if self.latency_ms is not None else "")


@dataclasses.dataclass(frozen=True)
class Fit:
    """A candidate's measured figures."""

    arena_bytes: int
    flash_bytes: int
    macs: int
    latency_ms: Optional[float] = None

    def within(self, limits: Limits) -> bool:
        if self.arena_bytes > limits.sram_bytes or not estimate_fits(self.flash_bytes, limits.flash_bytes):
            return False
        if limits.latency_ms is None:
            return True
        return self.latency_ms is not None and self.latency_ms <= limits.latency_ms

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Fit":
        return cls(**dict(config))


class CandidateMeter:
    """Measures candidates: planner arena, Flash estimate, MACs and (optionally) latency.

    ``latency`` is needed only when the limits have a latency; without it ``latency_ms`` is
    None. Results are cached by network.
    """

    def __init__(self, oracle: Optional[MemoryOracle] = None,
                 latency: Optional[LatencyFn] = None) -> None:
        self.oracle = oracle or MemoryOracle()
        self.latency = latency
        self._cache: dict[NetworkSpec, Fit] = {}

    def measure(self, candidate: Candidate) -> Fit:
        spec = candidate.to_network() if isinstance(candidate, ArchConfig) else candidate
        fit = self._cache.get(spec)
        if fit is None:
            memory = self.oracle.profile(spec)
            # patch-based execution recomputes its halos: MACs and the latency estimate grow by
            # that share (the latency then under-estimates: the Cortex-M7 runs measured 1.03-1.59x
            # the instructions for 1.4-24.9 % more MACs, benchmarks.patch_arena --qemu)
            scale = 1.0 + memory.macs_overhead
            latency = None if self.latency is None else float(self.latency(spec)) * scale
            fit = Fit(memory.arena_bytes, memory.flash_estimate_bytes, round(profile(spec).macs * scale), latency)
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[spec] = fit
        return fit
