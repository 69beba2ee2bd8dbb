"""The .tflite files a per-model benchmark walks: every one in the given folders, by name."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

from tflite_converter.errors import ConversionError
from tflite_converter.pipeline import CompiledModel, compile_model


def tflite_files(dirs: Sequence[Path]) -> list[Path]:
    """The .tflite files of `dirs` (missing folders skipped), sorted within each folder;
    says so on stdout when there are none."""
    paths = [p for d in dirs if d.is_dir() for p in sorted(d.glob("*.tflite"))]
    if not paths:
        print(f"no models under {', '.join(map(str, dirs))}")
    return paths


def compiled_models(paths: Sequence[Path], **compile_kwargs: Any) -> Iterator[tuple[Path, CompiledModel]]:
    """(path, pipeline.compile_model(path, **compile_kwargs)) of every model that converts;
    the converter's refusals are skipped (the compare benchmark reports them)."""
    for path in paths:
        try:
            yield path, compile_model(path, **compile_kwargs)
        except ConversionError:
            continue
