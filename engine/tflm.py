"""Reference runners: TensorFlow Lite Micro (the measured baseline) and ai_edge_litert's
reference kernels, behind one small interface: `.run(inputs) -> outputs`.

TFLM is the PyPI `tflite-micro` wheel (the real interpreter compiled for x86-64). Its arena
figure is the RecordingMicroAllocator's "Arena allocation total", which it only prints on
the C-level stdout/stderr, so those file descriptors are redirected while it prints.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


def _model_bytes(model: bytes | str | os.PathLike[str]) -> bytes:
    return bytes(model) if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()


@contextlib.contextmanager
def capture_c_output() -> Iterator[list[str]]:
    """Redirect the process's file descriptors 1 and 2 (what C/C++ code writes to) into a
    temporary file; the yielded list receives the captured text on exit."""
    captured: list[str] = []
    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = [os.dup(1), os.dup(2)]
        try:
            libc.fflush(None)
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield captured
        finally:
            libc.fflush(None)
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            captured.append(tmp.read().decode(errors="replace"))


class TflmModel:
    """The TFLM interpreter on one model. `arena_size=None` lets TFLM pick (10x the model).
    With `preserve_all_tensors` no two tensors share arena bytes, so after `run` every
    intermediate tensor can be read with `tensor(index)` (`convert --debug_layers`)."""

    def __init__(self, model: bytes | str | os.PathLike[str], arena_size: int | None = None,
                 preserve_all_tensors: bool = False):
        from tflite_micro.python.tflite_micro import runtime

        self._runtime = runtime
        self.model_bytes = _model_bytes(model)
        self.preserve_all_tensors = preserve_all_tensors
        config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve_all_tensors
                  else runtime.InterpreterConfig.kAllocationRecording)
        err: Optional[RuntimeError] = None
        with capture_c_output() as log:
            try:
                self._interp = runtime.Interpreter.from_bytes(self.model_bytes, arena_size=arena_size,
                                                              intrepreter_config=config)
            except RuntimeError as e:
                err = e
        if err is not None:
            raise RuntimeError(f"TFLM could not prepare the model: {err}\n{''.join(log).strip()}")
        with capture_c_output():  # the probe past the last index logs an error line
            self.num_inputs: int = self._count(self._interp.get_input_details)
            self.num_outputs: int = self._count(self._interp.get_output_details)

    @staticmethod
    def _count(details) -> int:
        n = 0
        while True:
            try:
                details(n)
            except (RuntimeError, ValueError, IndexError):
                return n
            n += 1

    def input_details(self, index: int) -> dict:
        return self._interp.get_input_details(index)

    def output_details(self, index: int) -> dict:
        return self._interp.get_output_details(index)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != self.num_inputs:
            raise ValueError(f"model takes {self.num_inputs} inputs, got {len(inputs)}")
        for i, x in enumerate(inputs):
            self._interp.set_input(np.ascontiguousarray(x), i)
        self._interp.invoke()
        return [np.array(self._interp.get_output(i), copy=True) for i in range(self.num_outputs)]

    def tensor(self, index: int) -> np.ndarray:
        """Tensor `index` of the model (its index in the .tflite's subgraph) as TFLM holds it
        after the last `run`; needs `preserve_all_tensors=True` for intermediate tensors."""
        if not self.preserve_all_tensors:
            raise RuntimeError("TflmModel.tensor needs preserve_all_tensors=True")
        return np.array(self._interp.GetTensor(int(index), 0)["tensor_data"], copy=True)

    def arena_used_bytes(self) -> int:
        """The RecordingMicroAllocator's arena allocation total."""
        with capture_c_output() as log:
            self._interp.print_allocations()
        m = _ARENA_TOTAL.search("".join(log))
        if m is None:
            raise RuntimeError("TFLM printed no arena allocation total:\n" + "".join(log))
        return int(m.group(1))

    @classmethod
    def smallest_arena(cls, model: bytes | str | os.PathLike[str], lo: int = 0,
                       hi: int | None = None, granularity: int = 16) -> int:
        """The smallest arena size (to `granularity` bytes) with which TFLM prepares the
        model, by bisection; `hi` defaults to the recorded total of a generous arena."""
        data = _model_bytes(model)
        if hi is None:
            hi = cls(data).arena_used_bytes()

        def fits(size: int) -> bool:
            try:
                cls(data, arena_size=size)
            except RuntimeError:
                return False
            return True

        # The recorded total can fall a few bytes short of a sufficient size (the arena
        # buffer's own start alignment is not part of it): widen until it fits.
        limit = max(hi, 1) * 64
        while not fits(hi):
            lo, hi = hi, hi + max(hi // 8, granularity)
            if hi > limit:
                raise RuntimeError(f"TFLM does not fit in {limit} bytes")
        while hi - lo > granularity:
            mid = (lo + hi) // 2
            if fits(mid):
                hi = mid
            else:
                lo = mid
        return hi


class LiteRtModel:
    """ai_edge_litert's interpreter with the reference kernels (OpResolverType.BUILTIN_REF)."""

    def __init__(self, model: bytes | str | os.PathLike[str]):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        self._interp = Interpreter(model_content=_model_bytes(model),
                                   experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        self._interp.allocate_tensors()
        self._inputs = self._interp.get_input_details()
        self._outputs = self._interp.get_output_details()
        self.num_inputs, self.num_outputs = len(self._inputs), len(self._outputs)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != self.num_inputs:
            raise ValueError(f"model takes {self.num_inputs} inputs, got {len(inputs)}")
        for d, x in zip(self._inputs, inputs):
            self._interp.set_tensor(d["index"], np.ascontiguousarray(x))
        self._interp.invoke()
        return [np.array(self._interp.get_tensor(d["index"]), copy=True) for d in self._outputs]


def random_inputs(details: Sequence[dict], rng: np.random.Generator) -> list[np.ndarray]:
    """Random inputs covering each input's whole range: every integer value for int8/uint8,
    values spanning the quantized range for float inputs (so QUANTIZE saturates too)."""
    out = []
    for d in details:
        shape, dtype = tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            out.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype))
        else:
            q = d.get("quantization_parameters") or {}
            scales, zps = q.get("scales", []), q.get("zero_points", [])
            if len(scales) == 1 and scales[0] > 0:
                lo, hi = (-128 - zps[0]) * scales[0], (127 - zps[0]) * scales[0]
                span = hi - lo
                out.append(rng.uniform(lo - 0.05 * span, hi + 0.05 * span, size=shape).astype(dtype))
            else:
                out.append(rng.standard_normal(size=shape).astype(dtype))
    return out
