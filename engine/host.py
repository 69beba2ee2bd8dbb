"""Build a generated model folder with the host compiler and run it from Python.

Two forms, both from the same sources plus `runtime/host_runner.c`:
- a shared library loaded with ctypes (fast: inputs are copied straight into the arena,
  and `time_invokes` runs the invoke loop in C for latency ratios);
- with `sanitize=True`, a program built with `-fsanitize=address,undefined` that reads the
  samples from a file and writes the outputs (a sanitized library cannot be loaded into an
  unsanitized Python). Any sanitizer report fails the run.

Builds are cached under `model_dir.build_root()` keyed by the hash of every source and flag.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from engine import catalogue
from engine.model_dir import ModelDir, build_root

CC = os.environ.get("CC", "gcc")
# The generated code's contract: strict C99 with every warning an error.
STRICT_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
OPT_FLAGS = ("-O2",)
SANITIZE_FLAGS = ("-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all")
HOST_RUNNER = "host_runner.c"


class BuildError(RuntimeError):
    """The compiler rejected the generated code (its output is the message)."""


class SanitizerError(RuntimeError):
    """The sanitized build reported a problem at run time."""


def compile_c(args: Sequence[str], what: str) -> None:
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"building {what} failed:\n$ {' '.join(args)}\n{proc.stdout}{proc.stderr}")


def _cached_build(model: ModelDir, flags: Sequence[str], artefact: str, link: Sequence[str]) -> Path:
    """Compile NAME.c + the host runner with `flags` into build_root()/<hash>/<artefact>."""
    runner = catalogue.runtime_source(HOST_RUNNER)
    key = model.content_hash(CC, " ".join(flags), " ".join(link), runner)
    out_dir = build_root() / f"host-{model.name}-{key}"
    target = out_dir / artefact
    if target.is_file():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    # Build under a temporary name and rename: concurrent test workers may build the same key.
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=artefact + ".")
    os.close(fd)
    try:
        compile_c([CC, *flags, f"-DMCU_MODEL={model.name}", "-I", str(model.path),
                   str(model.source), str(runner), *link, "-o", tmp], f"model '{model.name}' for the host")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


class HostModel:
    """A generated model compiled for the host. `run(inputs)` -> outputs (numpy arrays in
    the model's dtypes and shapes)."""

    def __init__(self, model_dir: str | os.PathLike[str], name: str | None = None,
                 sanitize: bool = False, extra_flags: Sequence[str] = ()):
        self.model = ModelDir.open(model_dir, name)
        self.sanitize = sanitize
        if sanitize:
            flags = (*STRICT_FLAGS, *SANITIZE_FLAGS, "-DMCU_HOST_MAIN", *extra_flags)
            self.path = _cached_build(self.model, flags, "runner", ("-fsanitize=address,undefined", "-lm"))
            self._lib = None
        else:
            flags = (*STRICT_FLAGS, *OPT_FLAGS, "-fPIC", "-shared", *extra_flags)
            # -lm: the float32 head and tail kernels call the C library's expf / logf / tanhf
            self.path = _cached_build(self.model, flags, "model.so", ("-lm",))
            self._lib = self._load(self.path)

    def _load(self, path: Path) -> ctypes.CDLL:
        lib = ctypes.CDLL(str(path))
        n = self.model.name
        getattr(lib, f"{n}_input").restype = ctypes.c_void_p
        getattr(lib, f"{n}_input").argtypes = [ctypes.c_int]
        getattr(lib, f"{n}_output").restype = ctypes.c_void_p
        getattr(lib, f"{n}_output").argtypes = [ctypes.c_int]
        for fn in (f"{n}_input_bytes", f"{n}_output_bytes"):
            getattr(lib, fn).restype = ctypes.c_size_t
            getattr(lib, fn).argtypes = [ctypes.c_int]
        getattr(lib, f"{n}_invoke").restype = ctypes.c_int
        lib.mcu_host_time_invokes.restype = ctypes.c_longlong
        lib.mcu_host_time_invokes.argtypes = [ctypes.c_int]
        for i, t in enumerate(self.model.inputs):
            if getattr(lib, f"{n}_input_bytes")(i) != t.bytes:
                raise RuntimeError(f"{path}: input {i} size disagrees with io.json")
        return lib

    @property
    def lib(self) -> ctypes.CDLL:
        """The loaded shared library (the optimised build), for harness entry points such as
        runtime/host_runner.c's MCU_DEBUG_LAYERS functions."""
        if self._lib is None:
            raise RuntimeError("the sanitized build is a program, not a loaded library")
        return self._lib

    @property
    def inputs(self):
        return self.model.inputs

    @property
    def outputs(self):
        return self.model.outputs

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One invoke on `inputs` (one array per model input)."""
        return self.run_many([inputs])[0]

    def run_many(self, samples: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        """One invoke per sample; in sanitize mode all samples go through one process."""
        if self._lib is None:
            return self._run_program(samples)
        n, lib, results = self.model.name, self._lib, []
        for sample in samples:
            for i, x in enumerate(self.model.check_inputs(sample)):
                ctypes.memmove(getattr(lib, f"{n}_input")(i), x.ctypes.data, x.nbytes)
            status = getattr(lib, f"{n}_invoke")()
            if status != 0:
                raise RuntimeError(f"{n}_invoke returned {status}")
            outs = []
            for i, t in enumerate(self.model.outputs):
                raw = ctypes.string_at(getattr(lib, f"{n}_output")(i), t.bytes)
                outs.append(np.frombuffer(raw, dtype=t.dtype).reshape(t.shape).copy())
            results.append(outs)
        return results

    def _run_program(self, samples: Sequence[Sequence[np.ndarray]]) -> list[list[np.ndarray]]:
        with tempfile.TemporaryDirectory(prefix="mcu_host_") as tmp:
            fin, fout = Path(tmp) / "inputs.bin", Path(tmp) / "outputs.bin"
            fin.write_bytes(self.model.pack_samples(samples))
            env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
                       UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
            proc = subprocess.run([str(self.path), str(fin), str(fout)], capture_output=True,
                                  text=True, env=env, timeout=600)
            report = proc.stderr.strip()
            if proc.returncode != 0 or "runtime error" in report or "Sanitizer" in report:
                raise SanitizerError(f"sanitized run of '{self.model.name}' failed "
                                     f"(exit {proc.returncode}):\n{report[-4000:]}")
            return self.model.unpack_outputs(fout.read_bytes(), len(samples))

    def time_invokes(self, n: int = 100, inputs: Sequence[np.ndarray] | None = None) -> float:
        """Seconds per invoke, averaged over `n` invokes timed in C (clock_gettime)."""
        if self._lib is None:
            raise RuntimeError("timing needs the optimised (non-sanitized) build")
        if inputs is not None:
            self.run(inputs)
        ns = self._lib.mcu_host_time_invokes(int(n))
        if ns < 0:
            raise RuntimeError(f"{self.model.name}_invoke failed while timing")
        return ns / 1e9 / n


def compile_check(model_dir: str | os.PathLike[str], cc: str = CC, extra_flags: Sequence[str] = ()) -> None:
    """Compile the folder exactly as its contract says (`cc -std=c99 -Wall -Wextra -Werror
    -I DIR DIR/*.c`, to an object per file); raises BuildError with the diagnostics."""
    d = Path(model_dir)
    sources = sorted(d.glob("*.c"))
    if not sources:
        raise BuildError(f"{d} has no .c file")
    with tempfile.TemporaryDirectory(prefix="mcu_cc_") as tmp:
        for src in sources:
            compile_c([cc, *STRICT_FLAGS, *extra_flags, "-I", str(d), "-c", str(src),
                       "-o", str(Path(tmp) / (src.stem + ".o"))], f"{src} with {cc}")


def have_compiler(cc: str = CC) -> bool:
    return shutil.which(cc) is not None
