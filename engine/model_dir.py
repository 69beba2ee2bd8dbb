"""A generated model folder as the run helpers see it: its name, I/O tensors, sources.

The code generator writes `io.json` next to `NAME.c`; this reads it without importing the
converter (`engine` depends on nothing of ours). It also packs inputs into the byte stream
the harnesses read, and unpacks their outputs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

IO_JSON = "io.json"


def build_root() -> Path:
    """Where compiled artefacts are cached (content-addressed): $MCU_ENGINE_BUILD_DIR or a
    folder under the system temp dir."""
    root = Path(os.environ.get("MCU_ENGINE_BUILD_DIR") or Path(tempfile.gettempdir()) / "mcunet_engine_build")
    root.mkdir(parents=True, exist_ok=True)
    return root


@dataclasses.dataclass(frozen=True)
class TensorIo:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    bytes: int


@dataclasses.dataclass(frozen=True)
class ModelDir:
    path: Path
    name: str
    inputs: tuple[TensorIo, ...]
    outputs: tuple[TensorIo, ...]
    arena_bytes: int

    @classmethod
    def open(cls, path: str | os.PathLike[str], name: str | None = None) -> "ModelDir":
        path = Path(path)
        io_file = path / IO_JSON
        if not io_file.is_file():
            raise FileNotFoundError(f"{path} is not a generated model folder (no {IO_JSON})")
        cfg = json.loads(io_file.read_text())
        if name is not None and name != cfg["name"]:
            raise ValueError(f"{path} holds model '{cfg['name']}', not '{name}'")

        def tensors(items: list[dict]) -> tuple[TensorIo, ...]:
            return tuple(TensorIo(t["name"], tuple(t["shape"]), np.dtype(t["dtype"]), int(t["bytes"]))
                         for t in items)

        return cls(path, cfg["name"], tensors(cfg["inputs"]), tensors(cfg["outputs"]),
                   int(cfg["arena_bytes"]))

    @property
    def source(self) -> Path:
        return self.path / f"{self.name}.c"

    def source_files(self) -> list[Path]:
        """Every file the build reads: top-level sources and headers, and kernels/."""
        files = [p for p in self.path.iterdir() if p.suffix in (".c", ".h")]
        kdir = self.path / "kernels"
        if kdir.is_dir():
            files += [p for p in kdir.rglob("*") if p.is_file()]
        return sorted(files)

    def content_hash(self, *extra: str | bytes | Path) -> str:
        """Hash of every source of the folder plus `extra` (flags, harness files)."""
        h = hashlib.sha256()
        for p in self.source_files():
            h.update(str(p.relative_to(self.path)).encode() + b"\0" + p.read_bytes() + b"\0")
        for e in extra:
            if isinstance(e, Path):
                e = e.read_bytes()
            h.update(e if isinstance(e, bytes) else e.encode())
            h.update(b"\0")
        return h.hexdigest()[:24]

    # -- packing the harnesses' byte streams ------------------------------------------------

    def check_inputs(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"model '{self.name}' takes {len(self.inputs)} inputs, got {len(inputs)}")
        out = []
        for spec, x in zip(self.inputs, inputs):
            arr = np.asarray(x)
            if arr.dtype != spec.dtype:
                raise TypeError(f"input '{spec.name}' is {spec.dtype}, got {arr.dtype}")
            if arr.size * arr.itemsize != spec.bytes:
                raise ValueError(f"input '{spec.name}' has shape {spec.shape}, got {arr.shape}")
            out.append(np.ascontiguousarray(arr))
        return out

    def pack_samples(self, samples: Iterable[Sequence[np.ndarray]]) -> bytes:
        return b"".join(x.tobytes() for s in samples for x in self.check_inputs(s))

    def unpack_outputs(self, data: bytes, n_samples: int) -> list[list[np.ndarray]]:
        per_sample = sum(t.bytes for t in self.outputs)
        if len(data) != per_sample * n_samples:
            raise RuntimeError(f"model '{self.name}': expected {per_sample * n_samples} output bytes "
                               f"for {n_samples} samples, got {len(data)}")
        result, pos = [], 0
        for _ in range(n_samples):
            sample = []
            for t in self.outputs:
                sample.append(np.frombuffer(data[pos:pos + t.bytes], dtype=t.dtype).reshape(t.shape).copy())
                pos += t.bytes
            result.append(sample)
        return result
