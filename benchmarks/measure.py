"""Measure one model side by side: our generated C against TensorFlow Lite Micro.

`measure_model` runs, for one .tflite, everything the benchmark reports:

- conversion (`convert_model`; a refusal is recorded with the converter's reasons);
- correctness: our output bytes (host build) against TFLM's and against ai_edge_litert's
  reference kernels (BUILTIN_REF), on seeded random inputs and on real inputs where the
  shared data has them;
- SRAM: TFLM's recorded arena (head = non-persistent, tail = persistent, as its
  RecordingMicroAllocator prints them) and the smallest arena with which it still allocates
  (bisection to the byte); ours from the plan (arena, lower bound for the schedule) and the
  static RAM of the model's Cortex-M7 object (arena plus any other mutable state);
- Flash: the Cortex-M7 object of the model (code + weights) and the whole linked image, next to
  the .tflite size that TFLM keeps in Flash besides its own code;
- latency: host time per invoke of TFLM and of our C, interleaved in this process; Cortex-M7
  and Cortex-M4 instruction counts of our C under QEMU, portable and DSP builds;
- patch-based inference (`--patch=auto`, tflite_converter/patch.py): where it lowers the
  arena, its arena with the input in it and outside it beside layer by layer, the MACs it
  recomputes, its output bytes against TFLM (host, and the Cortex-M7 DSP build with its
  instructions beside the layer-by-layer build's).

TFLM's per-op live bytes (for the memory pictures) come from `replicate_tflm_plan`, our own
replica of TFLM's greedy planner over the unmodified graph; see its docstring.
"""
from __future__ import annotations

import dataclasses
import enum
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from benchmarks import real_inputs
from engine import qemu
from engine.host import HostModel
from engine.tflm import LiteRtModel, TflmModel, capture_c_output, random_inputs
from tflite_converter import planner, reader
from tflite_converter.codegen.generate import PLAN_JSON, GeneratedModel, convert_model, generate
from tflite_converter.errors import ConversionError
from tflite_converter.ir import Graph
from tflite_converter.patch import PatchSetting, grid_text
from tflite_converter.pipeline import compile_model, plan_extra

# Failures of one stage that must not stop the others or the run: a model TFLM or LiteRT
# refuses, a compiler or QEMU failure, unreadable data.
STAGE_ERRORS = (RuntimeError, ValueError, OSError, subprocess.SubprocessError)

# TFLM aligns every planned buffer to 16 bytes (MicroArenaBufferAlignment).
TFLM_BUFFER_ALIGNMENT = 16
_TFLM_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TFLM_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")
_TFLM_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")

# Each timed batch of host invokes lasts about this long, so a round is well above the
# clock's resolution and the per-call overheads.
HOST_BATCH_SECONDS = 0.02


class Status(enum.Enum):
    OK = "ok"
    REFUSED = "refused"  # the converter refused the model (reasons in `reasons`)


class InputSet(enum.Enum):
    RANDOM = "random"
    REAL = "real"


class Reference(enum.Enum):
    TFLM = "tflm"
    LITERT = "litert"  # ai_edge_litert, OpResolverType.BUILTIN_REF


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    num_inputs: int = 20  # seeded random inputs per model
    num_real: int = 20  # real inputs per model, at most
    host_repeats: int = 15  # interleaved timing rounds
    qemu: bool = True
    cpus: tuple[str, ...] = ("cortex-m7", "cortex-m4")
    qemu_inputs: int = 2  # samples run under QEMU per build
    seed: int = 0
    data_dir: Optional[str] = None  # shared data sets; None: no real inputs
    patch: bool = True  # also measure --patch=auto where it lowers the arena

    def get_config(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "cpus": list(self.cpus)}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "BenchOptions":
        return cls(**{**cfg, "cpus": tuple(cfg.get("cpus", cls.cpus))})


# ---------------------------------------------------------------------------------------------
# Result records (plain dataclasses: results.json is `dataclasses.asdict` of them)


@dataclasses.dataclass
class Agreement:
    """Our outputs against one reference on one input set."""

    reference: str  # Reference value
    inputs: str  # InputSet value
    samples: int = 0
    identical_samples: int = 0
    differing_elements: int = 0
    max_abs_diff: float = 0.0
    refused: Optional[str] = None  # why the reference could not run the model

    @property
    def identical(self) -> bool:
        return self.refused is None and self.samples > 0 and self.identical_samples == self.samples


@dataclasses.dataclass
class LabelScore:
    """Top-1 agreement with the data set's labels on the real inputs (ours and TFLM)."""

    samples: int
    ours_correct: int
    tflm_correct: Optional[int]


@dataclasses.dataclass
class Sram:
    ours_arena_bytes: int
    ours_lower_bound_bytes: int
    ours_static_ram_bytes: Optional[int] = None  # .data + .bss of the model's Cortex-M7 object
    tflm_recorded_bytes: Optional[int] = None  # RecordingMicroAllocator total (x86-64 build)
    tflm_head_bytes: Optional[int] = None  # non-persistent: planned activations + scratch
    tflm_tail_bytes: Optional[int] = None  # persistent: interpreter structures, op data
    tflm_smallest_bytes: Optional[int] = None  # smallest arena that allocates (bisection)
    tflm_arena_32bit_baseline: Optional[int] = None  # from the baseline json (Cortex-M7 build)
    tflm_replica_arena_bytes: Optional[int] = None  # replicate_tflm_plan's greedy arena

    @property
    def ratio(self) -> Optional[float]:
        """TFLM's smallest arena / ours (> 1: ours is smaller)."""
        if self.tflm_smallest_bytes is None or self.ours_arena_bytes <= 0:
            return None
        return self.tflm_smallest_bytes / self.ours_arena_bytes


@dataclasses.dataclass
class Flash:
    tflite_bytes: int
    ours_model_text: Optional[int] = None  # the model's Cortex-M7 object (DSP build)
    ours_model_rodata: Optional[int] = None
    ours_model_data: Optional[int] = None
    ours_image_bytes: Optional[int] = None  # whole linked image: harness and newlib included
    tflm_code_baseline: Optional[int] = None  # TFLM + CMSIS-NN code, baseline json

    @property
    def ours_model_bytes(self) -> Optional[int]:
        parts = (self.ours_model_text, self.ours_model_rodata, self.ours_model_data)
        return None if any(p is None for p in parts) else sum(parts)  # type: ignore[arg-type]

    @property
    def tflm_estimate_bytes(self) -> Optional[int]:
        """TFLM's code (baseline) + the flatbuffer it reads its weights from."""
        return None if self.tflm_code_baseline is None else self.tflm_code_baseline + self.tflite_bytes

    @property
    def ratio(self) -> Optional[float]:
        ours, tflm = self.ours_model_bytes, self.tflm_estimate_bytes
        return None if not ours or tflm is None else tflm / ours


@dataclasses.dataclass
class QemuRun:
    cpu: str
    dsp: bool
    instructions: list[int]  # per sample
    outputs_identical_to_tflm: Optional[int]  # samples whose bytes equal TFLM's
    samples: int

    @property
    def mean_instructions(self) -> float:
        return float(np.mean(self.instructions)) if self.instructions else float("nan")


@dataclasses.dataclass
class Latency:
    host_tflm_seconds: Optional[float] = None  # median per invoke
    host_ours_seconds: Optional[float] = None
    host_rounds: int = 0
    host_batch: int = 0
    qemu: list[QemuRun] = dataclasses.field(default_factory=list)
    tflm_cmsis_nn_m7_instructions: Optional[int] = None  # baseline json
    tflm_reference_m7_instructions: Optional[int] = None  # baseline json

    @property
    def host_ratio(self) -> Optional[float]:
        """TFLM time / ours (> 1: ours is faster)."""
        if not self.host_tflm_seconds or not self.host_ours_seconds:
            return None
        return self.host_tflm_seconds / self.host_ours_seconds

    def qemu_run(self, cpu: str, dsp: bool) -> Optional[QemuRun]:
        return next((r for r in self.qemu if r.cpu == cpu and r.dsp == dsp), None)

    @property
    def m7_ratio(self) -> Optional[float]:
        """TFLM+CMSIS-NN instructions / ours (Cortex-M7, DSP build; > 1: ours runs fewer)."""
        run = self.qemu_run(qemu.Cpu.CORTEX_M7.value, True)
        if run is None or not run.instructions or not self.tflm_cmsis_nn_m7_instructions:
            return None
        return self.tflm_cmsis_nn_m7_instructions / run.mean_instructions


@dataclasses.dataclass
class MemoryProfile:
    """Bytes live at each op: ours in our schedule, TFLM's replica in file order."""

    ours_live_bytes: list[int]
    ours_op_kinds: list[str]
    tflm_live_bytes: list[int] = dataclasses.field(default_factory=list)
    tflm_op_kinds: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class PatchResult:
    """`--patch=auto` beside layer by layer. `split_op` None: no split lowers the arena and
    auto keeps layer by layer (the other patch figures are then layer by layer's)."""

    layer_by_layer_bytes: int
    layer_by_layer_without_input_bytes: int
    arena_bytes: int
    arena_without_input_bytes: int
    split_op: Optional[int] = None
    grid: Optional[str] = None  # rows x columns
    macs_overhead: float = 0.0
    samples: int = 0
    identical_samples: int = 0  # host build against TFLM, random inputs
    m7_instructions: Optional[int] = None  # DSP build, first QEMU sample
    m7_identical: Optional[bool] = None

    @property
    def ratio(self) -> float:
        return self.layer_by_layer_bytes / max(self.arena_bytes, 1)

    @property
    def ratio_without_input(self) -> float:
        return self.layer_by_layer_without_input_bytes / max(self.arena_without_input_bytes, 1)


@dataclasses.dataclass
class ModelResult:
    model: str  # file stem
    path: str
    status: str  # Status value
    reasons: list[str] = dataclasses.field(default_factory=list)  # converter refusal lines
    c_name: Optional[str] = None
    generated_dir: Optional[str] = None
    correctness: list[Agreement] = dataclasses.field(default_factory=list)
    real_inputs: Optional[str] = None  # data set the real inputs came from
    labels: Optional[LabelScore] = None
    sram: Optional[Sram] = None
    flash: Optional[Flash] = None
    latency: Optional[Latency] = None
    profile: Optional[MemoryProfile] = None
    patch: Optional[PatchResult] = None
    errors: dict[str, str] = dataclasses.field(default_factory=dict)  # stage -> message
    seconds: float = 0.0

    def agreement(self, reference: Reference, inputs: InputSet) -> Optional[Agreement]:
        return next((a for a in self.correctness
                     if a.reference == reference.value and a.inputs == inputs.value), None)

    def get_config(self) -> dict[str, Any]:
        cfg = dataclasses.asdict(self)
        # derived figures, so readers of results.json need not recompute them
        if self.sram is not None:
            cfg["sram"]["ratio_tflm_over_ours"] = self.sram.ratio
        if self.flash is not None:
            cfg["flash"]["ours_model_bytes"] = self.flash.ours_model_bytes
            cfg["flash"]["tflm_estimate_bytes"] = self.flash.tflm_estimate_bytes
            cfg["flash"]["ratio_tflm_over_ours"] = self.flash.ratio
        if self.latency is not None:
            cfg["latency"]["host_ratio_tflm_over_ours"] = self.latency.host_ratio
            cfg["latency"]["m7_ratio_tflm_cmsis_nn_over_ours_dsp"] = self.latency.m7_ratio
        return cfg

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "ModelResult":
        def strip(d: Optional[dict], klass: type) -> Optional[Any]:
            if d is None:
                return None
            names = {f.name for f in dataclasses.fields(klass)}
            return klass(**{k: v for k, v in d.items() if k in names})

        latency = strip(cfg.get("latency"), Latency)
        if latency is not None:
            latency.qemu = [QemuRun(**r) for r in latency.qemu]
        return cls(
            model=cfg["model"], path=cfg["path"], status=cfg["status"],
            reasons=list(cfg.get("reasons", [])), c_name=cfg.get("c_name"),
            generated_dir=cfg.get("generated_dir"),
            correctness=[Agreement(**a) for a in cfg.get("correctness", [])],
            real_inputs=cfg.get("real_inputs"), labels=strip(cfg.get("labels"), LabelScore),
            sram=strip(cfg.get("sram"), Sram), flash=strip(cfg.get("flash"), Flash),
            latency=latency, profile=strip(cfg.get("profile"), MemoryProfile),
            patch=strip(cfg.get("patch"), PatchResult),
            errors=dict(cfg.get("errors", {})), seconds=float(cfg.get("seconds", 0.0)))


# ---------------------------------------------------------------------------------------------
# TFLM's plan, replicated


@dataclasses.dataclass(frozen=True)
class TflmPlanReplica:
    arena_bytes: int
    live_bytes: tuple[int, ...]  # per op, file order
    op_kinds: tuple[str, ...]


def replicate_tflm_plan(graph: Graph) -> TflmPlanReplica:
    """Our own replica of TFLM's online plan, for the per-op memory picture.

    TFLM runs the ops in file order on the unmodified graph and gives every non-constant
    tensor its own buffer (no in-place reuse, reshape outputs included), rounded up to 16
    bytes, live from its producer to its last consumer (graph inputs from the first op,
    outputs to the last). Its GreedyMemoryPlanner places buffers largest first -- equal sizes
    the later tensor first -- each at the lowest offset that overlaps no buffer live at the
    same time. Kernel scratch buffers are not modelled (TFLM's x86 reference kernels request
    almost none); the benchmark reports this replica's arena next to TFLM's recorded head so
    any difference is visible. The greedy rule and the lifetimes are the planner's own
    (`planner.tflm_greedy_plan`, the implementation its greedy baseline uses).
    """
    plan = planner.tflm_greedy_plan(graph, alignment=TFLM_BUFFER_ALIGNMENT, tie_break=planner.TieBreak.LATER_TENSOR,
                                    buffers=planner.GreedyBuffers.TENSORS)
    return TflmPlanReplica(plan.arena_bytes, plan.live_bytes, tuple(op.kind.value for op in graph.ops))


# ---------------------------------------------------------------------------------------------
# Helpers


def c_identifier(stem: str) -> str:
    """A C API prefix from a file stem: [A-Za-z0-9_], not starting with a digit, <= 41 chars."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    if not name or name[0].isdigit():
        name = "m_" + name
    return name[:41]


def header_arena_bytes(model: GeneratedModel) -> int:
    """NAME_ARENA_BYTES as the generated header defines it."""
    m = re.search(rf"#define {re.escape(model.name)}_ARENA_BYTES (\d+)", model.header.read_text())
    if m is None:
        raise RuntimeError(f"{model.header} defines no {model.name}_ARENA_BYTES")
    return int(m.group(1))


def _input_details(model: GeneratedModel) -> list[dict[str, Any]]:
    """Our I/O description in the form `engine.tflm.random_inputs` takes."""
    details = []
    for t in model.inputs:
        q = ({"scales": [t.scale], "zero_points": [t.zero_point]} if t.scale is not None else {})
        details.append({"shape": t.shape, "dtype": np.dtype(t.dtype), "quantization_parameters": q})
    return details


def _as_ours(o: np.ndarray, r: np.ndarray) -> np.ndarray:
    """A reference output in our output's shape and dtype (references return the same
    elements; some give a different but equal-sized shape)."""
    return np.asarray(r).reshape(np.shape(o)).astype(np.asarray(o).dtype, copy=False)


def _same_bytes(ours: Sequence[np.ndarray], ref: Sequence[np.ndarray]) -> bool:
    return len(ours) == len(ref) and all(
        np.asarray(o).tobytes() == _as_ours(o, r).tobytes() for o, r in zip(ours, ref))


def compare_outputs(ours: Sequence[Sequence[np.ndarray]], ref: Sequence[Sequence[np.ndarray]],
                    reference: Reference, inputs: InputSet) -> Agreement:
    """Byte comparison per sample; differing elements counted, largest difference kept."""
    a = Agreement(reference.value, inputs.value, samples=len(ours))
    for o_sample, r_sample in zip(ours, ref):
        same = True
        for o, r in zip(o_sample, r_sample):
            o = np.asarray(o)
            r = _as_ours(o, r)
            if o.tobytes() == r.tobytes():
                continue
            same = False
            diff = np.abs(o.astype(np.float64) - r.astype(np.float64))
            a.differing_elements += int(np.count_nonzero(o != r))
            a.max_abs_diff = max(a.max_abs_diff, float(np.nanmax(diff)) if diff.size else 0.0)
        a.identical_samples += int(same)
    return a


def _refused(reference: Reference, inputs: InputSet, n: int, why: str) -> Agreement:
    return Agreement(reference.value, inputs.value, samples=n, refused=why)


def _first_line(e: BaseException) -> str:
    """The message's first line, plus the first compiler `error:` line if there is one (a
    BuildError's first line only names what was being built)."""
    lines = str(e).strip().splitlines()
    if not lines:
        return type(e).__name__
    text = lines[0].rstrip(":")
    diag = next((ln.strip() for ln in lines[1:] if ": error:" in ln), None)
    if diag is not None:
        text += ": " + re.sub(r"^\S*/", "", diag)  # the file's name, not its whole path
    return text[:400]


def load_baseline(path: Optional[Path]) -> tuple[dict[str, dict[str, int]], Optional[str]]:
    """(model stem -> figures, source line) from tflm_cortex_m7.json; empty if absent."""
    if path is None or not path.is_file():
        return {}, None
    data = json.loads(path.read_text())
    return dict(data.get("models", {})), data.get("source")


class _TflmTiming:
    """A TFLM interpreter of our own for timing and for the arena breakdown: the public
    `tflite_micro` runtime API (invoke, print_allocations)."""

    def __init__(self, model_bytes: bytes):
        from tflite_micro.python.tflite_micro import runtime

        with capture_c_output():
            self.interp = runtime.Interpreter.from_bytes(model_bytes)

    def arena_breakdown(self) -> tuple[int, Optional[int], Optional[int]]:
        with capture_c_output() as log:
            self.interp.print_allocations()
        text = "".join(log)
        total = _TFLM_TOTAL.search(text)
        if total is None:
            raise RuntimeError("TFLM printed no arena allocation total")
        head, tail = _TFLM_HEAD.search(text), _TFLM_TAIL.search(text)
        return (int(total.group(1)), int(head.group(1)) if head else None,
                int(tail.group(1)) if tail else None)

    def set_inputs(self, sample: Sequence[np.ndarray]) -> None:
        for i, x in enumerate(sample):
            self.interp.set_input(np.ascontiguousarray(x), i)

    def time_invokes(self, n: int) -> float:
        """Seconds per invoke over `n` back-to-back invokes (one Python call each)."""
        invoke = self.interp.invoke
        t0 = time.perf_counter()
        for _ in range(n):
            invoke()
        return (time.perf_counter() - t0) / n


def host_latency(tflm: _TflmTiming, ours: HostModel, sample: Sequence[np.ndarray],
                 rounds: int) -> tuple[float, float, int]:
    """Median seconds per invoke of TFLM and of ours, measured in alternating batches in this
    process (which engine goes first alternates too), and the batch size."""
    tflm.set_inputs(sample)
    ours.run(sample)
    single = max(tflm.time_invokes(1), ours.time_invokes(1), 1e-7)
    batch = max(1, int(HOST_BATCH_SECONDS / single))
    t_tflm, t_ours = [], []
    for r in range(max(1, rounds)):
        if r % 2:
            t_ours.append(ours.time_invokes(batch))
            t_tflm.append(tflm.time_invokes(batch))
        else:
            t_tflm.append(tflm.time_invokes(batch))
            t_ours.append(ours.time_invokes(batch))
    return statistics.median(t_tflm), statistics.median(t_ours), batch


# ---------------------------------------------------------------------------------------------
# One model


def measure_model(path: Path, work_dir: Path, options: BenchOptions = BenchOptions(),
                  baseline: Optional[dict[str, dict[str, int]]] = None,
                  progress: Callable[[str], None] = lambda stage: None) -> ModelResult:
    """Everything the benchmark reports for the model at `path`; the generated C goes to
    `work_dir/<stem>`. A converter refusal gives status 'refused' with its reasons; a failing
    stage is recorded in `errors` and the other stages still run."""
    start = time.perf_counter()
    stem = path.stem
    result = ModelResult(stem, str(path), Status.OK.value)
    model_bytes = path.read_bytes()
    baseline_row = (baseline or {}).get(stem, {})

    progress("convert")
    name = c_identifier(stem)
    out_dir = work_dir / stem
    try:
        model = convert_model(path, out_dir, name)
    except ConversionError as e:
        result.status, result.reasons = Status.REFUSED.value, [str(p) for p in e.problems]
        result.seconds = time.perf_counter() - start
        return result
    result.c_name, result.generated_dir = name, str(out_dir)
    plan = json.loads((out_dir / PLAN_JSON).read_text())
    result.sram = Sram(ours_arena_bytes=model.arena_bytes,
                       ours_lower_bound_bytes=int(plan.get("lower_bound_bytes", model.arena_bytes)),
                       tflm_arena_32bit_baseline=baseline_row.get("arena_bytes_32bit"))
    result.flash = Flash(tflite_bytes=len(model_bytes),
                         tflm_code_baseline=baseline_row.get("tflm_code_bytes_cmsis_nn"))
    result.latency = Latency(
        tflm_cmsis_nn_m7_instructions=baseline_row.get("instructions_cmsis_nn"),
        tflm_reference_m7_instructions=baseline_row.get("instructions_reference"))
    ops = plan.get("ops", [])
    result.profile = MemoryProfile([int(o["live_bytes"]) for o in ops], [str(o["kind"]) for o in ops])

    progress("tflm plan replica")
    try:
        replica = replicate_tflm_plan(reader.load_tflite(path))
        result.sram.tflm_replica_arena_bytes = replica.arena_bytes
        result.profile.tflm_live_bytes = list(replica.live_bytes)
        result.profile.tflm_op_kinds = list(replica.op_kinds)
    except (ConversionError, *STAGE_ERRORS) as e:
        result.errors["tflm plan replica"] = _first_line(e)

    # --- inputs
    rng = np.random.default_rng(options.seed)
    details = _input_details(model)
    random_samples = [random_inputs(details, rng) for _ in range(options.num_inputs)]
    real: Optional[real_inputs.RealInputs] = None
    try:
        real = real_inputs.real_inputs_for(stem, model.inputs,
                                           Path(options.data_dir) if options.data_dir else None,
                                           options.num_real)
    except (real_inputs.RealInputError, OSError) as e:
        result.errors["real inputs"] = _first_line(e)
    sets: dict[InputSet, list[list[np.ndarray]]] = {InputSet.RANDOM: random_samples}
    if real is not None:
        sets[InputSet.REAL] = real.samples
        result.real_inputs = real.source

    # --- our outputs (host)
    progress("host build")
    try:
        host = HostModel(out_dir, name)
        ours_out = {k: host.run_many(v) for k, v in sets.items()}
    except STAGE_ERRORS as e:
        result.errors["host"] = _first_line(e)
        host, ours_out = None, {}

    # --- TFLM
    progress("tflm")
    tflm_out: dict[InputSet, list[list[np.ndarray]]] = {}
    timing: Optional[_TflmTiming] = None
    try:
        tflm = TflmModel(model_bytes)
        tflm_out = {k: [tflm.run(s) for s in v] for k, v in sets.items()}
        timing = _TflmTiming(model_bytes)
        total, head, tail = timing.arena_breakdown()
        result.sram.tflm_recorded_bytes, result.sram.tflm_head_bytes, result.sram.tflm_tail_bytes = total, head, tail
        progress("tflm smallest arena")
        result.sram.tflm_smallest_bytes = TflmModel.smallest_arena(model_bytes, hi=total, granularity=1)
    except STAGE_ERRORS as e:
        result.errors["tflm"] = _first_line(e)

    # --- LiteRT reference kernels
    progress("litert")
    litert_out: dict[InputSet, list[list[np.ndarray]]] = {}
    litert_refusal: Optional[str] = None
    try:
        litert = LiteRtModel(model_bytes)
        litert_out = {k: [litert.run(s) for s in v] for k, v in sets.items()}
    except STAGE_ERRORS as e:
        litert_refusal = f"litert refuses: {_first_line(e)}"

    for kind, samples in sets.items():
        if kind not in ours_out:
            continue
        if kind in tflm_out:
            result.correctness.append(compare_outputs(ours_out[kind], tflm_out[kind], Reference.TFLM, kind))
        else:
            result.correctness.append(_refused(Reference.TFLM, kind, len(samples),
                                               f"tflm failed: {result.errors.get('tflm', '?')}"))
        if kind in litert_out:
            result.correctness.append(compare_outputs(ours_out[kind], litert_out[kind], Reference.LITERT, kind))
        else:
            result.correctness.append(_refused(Reference.LITERT, kind, len(samples), litert_refusal or "?"))

    if real is not None and real.labels is not None and InputSet.REAL in ours_out:
        labels = real.labels

        def correct(outs: list[list[np.ndarray]]) -> int:
            return sum(int(np.argmax(o[0])) == lab for o, lab in zip(outs, labels))
        result.labels = LabelScore(len(labels), correct(ours_out[InputSet.REAL]),
                                   correct(tflm_out[InputSet.REAL]) if InputSet.REAL in tflm_out else None)

    # --- host latency
    if host is not None and timing is not None and options.host_repeats > 0:
        progress("host timing")
        try:
            first = random_samples[0] if random_samples or real is None else real.samples[0]
            t_tflm, t_ours, batch = host_latency(timing, host, first, options.host_repeats)
            result.latency.host_tflm_seconds, result.latency.host_ours_seconds = t_tflm, t_ours
            result.latency.host_rounds, result.latency.host_batch = options.host_repeats, batch
        except STAGE_ERRORS as e:
            result.errors["host timing"] = _first_line(e)

    # --- Cortex-M under QEMU
    if options.qemu:
        _measure_qemu(result, out_dir, name, sets, tflm_out, options, progress)

    if options.patch:
        progress("patch-based")
        try:
            result.patch = _measure_patch(path, work_dir / f"{stem}_patch", name, random_samples,
                                          tflm_out.get(InputSet.RANDOM), options)
        except (ConversionError, qemu.QemuError, *STAGE_ERRORS) as e:
            result.errors["patch-based"] = _first_line(e)

    result.seconds = time.perf_counter() - start
    return result


def _measure_patch(path: Path, out_dir: Path, name: str, samples: list[list[np.ndarray]],
                   tflm_out: Optional[list[list[np.ndarray]]], options: BenchOptions) -> PatchResult:
    patched = compile_model(path, patch=PatchSetting("auto"))
    lbl, lbl_out = patched.layer_by_layer_arena, patched.layer_by_layer_without_input
    assert lbl is not None and lbl_out is not None  # set whenever patches are asked for
    c = patched.patch
    if c is None:
        return PatchResult(lbl, lbl_out, lbl, lbl_out)
    r = PatchResult(lbl, lbl_out, c.arena_bytes, c.arena_bytes_without_input, c.plan.split.last_op_index,
                    grid_text(c.plan.grid), c.plan.macs_overhead)
    generate(patched.graph, patched.plan, out_dir, name=name, order=patched.order, plan_extra=plan_extra(patched))
    ours = HostModel(out_dir, name).run_many(samples)
    if tflm_out is not None:
        r.samples = len(samples)
        r.identical_samples = sum(_same_bytes(o, t) for o, t in zip(ours, tflm_out))
    if options.qemu and qemu.toolchain_available() and samples:
        run = qemu.run_on_qemu(out_dir, name, samples[:1], cpu=qemu.Cpu.CORTEX_M7.value, dsp=True)
        r.m7_instructions = run.instructions_per_invoke[0]
        r.m7_identical = None if tflm_out is None else _same_bytes(run.outputs[0], tflm_out[0])
    return r


def _qemu_samples(sets: dict[InputSet, list[list[np.ndarray]]], n: int) -> list[tuple[InputSet, int]]:
    """Which samples run under QEMU: real ones first (their outputs matter most), then random."""
    picks: list[tuple[InputSet, int]] = []
    real = sets.get(InputSet.REAL, [])
    picks += [(InputSet.REAL, i) for i in range(min(len(real), (n + 1) // 2))]
    picks += [(InputSet.RANDOM, i) for i in range(min(len(sets[InputSet.RANDOM]), n - len(picks)))]
    return picks


def _measure_qemu(result: ModelResult, out_dir: Path, name: str,
                  sets: dict[InputSet, list[list[np.ndarray]]],
                  tflm_out: dict[InputSet, list[list[np.ndarray]]], options: BenchOptions,
                  progress: Callable[[str], None]) -> None:
    if not qemu.toolchain_available():
        result.errors["qemu"] = f"{qemu.ARM_CC}, {qemu.ARM_SIZE} or {qemu.QEMU} not found"
        return
    picks = _qemu_samples(sets, options.qemu_inputs)
    samples = [sets[k][i] for k, i in picks]
    assert result.latency is not None and result.flash is not None and result.sram is not None
    for cpu in options.cpus:
        for dsp in (False, True):
            label = f"qemu {cpu} {'dsp' if dsp else 'portable'}"
            progress(label)
            try:
                run = qemu.run_on_qemu(out_dir, name, samples, cpu=cpu, dsp=dsp)
            except (qemu.QemuError, *STAGE_ERRORS) as e:
                result.errors[label] = _first_line(e)
                continue
            same: Optional[int] = None
            if all(k in tflm_out for k, _ in picks):
                same = sum(_same_bytes(outs, tflm_out[k][i]) for outs, (k, i) in zip(run.outputs, picks))
            result.latency.qemu.append(QemuRun(cpu, dsp, list(run.instructions_per_invoke), same, len(samples)))
            if cpu == qemu.Cpu.CORTEX_M7.value and dsp and run.model is not None:
                result.flash.ours_model_text = run.model.text
                result.flash.ours_model_rodata = run.model.rodata
                result.flash.ours_model_data = run.model.data
                result.flash.ours_image_bytes = run.flash_bytes
                result.sram.ours_static_ram_bytes = run.model.ram_bytes


# ---------------------------------------------------------------------------------------------
# Machine and versions


def _tool_version(cmd: str) -> Optional[str]:
    try:
        proc = subprocess.run([cmd, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    line = (proc.stdout or proc.stderr).strip().splitlines()
    return line[0] if line else None


def _package_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """The machine and the versions of everything the figures depend on."""
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "packages": {p: _package_version(p) for p in ("numpy", "tflite-micro", "ai-edge-litert",
                                                         "flatbuffers", "matplotlib")},
        "tools": {t: _tool_version(t) for t in (os.environ.get("CC", "gcc"), qemu.ARM_CC, qemu.QEMU)},
    }


__all__ = ["BenchOptions", "ModelResult", "Agreement", "Sram", "Flash", "Latency", "QemuRun",
           "MemoryProfile", "LabelScore", "Status", "InputSet", "Reference", "TflmPlanReplica",
           "replicate_tflm_plan", "measure_model", "machine_info", "load_baseline", "c_identifier",
           "header_arena_bytes", "compare_outputs", "host_latency"]
