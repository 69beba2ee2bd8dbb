"""The .tflite files a per-model benchmark walks: every one in the given folders, by name."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def tflite_files(dirs: Sequence[Path]) -> list[Path]:
    """The .tflite files of `dirs` (missing folders skipped), sorted within each folder;
    says so on stdout when there are none."""
    paths = [p for d in dirs if d.is_dir() for p in sorted(d.glob("*.tflite"))]
    if not paths:
        print(f"no models under {', '.join(map(str, dirs))}")
    return paths
