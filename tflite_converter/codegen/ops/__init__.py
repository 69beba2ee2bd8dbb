"""The op families: each module holds its ops' emitters and their records
(tflite_converter/op_registry.py: reader, refusal rule, spec, emitter, folding). Every module
of this package is imported here, so its records register just by existing: adding an op
family is one file here and touches no table elsewhere."""
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
