"""Mutations of real .tflite models for the converter fuzzer (`benchmarks.fuzz`).

Two families:
- structure-aware: the seed is parsed once into the schema's object API (`S.ModelT`); a case
  changes a few fields (tensor shapes, dtypes, quantization, buffer contents and sizes, op
  options, opcode indices and builtin codes, operator and subgraph input/output indices),
  re-packs the flatbuffer and then undoes its changes. So the file stays well formed and the
  converter's checks beyond the flatbuffer layer are exercised, and a case costs one `Pack`
  instead of a re-parse or a deep copy of the model;
- byte-level: bit flips, inserted and deleted runs, overwritten 32-bit words and truncation
  of the file (the packed bytes of the seed, or of a structure-mutated seed).

`Mutator.mutate(case_rng)` is a pure function of the generator's state: every change is undone
before it returns (tested), so a case's bytes depend only on (seed, case), whichever worker
made them, and a reproducer can be regenerated from its case number.
"""
from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import flatbuffers
import numpy as np

from tflite_converter import schema
from tflite_converter.schema import S

FILE_IDENTIFIER = schema.FILE_IDENTIFIER
# every TensorType the schema names (some unsupported on purpose), and a few it does not
TENSOR_TYPES = sorted(schema.TENSOR_TYPE_NAMES) + [23, 100, 127]
BUILTIN_CODES = sorted(schema.BUILTIN_NAMES)
# values a 32-bit field is most often wrong by
INT_EDGES = (0, 1, -1, 2, 3, 7, 8, 127, 128, 255, 256, 65535, 1 << 20, 2**31 - 1, -(2**31))
FLOAT_EDGES = (0.0, -0.0, -1.0, 1e-30, 1e-12, 1e30, 3.4e38, float("inf"), float("-inf"), float("nan"))
MAX_ATTEMPTS = 8  # draws before a structure case falls back to a byte mutation


@dataclasses.dataclass
class Seed:
    """One real model: its bytes and its parsed object model (mutated in place, then undone)."""

    name: str
    data: bytes
    model: Any  # S.ModelT

    @classmethod
    def load(cls, path: Path) -> "Seed":
        data = path.read_bytes()
        return cls(path.stem, data, S.ModelT.InitFromPackedBuf(data, 0))


def load_seeds(models_dir: Path, names: Optional[Sequence[str]] = None) -> list[Seed]:
    """Every *.tflite under `models_dir` that the schema binding can parse (sorted by name, so
    the seed numbering is stable), or only `names` (file stems)."""
    seeds = []
    for path in sorted(models_dir.glob("*.tflite")):
        if names and path.stem not in names:
            continue
        try:
            seeds.append(Seed.load(path))
        except Exception:  # noqa: BLE001 (a seed the binding cannot parse is no seed)
            continue
    return seeds


def pack(model: Any) -> bytes:
    fb = flatbuffers.Builder(1024)
    fb.Finish(model.Pack(fb), file_identifier=FILE_IDENTIFIER)
    return bytes(fb.Output())


class _Undo:
    """Records every attribute a mutation replaces so the seed's object model is restored."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, str, Any]] = []

    def set(self, obj: Any, field: str, value: Any) -> None:
        self.log.append((obj, field, getattr(obj, field)))
        setattr(obj, field, value)

    def restore(self) -> None:
        for obj, field, old in reversed(self.log):
            setattr(obj, field, old)
        self.log.clear()


def _int(rng: np.random.Generator, near: int = 0, lo: int = -(2**31), hi: int = 2**31 - 1) -> int:
    """An interesting integer: an edge value, a neighbour of `near`, or a uniform draw."""
    r = int(rng.integers(4))
    if r == 0:
        v = int(rng.choice(INT_EDGES))
    elif r == 1:
        v = near + int(rng.integers(-3, 4))
    elif r == 2:
        v = near * int(rng.choice([2, -1, 0]))
    else:
        v = int(rng.integers(-8, 300))
    return min(max(v, lo), hi)


def _ints(values: Any) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _edit_list(rng: np.random.Generator, values: list[Any], draw: Callable[[Any], Any]) -> list[Any]:
    """Replace, drop, duplicate or insert one element, swap two, or empty the list."""
    out = list(values)
    r = int(rng.integers(6))
    if r == 0 and out:
        k = int(rng.integers(len(out)))
        out[k] = draw(out[k])
    elif r == 1 and out:
        del out[int(rng.integers(len(out)))]
    elif r == 2 and out:
        out.append(out[int(rng.integers(len(out)))])
    elif r == 3:
        out.insert(int(rng.integers(len(out) + 1)), draw(0))
    elif r == 4 and len(out) >= 2:
        i, j = rng.choice(len(out), 2, replace=False)
        out[i], out[j] = out[j], out[i]
    elif r == 5:
        out = []
    else:
        out.append(draw(0))
    return out


class Mutator:
    """Mutants of a list of seeds. `mutate(rng)` -> (file bytes, one-line description)."""

    def __init__(self, seeds: Sequence[Seed], byte_fraction: float = 0.25):
        if not seeds:
            raise ValueError("no seed models")
        self.seeds = list(seeds)
        self.byte_fraction = byte_fraction
        self.structure: list[tuple[str, Callable[[np.random.Generator, Any, _Undo], Optional[str]]]] = [
            ("shape", self._shape), ("dtype", self._dtype), ("quantization", self._quant),
            ("buffer", self._buffer), ("options", self._options), ("opcode", self._opcode),
            ("op_io", self._op_io), ("subgraph_io", self._subgraph_io),
        ]

    def mutate(self, rng: np.random.Generator) -> tuple[bytes, str, str]:
        """(mutant bytes, seed name, description of the mutations applied)."""
        seed = self.seeds[int(rng.integers(len(self.seeds)))]
        if rng.random() < self.byte_fraction:
            data, what = self._bytes(rng, seed.data)
            return data, seed.name, what
        undo = _Undo()
        try:
            done: list[str] = []
            wanted = int(rng.integers(1, 4))
            for _ in range(MAX_ATTEMPTS):
                if len(done) >= wanted:
                    break
                _, fn = self.structure[int(rng.integers(len(self.structure)))]
                change = fn(rng, seed.model, undo)
                if change is not None:
                    done.append(change)
            try:
                data = pack(seed.model)
            except (struct.error, OverflowError, TypeError, ValueError) as e:
                # a value outside its field's width: not a file anyone can write
                undo.restore()
                data, what = self._bytes(rng, seed.data)
                return data, seed.name, f"{what} (structure mutation not packable: {type(e).__name__})"
        finally:
            undo.restore()
        desc = "; ".join(done) or "re-packed unchanged"
        if rng.random() < 0.1:
            data, what = self._bytes(rng, data)
            desc += "; then " + what
        return data, seed.name, desc

    # -- structure-aware mutations: each returns a description, or None if it did not apply --

    @staticmethod
    def _subgraph(model: Any) -> Any:
        return model.subgraphs[0] if model.subgraphs else None

    def _pick_tensor(self, rng: np.random.Generator, model: Any) -> Optional[tuple[int, Any]]:
        sg = self._subgraph(model)
        if sg is None or not sg.tensors:
            return None
        k = int(rng.integers(len(sg.tensors)))
        return k, sg.tensors[k]

    def _pick_op(self, rng: np.random.Generator, model: Any) -> Optional[tuple[int, Any]]:
        sg = self._subgraph(model)
        if sg is None or not sg.operators:
            return None
        k = int(rng.integers(len(sg.operators)))
        return k, sg.operators[k]

    def _shape(self, rng, model, undo) -> Optional[str]:
        picked = self._pick_tensor(rng, model)
        if picked is None:
            return None
        k, t = picked
        old = _ints(t.shape)
        new = _edit_list(rng, old, lambda d: _int(rng, d))
        undo.set(t, "shape", new)
        if t.shapeSignature is not None and rng.random() < 0.5:
            undo.set(t, "shapeSignature", [-1 if rng.random() < 0.3 else d for d in new])
        return f"tensor {k} shape {old} -> {new}"

    def _dtype(self, rng, model, undo) -> Optional[str]:
        picked = self._pick_tensor(rng, model)
        if picked is None:
            return None
        k, t = picked
        new = int(rng.choice(TENSOR_TYPES))
        old = int(t.type)
        undo.set(t, "type", new)
        return f"tensor {k} type {old} -> {new}"

    def _quant(self, rng, model, undo) -> Optional[str]:
        picked = self._pick_tensor(rng, model)
        if picked is None:
            return None
        k, t = picked
        q = t.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            q2 = S.QuantizationParametersT()
            n = int(rng.choice([1, 1, 2, 3]))
            q2.scale = [float(rng.uniform(1e-3, 1.0)) for _ in range(n)]
            q2.zeroPoint = [_int(rng, 0, -128, 127) for _ in range(n)]
            q2.quantizedDimension = int(rng.integers(0, 4))
            undo.set(t, "quantization", q2)
            return f"tensor {k} quantization added: scale {q2.scale} zero point {q2.zeroPoint}"
        scales = [float(s) for s in q.scale]
        zps = _ints(q.zeroPoint)
        r = int(rng.integers(6))
        if r == 0:
            i = int(rng.integers(len(scales)))
            scales[i] = float(rng.choice(FLOAT_EDGES)) if rng.random() < 0.7 else scales[i] * float(rng.uniform(0, 4))
            undo.set(q, "scale", scales)
            return f"tensor {k} scale[{i}] -> {scales[i]!r}"
        if r == 1 and zps:
            i = int(rng.integers(len(zps)))
            zps[i] = _int(rng, zps[i], -(2**63), 2**63 - 1)
            undo.set(q, "zeroPoint", zps)
            return f"tensor {k} zero_point[{i}] -> {zps[i]}"
        if r == 2:
            new = _int(rng, int(q.quantizedDimension))
            undo.set(q, "quantizedDimension", new)
            return f"tensor {k} quantized_dimension {q.quantizedDimension} -> {new}"
        if r == 3:
            new_s = _edit_list(rng, scales, lambda s: float(rng.uniform(1e-4, 1)))
            undo.set(q, "scale", new_s)
            if rng.random() < 0.5:
                undo.set(q, "zeroPoint", _edit_list(rng, zps, lambda z: _int(rng, z, -128, 127)))
            return f"tensor {k} {len(scales)} scales -> {len(new_s)}, zero points {len(_ints(q.zeroPoint))}"
        if r == 4:
            undo.set(t, "quantization", None)
            return f"tensor {k} quantization removed"
        undo.set(q, "zeroPoint", None if rng.random() < 0.5 else [])
        return f"tensor {k} zero points removed"

    def _buffer(self, rng, model, undo) -> Optional[str]:
        picked = self._pick_tensor(rng, model)
        if picked is None:
            return None
        k, t = picked
        buffers = model.buffers or []
        b = int(t.buffer)
        r = int(rng.integers(4))
        if r == 0 or not 0 < b < len(buffers):
            new = _int(rng, b, 0, 2**32 - 1) if rng.random() < 0.3 else int(rng.integers(0, len(buffers) + 2))
            undo.set(t, "buffer", new)
            return f"tensor {k} buffer {b} -> {new}"
        buf = buffers[b]
        data = np.zeros(0, np.uint8) if buf.data is None else np.asarray(buf.data, np.uint8)
        if r == 1 and data.size:
            new_data = data.copy()
            n = int(rng.integers(1, 9))
            pos = rng.integers(0, data.size, n)
            new_data[pos] = rng.choice(np.array([0, 0x7F, 0x80, 0xFF], np.uint8), n) if rng.random() < 0.5 \
                else rng.integers(0, 256, n, dtype=np.uint8)
            undo.set(buf, "data", new_data)
            return f"buffer {b} (tensor {k}) {n} bytes overwritten"
        if r == 2:
            size = data.size
            new_size = int(rng.choice([0, max(size - 1, 0), size + 1, size // 2, size * 2, size + 4]))
            new_data = np.resize(data, new_size).astype(np.uint8) if size else \
                rng.integers(0, 256, new_size, dtype=np.uint8)
            undo.set(buf, "data", new_data if new_size else None)
            return f"buffer {b} (tensor {k}) {size} -> {new_size} bytes"
        # constant <-> activation: give an activation random data, or make a constant empty
        if data.size:
            undo.set(buf, "data", None)
            return f"buffer {b} (tensor {k}) emptied"
        return None

    def _options(self, rng, model, undo) -> Optional[str]:
        picked = self._pick_op(rng, model)
        if picked is None:
            return None
        k, op = picked
        opts = op.builtinOptions
        if opts is None or rng.random() < 0.15:
            # another operator's options table (or none at all)
            code, (union, cls) = list(schema.OPTIONS.items())[int(rng.integers(len(schema.OPTIONS)))]
            if rng.random() < 0.3:
                undo.set(op, "builtinOptionsType", 0)
                undo.set(op, "builtinOptions", None)
                return f"op {k} options removed"
            undo.set(op, "builtinOptionsType", union)
            undo.set(op, "builtinOptions", cls())
            return f"op {k} options -> default {cls.__name__}"
        fields = [f for f, v in vars(opts).items() if type(v) in (int, bool, float)]
        if not fields:
            return None
        field = fields[int(rng.integers(len(fields)))]
        old = getattr(opts, field)
        if type(old) is bool:
            new: Any = not old
        elif type(old) is float:
            new = float(rng.choice(FLOAT_EDGES)) if rng.random() < 0.6 else float(rng.uniform(-2, 2))
        else:
            # enum fields are 8 bits wide, sizes and strides 32: keep to what packs
            new = _int(rng, old, -128, 127) if rng.random() < 0.7 else _int(rng, old, -(2**31), 2**31 - 1)
        undo.set(opts, field, new)
        return f"op {k} {type(opts).__name__[:-1]}.{field} {old!r} -> {new!r}"

    def _opcode(self, rng, model, undo) -> Optional[str]:
        codes = model.operatorCodes or []
        if rng.random() < 0.5 or not codes:
            picked = self._pick_op(rng, model)
            if picked is None:
                return None
            k, op = picked
            new = int(rng.integers(0, len(codes) + 2)) if rng.random() < 0.8 else _int(rng, 0, 0, 2**32 - 1)
            undo.set(op, "opcodeIndex", new)
            return f"op {k} opcode index {op.opcodeIndex} -> {new}"
        c = int(rng.integers(len(codes)))
        oc = codes[c]
        old = schema.builtin_code(oc)
        r = int(rng.integers(3))
        if r == 0:
            undo.set(oc, "version", _int(rng, int(oc.version), -(2**31), 2**31 - 1))
            return f"opcode {c} version {oc.version}"
        new = int(rng.choice(BUILTIN_CODES)) if r == 1 else _int(rng, old, -(2**31), 2**31 - 1)
        undo.set(oc, "builtinCode", new)
        undo.set(oc, "deprecatedBuiltinCode", new if -128 <= new < 127 else 127)
        return f"opcode {c} builtin code {old} -> {new}"

    def _op_io(self, rng, model, undo) -> Optional[str]:
        picked = self._pick_op(rng, model)
        if picked is None:
            return None
        k, op = picked
        n = len(self._subgraph(model).tensors or [])
        field = "inputs" if rng.random() < 0.6 else "outputs"
        old = _ints(getattr(op, field))
        new = _edit_list(rng, old, lambda i: int(rng.integers(-1, n)) if rng.random() < 0.85 else _int(rng, n))
        undo.set(op, field, new)
        return f"op {k} {field} {old} -> {new}"

    def _subgraph_io(self, rng, model, undo) -> Optional[str]:
        sg = self._subgraph(model)
        if sg is None:
            return None
        n = len(sg.tensors or [])
        field = "inputs" if rng.random() < 0.5 else "outputs"
        old = _ints(getattr(sg, field))
        new = _edit_list(rng, old, lambda i: int(rng.integers(0, n)) if rng.random() < 0.85 else _int(rng, n))
        undo.set(sg, field, new)
        return f"subgraph {field} {old} -> {new}"

    # -- byte-level mutations ------------------------------------------------------------

    @staticmethod
    def _bytes(rng: np.random.Generator, data: bytes) -> tuple[bytes, str]:
        buf = bytearray(data)
        size = len(buf)
        r = int(rng.integers(5))
        if r == 0 or size < 8:
            cut = int(rng.integers(0, max(size, 1)))
            return bytes(buf[:cut]), f"truncated {size} -> {cut} bytes"
        if r == 1:
            n = int(rng.integers(1, 9))
            for pos in rng.integers(0, size, n):
                buf[pos] ^= 1 << int(rng.integers(8))
            return bytes(buf), f"{n} bits flipped"
        if r == 2:
            pos = int(rng.integers(0, size))
            run = rng.integers(0, 256, int(rng.integers(1, 65)), dtype=np.uint8).tobytes()
            buf[pos:pos] = run
            return bytes(buf), f"{len(run)} random bytes inserted at {pos}"
        if r == 3:
            pos = int(rng.integers(0, size))
            n = int(rng.integers(1, 65))
            del buf[pos:pos + n]
            return bytes(buf), f"{n} bytes deleted at {pos}"
        # offsets and lengths are 32-bit words: overwrite aligned ones with extremes
        words = []
        for pos in rng.integers(0, size // 4, int(rng.integers(1, 4))) * 4:
            value = int(rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, size, size - 4,
                                    int(rng.integers(0, 1 << 32))]))
            buf[pos:pos + 4] = struct.pack("<I", value)
            words.append(f"{pos}={value:#x}")
        return bytes(buf), "32-bit words overwritten: " + ", ".join(words)


__all__ = ["Mutator", "Seed", "load_seeds", "pack"]
