"""Refusals: every reason a model cannot be converted, as one readable line each."""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence


@dataclasses.dataclass(frozen=True)
class Problem:
    """One reason for refusal. `op_index`/`op_name` are None for file-level problems."""

    reason: str
    op_index: Optional[int] = None
    op_name: Optional[str] = None
    tensor: Optional[str] = None

    def __str__(self) -> str:
        where = []
        if self.op_index is not None:
            where.append(f"op {self.op_index} {self.op_name or '?'}")
        if self.tensor is not None:
            where.append(f"tensor '{self.tensor}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.reason}" if prefix else self.reason


class ConversionError(Exception):
    """Raised with every problem found at once; str() is one line per problem."""

    def __init__(self, problems: Sequence[Problem | str] | Problem | str):
        listed = [problems] if isinstance(problems, (Problem, str)) else list(problems)
        self.problems = [p if isinstance(p, Problem) else Problem(p) for p in listed]
        super().__init__("\n".join(str(p) for p in self.problems))
