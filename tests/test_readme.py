"""The README's supported-operator table is the converter's: every op with a C emitter is
listed, and nothing is listed that has none (or is not folded away at conversion)."""
from __future__ import annotations

import re

from conftest import REPO_ROOT

from tflite_converter import op_registry


def _readme_ops() -> set[str]:
    text = (REPO_ROOT / "README.md").read_text()
    table = text[text.index("## Supported operators"):text.index("## Benchmarking")]
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| op ") and not line.startswith("|---"):
            names.update(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", line.split("|")[1]))
    return names


def test_readme_lists_exactly_the_supported_ops():
    listed = _readme_ops()
    # emitted, or folded by the passes; the converter's own ops are no file's
    supported = {k.value for k, r in op_registry.records().items() if not r.internal}
    assert listed == supported, (f"missing from README: {sorted(supported - listed)}; "
                                 f"listed without support: {sorted(listed - supported)}")
