"""Small helpers that turn Python values into C99 source text.

Kept apart from the generator so every emitter formats literals the same way: integers that
are valid C for their type (INT32_MIN cannot be written as a plain negative literal), floats
written exactly (C99 hexadecimal floating constants), identifiers made safe.
"""
from __future__ import annotations

import re

import numpy as np

# numpy dtype -> C type of the array element
C_TYPES: dict[np.dtype, str] = {
    np.dtype(np.int8): "int8_t",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.int16): "int16_t",
    np.dtype(np.uint16): "uint16_t",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.uint32): "uint32_t",
    np.dtype(np.int64): "int64_t",
    np.dtype(np.float32): "float",
    np.dtype(np.bool_): "uint8_t",
}

# C type -> numpy dtype (to cast values an emitter hands over as another dtype)
NP_TYPES: dict[str, np.dtype] = {
    "int8_t": np.dtype(np.int8),
    "uint8_t": np.dtype(np.uint8),
    "int16_t": np.dtype(np.int16),
    "uint16_t": np.dtype(np.uint16),
    "int32_t": np.dtype(np.int32),
    "uint32_t": np.dtype(np.uint32),
    "int64_t": np.dtype(np.int64),
    "float": np.dtype(np.float32),
}

_VALUES_PER_LINE = {1: 24, 2: 16, 4: 10, 8: 6}


def c_type_of(dtype: np.dtype) -> str:
    try:
        return C_TYPES[np.dtype(dtype)]
    except KeyError:
        raise ValueError(f"no C type for numpy dtype {dtype}") from None


# A C identifier (C99 6.4.2.1, the basic character set): the one rule identifier() makes and
# is_identifier() checks.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_identifier(text: str, max_len: int | None = None) -> bool:
    """Whether `text` is a C identifier (of at most `max_len` characters)."""
    return bool(_IDENTIFIER.fullmatch(text)) and (max_len is None or len(text) <= max_len)


def identifier(text: str) -> str:
    """A valid C identifier made from arbitrary text (tensor names contain '/', ':' ...)."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", text)
    ident = re.sub(r"_+", "_", ident).strip("_") or "x"
    return f"_{ident}" if ident[0].isdigit() else ident


def int_literal(value: int, c_type: str = "int32_t") -> str:
    """An integer constant valid in C99 for `c_type` (handles the most negative value)."""
    value = int(value)
    if c_type in ("int64_t", "uint64_t"):
        suffix = "ULL" if c_type == "uint64_t" else "LL"
        if value == -(2**63):
            return "(-9223372036854775807LL - 1)"
        return f"{value}{suffix}"
    if value == -(2**31):
        return "(-2147483647 - 1)"
    if c_type == "uint32_t":
        return f"{value}u"
    if value > 2**31 - 1 or value < -(2**31):
        return f"{value}LL"
    return str(value)


def float_literal(value: float) -> str:
    """An exact float32 constant: C99 hexadecimal form, so no decimal rounding can creep in."""
    v = float(np.float32(value))
    if not np.isfinite(v):
        raise ValueError(f"non-finite float constant {v}")
    return f"{v.hex()}f" if v != 0.0 else ("-0.0f" if np.signbit(v) else "0.0f")


def array_initializer(values: np.ndarray, c_type: str) -> str:
    """The `{ ... }` body of an array of `c_type` holding `values` (flattened, C order)."""
    flat = np.asarray(values).reshape(-1)
    if c_type == "float":
        items = [float_literal(v) for v in flat.astype(np.float32).tolist()]
    elif c_type in ("int32_t", "int64_t", "uint32_t"):
        items = [int_literal(v, c_type) for v in flat.tolist()]
    else:
        items = [str(int(v)) for v in flat.tolist()]
    per_line = _VALUES_PER_LINE.get(NP_TYPES[c_type].itemsize, 8) if c_type in NP_TYPES else 8
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "\n}"


def comment(text: str) -> str:
    """A C block comment that cannot be closed early by the text."""
    return "/* " + text.replace("*/", "* /") + " */"
