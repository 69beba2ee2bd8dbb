"""Per-op emitters. Every module of this package is imported here, so each registers its
`@emitter(OpKind.X)` functions in `codegen.api.EMITTERS` just by existing: emitter authors
add a file and touch nothing else."""
from __future__ import annotations

import importlib
import pkgutil


def _import_all() -> list[str]:
    names = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{info.name}")
        names.append(info.name)
    return names


LOADED: list[str] = _import_all()
