"""Catalogue of the engine's C kernel sources: which exist, what they include, copying them.

A kernel is named by its stem: `engine/kernels/<stem>.c`. Generated models `#include` the
kernel `.c` files into their own translation unit (so every kernel function is `static`,
see `MCU_KERNEL` in `mcu_common.h`), which means a model folder needs the `.c` files of the
kernels it calls plus every header or source they reach through `#include "..."`. Those
local includes are found by reading the sources, so kernel authors only add files.

This module is part of `engine` and imports nothing from `tflite_converter`.
"""
from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Iterable

KERNELS_DIR = Path(__file__).resolve().parent / "kernels"
RUNTIME_DIR = Path(__file__).resolve().parent / "runtime"

# The header every kernel shares; always copied so generated code can rely on it.
COMMON_HEADER = "mcu_common.h"

_LOCAL_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


class UnknownKernelError(KeyError):
    """A kernel stem with no source file under engine/kernels/."""


@dataclasses.dataclass(frozen=True)
class KernelSource:
    stem: str
    path: Path

    def local_includes(self) -> tuple[str, ...]:
        """File names this source includes with `#include "..."` (relative to kernels/)."""
        return tuple(_LOCAL_INCLUDE.findall(self.path.read_text()))


def available_kernels(kernels_dir: Path = KERNELS_DIR) -> dict[str, KernelSource]:
    """Every kernel source present now, by stem."""
    if not kernels_dir.is_dir():
        return {}
    return {p.stem: KernelSource(p.stem, p) for p in sorted(kernels_dir.glob("*.c"))}


def kernel_source(stem: str, kernels_dir: Path = KERNELS_DIR) -> KernelSource:
    path = kernels_dir / f"{stem}.c"
    if not path.is_file():
        raise UnknownKernelError(f"no kernel source engine/kernels/{stem}.c")
    return KernelSource(stem, path)


def closure(stems: Iterable[str], kernels_dir: Path = KERNELS_DIR) -> list[str]:
    """File names (relative to kernels/) needed by these kernels: their `.c` files, every
    file they include transitively, and mcu_common.h. Sorted for reproducible output."""
    needed: set[str] = set()
    stack = [f"{kernel_source(s, kernels_dir).stem}.c" for s in stems]
    if (kernels_dir / COMMON_HEADER).is_file():
        stack.append(COMMON_HEADER)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        path = kernels_dir / name
        if not path.is_file():
            raise UnknownKernelError(f"engine/kernels/{name} is included but does not exist")
        needed.add(name)
        stack.extend(_LOCAL_INCLUDE.findall(path.read_text()))
    return sorted(needed)


def copy_kernels(stems: Iterable[str], dest: Path, kernels_dir: Path = KERNELS_DIR) -> list[str]:
    """Copy the kernels' closure into `dest` (created); return the copied file names."""
    files = closure(stems, kernels_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(kernels_dir / name, target)
    return files


def runtime_source(name: str) -> Path:
    """A harness source of engine/runtime/ (host runner, Cortex-M startup, ...)."""
    path = RUNTIME_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"no runtime source engine/runtime/{name}")
    return path
