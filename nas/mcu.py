"""Microcontroller profiles: the SRAM / Flash budgets a network must fit.

The four boards of the MCUNet paper (/shared/ENVIRONMENT.md). SRAM and Flash are in bytes
with 1 KB = 1024 B, as MCUNet counts them. `qemu_cpu` is the core the engine's emulator runs
for that board (engine.qemu: mps2-an386 for Cortex-M4, mps2-an500 for Cortex-M7).
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

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "McuProfile":
        return cls(**dict(config))


PROFILES: dict[str, McuProfile] = {
    p.name: p
    for p in (
        McuProfile("stm32f412", "Cortex-M4", 256 * KB, 1024 * KB, "cortex-m4"),
        McuProfile("stm32f746", "Cortex-M7 @216 MHz", 320 * KB, 1024 * KB, "cortex-m7"),
        McuProfile("stm32f765", "Cortex-M7", 512 * KB, 1024 * KB, "cortex-m7"),
        McuProfile("stm32h743", "Cortex-M7", 512 * KB, 2048 * KB, "cortex-m7"),
    )
}


def get_profile(name: str) -> McuProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown MCU '{name}': known are {', '.join(sorted(PROFILES))}") from None
