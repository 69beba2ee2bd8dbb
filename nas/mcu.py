"""Microcontroller profiles: the SRAM / Flash budgets a network must fit, and the clock.

The four boards of the MCUNet paper (/shared/ENVIRONMENT.md). SRAM and Flash are in bytes
with 1 KB = 1024 B, as MCUNet counts them. `qemu_cpu` is the core the engine's emulator runs
for that board (engine.qemu: mps2-an386 for Cortex-M4, mps2-an500 for Cortex-M7);
`clock_hz` is the maximum core clock of the part (ST's data sheets), used to turn a cycle
estimate into milliseconds.

What the search may give the network is less than the part's memory: the deployed program
needs room beside the model (:class:`Reserve`).

- SRAM: the model's arena is all the generated C allocates, but the firmware also needs the
  main stack (the generated ``invoke`` and its kernels run on it), the C runtime's ``.data``
  / ``.bss`` and the application's own state. ``DEFAULT_RESERVE`` keeps 16 KiB for that.
- Flash: the oracle counts weights and requantisation parameters; the kernels' code, the
  start-up code, the vector table and the C library come on top. ``DEFAULT_RESERVE`` keeps
  64 KiB for code (the linked Cortex-M images of the searched models, harness and newlib
  stdio included, are measured at the end of every search run and reported against the
  limit, so the reserve is checked, not trusted).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

KB = 1024


@dataclasses.dataclass(frozen=True)
class McuProfile:
    name: str
    core: str
    sram_bytes: int
    flash_bytes: int
    qemu_cpu: str
    clock_hz: int

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "McuProfile":
        return cls(**dict(config))


@dataclasses.dataclass(frozen=True)
class Reserve:
    """Bytes kept back from the part's SRAM and Flash for the rest of the firmware."""

    sram_bytes: int = 16 * KB
    flash_bytes: int = 64 * KB

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Reserve":
        return cls(**dict(config))


DEFAULT_RESERVE = Reserve()

PROFILES: dict[str, McuProfile] = {
    p.name: p
    for p in (
        McuProfile("stm32f412", "Cortex-M4 @100 MHz", 256 * KB, 1024 * KB, "cortex-m4", 100_000_000),
        McuProfile("stm32f746", "Cortex-M7 @216 MHz", 320 * KB, 1024 * KB, "cortex-m7", 216_000_000),
        McuProfile("stm32f765", "Cortex-M7 @216 MHz", 512 * KB, 1024 * KB, "cortex-m7", 216_000_000),
        McuProfile("stm32h743", "Cortex-M7 @480 MHz", 512 * KB, 2048 * KB, "cortex-m7", 480_000_000),
    )
}


def get_profile(name: str) -> McuProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown MCU '{name}': known are {', '.join(sorted(PROFILES))}") from None
