"""Fuzz the whole converter with mutants of the real models: every case converts or is refused.

    python -m benchmarks.fuzz --cases=100000 --seconds=3600 --seed=1 --workers=1

Each case is a mutant of a model under --models (default ../shared/models), made by
`benchmarks.fuzz_mutate` (structure-aware edits through the flatbuffer object API, or byte
flips, insertions, deletions and truncation). A pool of worker processes runs each case
through `pipeline.compile_model` under a per-case time limit (SIGALRM, and a hard kill by the
parent) and an address-space limit (RLIMIT_AS). The contract is that a case either converts
or raises ConversionError with a non-empty message. Anything else is a failure, saved under
--out as `<kind>_<model>_s<seed>_c<case>.tflite` plus a `.txt` (mutation, error, how to
replay):
- traceback: any other exception;
- crash: the worker died (a signal or exit); it is replaced and the run goes on;
- hang: the case overran --time_limit;
- memory: MemoryError under the --memory_limit address space;
- empty_message: a ConversionError whose message is blank.

C generation costs 10-100x the conversion itself (a big model's weights are printed as C
text: 0.4-2.5 s against 5-30 ms), so only a --generate fraction of the converted cases is
generated (default 5%; a codegen refusal counts as refused). A --sample_run fraction of those
is also built with the strict flags plus -fsanitize=address,undefined, run on seeded random
inputs and compared byte for byte with TFLM run on the same mutant in a forked child (so a
TFLM crash cannot take the worker down; if TFLM refuses or crashes, the case counts as
'tflm_refused', not as a failure). Failures there: build (warnings or errors), sanitizer,
mismatch.

A case's mutant and decisions depend only on (--seed, case number), never on the worker or
timing, so a run is reproducible; --seconds only ends it early. Seed models are picked
uniformly: mutants of the small models run at a few hundred cases/s per core, the 300-600 KB
models at about 30. `--replay=FILE` runs one saved reproducer in-process, with C generation
and the sanitized run; `--sanitize_models` runs `benchmarks.sanitize_all` instead.
"""
from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import multiprocessing.connection
import os
import resource
import shutil
import signal
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
from absl import app, flags

from benchmarks.fuzz_mutate import Mutator, load_seeds

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
DEFAULT_MODELS = SHARED / "models"

FAILURES = ("traceback", "crash", "hang", "memory", "empty_message", "build", "sanitizer", "mismatch")
# converted: read, validated, planned; generated: and its C generated; bit_exact: and the
# sanitized build ran with TFLM's bytes
PASSES = ("converted", "generated", "bit_exact", "refused", "tflm_refused")
GENERATED = ("generated", "bit_exact", "tflm_refused")  # the passes whose C was generated
RESTART_AFTER = ("hang", "memory")  # the worker's state may be half-updated: replace it
GRACE_SECONDS = 3.0  # beyond a phase's limit before the parent kills a worker stuck in C code

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Config:
    seed: int = 0
    cases: int = 1000
    seconds: float = 0.0
    workers: int = 1
    models: Path = DEFAULT_MODELS
    out: Path = Path("build/fuzz")
    generate: float = 0.05
    sample_run: float = 0.01
    time_limit: float = 10.0
    sample_time_limit: float = 300.0
    memory_limit: int = 2 << 30  # bytes


@dataclasses.dataclass(frozen=True)
class Job:
    """What the target is asked to do with one mutant (decided by the case's own generator)."""

    case: int
    generate: bool
    sample_run: bool
    input_seed: int
    # the target calls this before a long phase: (name, seconds allowed)
    phase: Callable[[str, float], None] = lambda name, seconds: None


@dataclasses.dataclass
class CaseResult:
    case: int
    status: str
    message: str = ""
    model: str = ""
    description: str = ""
    digest: str = ""  # sha256 of the mutant, to check the regenerated reproducer


# A target takes a mutant and a Job and returns (status in PASSES or FAILURES, message);
# anything it raises is classified by the worker.
Target = Callable[[bytes, Job], "tuple[str, str]"]


class _Hang(BaseException):
    """Raised by SIGALRM. A BaseException, so the converter's `except Exception` cannot eat it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Hang()


def case_rngs(seed: int, case: int) -> tuple[np.random.Generator, np.random.Generator]:
    """(mutation stream, decision stream) of one case: independent of all other cases."""
    return np.random.default_rng([seed, case, 0]), np.random.default_rng([seed, case, 1])


def case_job(cfg: Config, case: int, decide: np.random.Generator) -> Job:
    generate = bool(decide.random() < cfg.generate)
    sample = generate and bool(decide.random() < cfg.sample_run)
    return Job(case, generate, sample, int(decide.integers(1 << 31)))


# ---------------------------------------------------------------------------------------------
# The real target: the converter, C generation, and (sampled) sanitized run against TFLM


def convert_target(data: bytes, job: Job, time_limit: float = 10.0,
                   sample_time_limit: float = 300.0) -> tuple[str, str]:
    from tflite_converter.codegen.generate import generate
    from tflite_converter.errors import ConversionError
    from tflite_converter.pipeline import compile_model

    try:
        compiled = compile_model(data)
        if not job.generate:
            return "converted", ""
        with tempfile.TemporaryDirectory(prefix="fuzz_c_") as tmp:
            job.phase("generate", time_limit)
            gm = generate(compiled.graph, compiled.plan, tmp, name="net", order=compiled.order)
            if not job.sample_run:
                return "generated", ""
            job.phase("sample_run", sample_time_limit)
            return sample_run(data, Path(tmp), gm, job.input_seed, sample_time_limit)
    except ConversionError as e:
        message = str(e).strip()
        return ("refused", message.splitlines()[0]) if message else ("empty_message", repr(e))


def _tflm_child(conn: Any, data: bytes, inputs: list[np.ndarray], memory_limit: int) -> None:
    _limit_memory(memory_limit)
    try:
        from engine.tflm import TflmModel
        tflm = TflmModel(data)
        conn.send(("ok", tflm.run(inputs)))
    except BaseException as e:  # noqa: B036 (the child only reports)
        conn.send(("refused", f"{type(e).__name__}: {str(e)[:500]}"))
    finally:
        conn.close()


def tflm_outputs(data: bytes, inputs: list[np.ndarray], timeout: float,
                 memory_limit: int = 2 << 30) -> tuple[Optional[list[np.ndarray]], str]:
    """TFLM's outputs on `inputs`, run in a forked child; (None, why) if it refused, died or hung."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_tflm_child, args=(child, data, inputs, memory_limit), daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            try:
                status, value = parent.recv()
            except EOFError:
                status, value = "refused", "TFLM died"
        else:
            status, value = "refused", f"TFLM ran over {timeout:.0f} s"
    finally:
        proc.join(1)
        if proc.is_alive():
            proc.kill()
            proc.join()
        parent.close()
    if status == "ok":
        return value, ""
    if proc.exitcode and proc.exitcode < 0:
        value = f"TFLM died with {signal.Signals(-proc.exitcode).name}"
    return None, value


def sample_run(data: bytes, model_dir: Path, gm: Any, input_seed: int, timeout: float) -> tuple[str, str]:
    """Build the generated C (strict flags, ASan/UBSan), run it and TFLM on the same random
    inputs, compare bytes."""
    from engine.host import BuildError, HostModel, SanitizerError
    from engine.tflm import random_inputs

    details = [{"shape": t.shape, "dtype": t.dtype,
                "quantization_parameters": {"scales": [] if t.scale is None else [t.scale],
                                            "zero_points": [t.zero_point or 0]}} for t in gm.inputs]
    inputs = random_inputs(details, np.random.default_rng(input_seed))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    # ASan reserves terabytes of shadow address space: the compiler and the sanitized program
    # run without the worker's limit
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    try:
        try:
            ours = HostModel(model_dir, "net", sanitize=True).run(inputs)
        except BuildError as e:
            return "build", str(e)[-4000:]
        except SanitizerError as e:
            return "sanitizer", str(e)[-4000:]
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        shutil.rmtree(os.environ.get("MCU_ENGINE_BUILD_DIR", "/nonexistent"), ignore_errors=True)
    want, why = tflm_outputs(data, inputs, timeout, soft if soft != resource.RLIM_INFINITY else 2 << 30)
    if want is None:
        return "tflm_refused", why
    if len(want) != len(ours):
        return "mismatch", f"{len(ours)} outputs, TFLM has {len(want)}"
    for i, (g, w) in enumerate(zip(ours, want)):
        gb, wb = np.asarray(g).tobytes(), np.asarray(w).tobytes()
        if gb != wb:
            diff = sum(a != b for a, b in zip(gb, wb)) + abs(len(gb) - len(wb))
            return "mismatch", (f"output {i}: {diff} of {len(wb)} bytes differ from TFLM "
                                f"(ours {np.asarray(g).dtype}{list(np.shape(g))}, TFLM {np.asarray(w).dtype}"
                                f"{list(np.shape(w))})")
    return "bit_exact", ""


# ---------------------------------------------------------------------------------------------
# Workers


def _limit_memory(limit: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def run_case(mutator: Mutator, cfg: Config, case: int, target: Target,
             send: Callable[[tuple], None] = lambda msg: None) -> CaseResult:
    """Make case `case`'s mutant and run the target on it under the time limit (SIGALRM)."""
    mutate_rng, decide = case_rngs(cfg.seed, case)
    data, model, description = mutator.mutate(mutate_rng)
    result = CaseResult(case, "", "", model, description, hashlib.sha256(data).hexdigest())
    send(("start", case, model, description, result.digest))

    def phase(name: str, seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        send(("phase", case, name, seconds))

    job = dataclasses.replace(case_job(cfg, case, decide), phase=phase)
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, cfg.time_limit)
    try:
        result.status, result.message = target(data, job)
        if result.status not in PASSES + FAILURES:
            result.status, result.message = "traceback", f"target returned unknown status {result.status!r}"
    except _Hang:
        result.status, result.message = "hang", f"over the time limit\n{traceback.format_exc()}"
    except MemoryError:
        result.status, result.message = "memory", f"MemoryError under the address-space limit\n{traceback.format_exc()}"
    except BaseException:  # noqa: B036 (any other exception is the finding)
        result.status, result.message = "traceback", traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return result


def _worker(conn: Any, cfg: Config, mutator: Mutator, target: Target, build_dir: str) -> None:
    os.environ["MCU_ENGINE_BUILD_DIR"] = build_dir
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C
    _limit_memory(cfg.memory_limit)
    while True:
        try:
            case = conn.recv()
        except EOFError:  # the parent is gone
            return
        if case is None:
            return
        result = run_case(mutator, cfg, case, target, conn.send)
        conn.send(("result", result))
        if result.status in RESTART_AFTER:
            return


@dataclasses.dataclass
class _Slot:
    proc: Any
    conn: Any
    case: Optional[int] = None
    deadline: float = 0.0
    info: tuple[str, str, str] = ("", "", "")  # model, description, digest of the running case


class Pool:
    """Worker processes fed one case at a time; a dead or stuck worker is replaced. The workers
    are forked with the parsed seeds (a replacement starts in milliseconds)."""

    def __init__(self, cfg: Config, mutator: Mutator, target: Target, build_root: str):
        self.cfg, self.mutator, self.target, self.build_root = cfg, mutator, target, build_root
        self.ctx = multiprocessing.get_context("fork")  # injected test targets need no pickling
        self.slots = [self._spawn(k) for k in range(cfg.workers)]

    def _spawn(self, k: int) -> _Slot:
        parent, child = self.ctx.Pipe()
        build_dir = os.path.join(self.build_root, f"w{k}")
        # not a daemon: a worker forks TFLM's child. It exits when the parent's pipe closes.
        proc = self.ctx.Process(target=_worker, daemon=False,
                                args=(child, self.cfg, self.mutator, self.target, build_dir))
        proc.start()
        child.close()
        return _Slot(proc, parent)

    def _replace(self, k: int) -> None:
        slot = self.slots[k]
        if slot.proc.is_alive():
            slot.proc.kill()
        slot.proc.join()
        slot.conn.close()
        self.slots[k] = self._spawn(k)

    def idle(self) -> list[int]:
        return [k for k, s in enumerate(self.slots) if s.case is None]

    def busy(self) -> bool:
        return any(s.case is not None for s in self.slots)

    def submit(self, k: int, case: int) -> None:
        slot = self.slots[k]
        slot.case, slot.deadline, slot.info = case, time.monotonic() + self.cfg.time_limit + GRACE_SECONDS, ("", "", "")
        slot.conn.send(case)

    def collect(self) -> list[CaseResult]:
        """Wait for at least one event; return the cases that finished (or died, or hung)."""
        busy = [s for s in self.slots if s.case is not None]
        timeout = max(0.0, min(s.deadline for s in busy) - time.monotonic())
        multiprocessing.connection.wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout)
        done = []
        for k, slot in enumerate(self.slots):
            if slot.case is None:
                continue
            result = self._drain(slot)
            if result is not None:
                done.append(result)
                slot.case = None
                if result.status in RESTART_AFTER:
                    self._replace(k)
            elif not slot.proc.is_alive():
                code = slot.proc.exitcode
                how = f"signal {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
                done.append(CaseResult(slot.case, "crash", f"worker died ({how})", *slot.info))
                self._replace(k)
            elif time.monotonic() > slot.deadline:
                done.append(CaseResult(slot.case, "hang", "worker killed: over the time limit "
                                       "(stuck where SIGALRM could not interrupt it)", *slot.info))
                self._replace(k)
        return done

    def _drain(self, slot: _Slot) -> Optional[CaseResult]:
        try:
            while slot.conn.poll():
                msg = slot.conn.recv()
                if msg[0] == "result":
                    return msg[1]
                if msg[0] == "start":
                    slot.info = (msg[2], msg[3], msg[4])
                elif msg[0] == "phase":
                    slot.deadline = time.monotonic() + msg[3] + GRACE_SECONDS
        except (EOFError, OSError):
            pass
        return None

    def close(self) -> None:
        for slot in self.slots:
            try:
                slot.conn.send(None)
            except OSError:
                pass
        for slot in self.slots:
            slot.proc.join(2)
            if slot.proc.is_alive():
                slot.proc.kill()
                slot.proc.join()


# ---------------------------------------------------------------------------------------------
# The campaign


@dataclasses.dataclass
class Summary:
    cases: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    reproducers: list[Path] = dataclasses.field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(self.counts.get(k, 0) for k in FAILURES)

    def add(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        self.cases += 1

    def text(self) -> str:
        c = self.counts.get
        lines = [
            f"cases {self.cases} in {self.seconds:.1f} s ({self.cases / max(self.seconds, 1e-9):.1f} cases/s)",
            f"converted {c('converted', 0) + sum(c(k, 0) for k in GENERATED)} "
            f"(C generated {sum(c(k, 0) for k in GENERATED)}, of which "
            f"built with ASan/UBSan and bit-exact with TFLM {c('bit_exact', 0)}, TFLM refused "
            f"{c('tflm_refused', 0)}), refused {c('refused', 0)}",
            "failures: " + ", ".join(f"{k} {c(k, 0)}" for k in FAILURES) + f" (total {self.failures})",
        ]
        lines += [f"  reproducer: {p}" for p in self.reproducers]
        return "\n".join(lines)


def save_reproducer(cfg: Config, result: CaseResult, mutator: Mutator) -> Path:
    """Regenerate the case's mutant from its number and write it with a description."""
    data, model, description = mutator.mutate(case_rngs(cfg.seed, result.case)[0])
    digest = hashlib.sha256(data).hexdigest()
    cfg.out.mkdir(parents=True, exist_ok=True)
    stem = cfg.out / f"{result.status}_{model}_s{cfg.seed}_c{result.case}"
    stem.with_suffix(".tflite").write_bytes(data)
    note = "" if not result.digest or digest == result.digest else (
        f"WARNING: the regenerated mutant (sha256 {digest}) differs from the one the worker ran "
        f"({result.digest}): the mutator is not deterministic\n")
    stem.with_suffix(".txt").write_text(
        f"status: {result.status}\nseed model: {model}\ncase: {result.case} (--seed={cfg.seed})\n"
        f"mutation: {description}\n{note}"
        f"replay: python -m benchmarks.fuzz --replay={stem.with_suffix('.tflite')}\n\n{result.message}\n")
    return stem.with_suffix(".tflite")


def run_campaign(cfg: Config, target: Optional[Target] = None, progress: bool = True) -> Summary:
    """Run cases 0..cfg.cases-1 (or until cfg.seconds) over a worker pool; save reproducers."""
    if target is None:
        target = _default_target(cfg)
    summary = Summary()
    mutator = Mutator(load_seeds(cfg.models))
    bar = None
    if progress:
        from tqdm import tqdm
        tqdm.monitor_interval = 0  # no monitor thread: the workers are forked
        bar = tqdm(total=cfg.cases, unit="case", smoothing=0.05, mininterval=0.5)
    build_root = tempfile.mkdtemp(prefix="fuzz_build_")
    pool = Pool(cfg, mutator, target, build_root)
    start = time.monotonic()
    next_case = 0
    try:
        while True:
            out_of_time = cfg.seconds > 0 and time.monotonic() - start > cfg.seconds
            for k in pool.idle():
                if next_case >= cfg.cases or out_of_time:
                    break
                pool.submit(k, next_case)
                next_case += 1
            if not pool.busy():
                break
            for result in pool.collect():
                summary.add(result.status)
                if result.status in FAILURES:
                    # the parent's seeds are pristine: the reproducer is made afresh
                    summary.reproducers.append(save_reproducer(cfg, result, mutator))
                if bar is not None:
                    bar.update(1)
                    if result.status in FAILURES:
                        bar.set_postfix(failures=summary.failures)
    finally:
        pool.close()
        if bar is not None:
            bar.close()
        shutil.rmtree(build_root, ignore_errors=True)
    summary.seconds = time.monotonic() - start
    return summary


def _default_target(cfg: Config) -> Target:
    def target(data: bytes, job: Job) -> tuple[str, str]:
        return convert_target(data, job, cfg.time_limit, cfg.sample_time_limit)
    return target


def replay(path: Path, cfg: Config) -> int:
    """One file through the converter, C generation and the sanitized run, in this process."""
    data = path.read_bytes()
    os.environ.setdefault("MCU_ENGINE_BUILD_DIR", tempfile.mkdtemp(prefix="fuzz_replay_"))
    status, message = convert_target(data, Job(0, True, True, 0), cfg.time_limit, cfg.sample_time_limit)
    print(f"{path}: {status}\n{message}")
    return 1 if status in FAILURES else 0


def main(argv: Sequence[str]) -> int:
    del argv
    if FLAGS.sanitize_models:
        from benchmarks import sanitize_all
        return sanitize_all.main(Path(FLAGS.models) if FLAGS.models else DEFAULT_MODELS)
    cfg = Config(seed=FLAGS.seed, cases=FLAGS.cases, seconds=FLAGS.seconds, workers=max(1, FLAGS.workers),
                 models=Path(FLAGS.models) if FLAGS.models else DEFAULT_MODELS, out=Path(FLAGS.out),
                 generate=FLAGS.generate, sample_run=FLAGS.sample_run, time_limit=FLAGS.time_limit,
                 sample_time_limit=FLAGS.sample_time_limit, memory_limit=FLAGS.memory_limit_mb << 20)
    if FLAGS.replay:
        return replay(Path(FLAGS.replay), cfg)
    if not cfg.models.is_dir() or not load_seeds(cfg.models):
        print(f"no seed models: {cfg.models} is missing or holds no readable .tflite; nothing to fuzz")
        return 0
    summary = run_campaign(cfg)
    print(summary.text())
    return 1 if summary.failures else 0


def _define_flags() -> None:
    """Only when run as a command: the tests import this module beside others with a --models."""
    flags.DEFINE_integer("cases", 1000, "Cases to run (the run stops earlier at --seconds).")
    flags.DEFINE_float("seconds", 0, "Stop dispatching cases after this many seconds (0: no limit).")
    flags.DEFINE_integer("seed", 0, "Seed of the mutations: a case depends only on (seed, case number).")
    flags.DEFINE_string("models", None, "Folder of seed .tflite models. Default: ../shared/models.")
    flags.DEFINE_integer("workers", 1, "Worker processes.")
    flags.DEFINE_string("out", "build/fuzz", "Folder for the reproducers.")
    flags.DEFINE_float("generate", 0.05, "Fraction of the converted cases whose C is generated.")
    flags.DEFINE_float("sample_run", 0.01, "Fraction of the generated cases built with ASan/UBSan, run "
                       "and compared with TFLM.")
    flags.DEFINE_float("time_limit", 10.0, "Seconds per case for conversion and C generation.")
    flags.DEFINE_float("sample_time_limit", 300.0, "Seconds per case for the sanitized build, run and TFLM.")
    flags.DEFINE_integer("memory_limit_mb", 2048, "Address-space limit of a worker (RLIMIT_AS), MiB.")
    flags.DEFINE_string("replay", None, "Run this one .tflite through the target in-process and print the outcome.")
    flags.DEFINE_bool("sanitize_models", False, "Instead of fuzzing: build every shared model that converts "
                      "with ASan/UBSan, run it and compare with TFLM (benchmarks.sanitize_all).")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
