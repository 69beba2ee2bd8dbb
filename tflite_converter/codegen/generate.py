"""Planned Graph IR -> a self-contained folder of C99 (TinyEngine's idea, no interpreter).

The folder holds:
- `NAME.h`: the public API (arena size, input/output pointers and sizes, `NAME_invoke`);
- `NAME.c`: the static arena, the weights as `static const` arrays, and a straight-line
  `NAME_invoke` that calls one kernel per op with literal offsets. The kernels are
  `#include`d as `.c` files, so every kernel function is `static` in the model's
  translation unit: two models with different names link into one program, and the
  compiler sees the literal arguments at each call;
- `kernels/`: the engine kernel sources the model uses (and their headers), copied;
- `io.json`: name, shape, dtype, quantization and arena offset of each input and output,
  for the run helpers (`engine.host`, `engine.qemu`);
- `plan.json`: the memory plan.

`cc -std=c99 -Wall -Wextra -Werror -I DIR DIR/*.c` compiles it (only `NAME.c` is a
top-level `.c`). `convert_model` runs the whole pipeline from a `.tflite`
(`tflite_converter.pipeline`, shared with the `convert` command line).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Any, Optional, Sequence

from engine import catalogue
from tflite_converter import op_registry, plan_report
from tflite_converter.codegen import c_writer
from tflite_converter.codegen.api import KernelCall
from tflite_converter.codegen.context import CodegenContext, PlanView
from tflite_converter.errors import ConversionError, Problem
from tflite_converter.ir import Graph, Op, shape_str
from tflite_converter.patch import PatchSetting
from tflite_converter.pipeline import LAYER_BY_LAYER, compile_model, plan_extra

# Arena alignment: the widest type a kernel reads from it (int32 accumulators, float edges)
# is 4 bytes; 8 keeps 64-bit loads possible.
ARENA_ALIGN = 8

# the model name prefixes every public symbol (NAME_ARENA_BYTES, NAME_invoke, ...) and every
# constant array's name (CodegenContext cuts those at 60 characters)
NAME_MAX_CHARS = 41


@dataclasses.dataclass(frozen=True)
class IoTensor:
    """One model input or output as the API exposes it."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name
    scale: Optional[float]
    zero_point: Optional[int]
    offset: int
    bytes: int

    def get_config(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "IoTensor":
        return cls(**{**cfg, "shape": tuple(cfg["shape"])})


@dataclasses.dataclass(frozen=True)
class GeneratedModel:
    output_dir: Path
    name: str
    arena_bytes: int
    inputs: tuple[IoTensor, ...]
    outputs: tuple[IoTensor, ...]
    kernels: tuple[str, ...]  # kernel stems used
    const_bytes: int  # bytes of `static const` data (weights etc.)

    @property
    def header(self) -> Path:
        return self.output_dir / f"{self.name}.h"

    @property
    def source(self) -> Path:
        return self.output_dir / f"{self.name}.c"

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arena_bytes": self.arena_bytes,
            "inputs": [t.get_config() for t in self.inputs],
            "outputs": [t.get_config() for t in self.outputs],
            "kernels": list(self.kernels),
            "const_bytes": self.const_bytes,
        }

    @classmethod
    def from_config(cls, cfg: dict[str, Any], output_dir: Path) -> "GeneratedModel":
        return cls(Path(output_dir), cfg["name"], int(cfg["arena_bytes"]),
                   tuple(IoTensor.from_config(c) for c in cfg["inputs"]),
                   tuple(IoTensor.from_config(c) for c in cfg["outputs"]),
                   tuple(cfg["kernels"]), int(cfg["const_bytes"]))

    @classmethod
    def load(cls, output_dir: str | os.PathLike[str]) -> "GeneratedModel":
        """Read back a generated folder's description from its io.json."""
        d = Path(output_dir)
        return cls.from_config(json.loads((d / IO_JSON).read_text()), d)


IO_JSON = "io.json"
PLAN_JSON = "plan.json"


# ---------------------------------------------------------------------------------------------
# Plan adapter


def plan_view(plan: Any, graph: Graph) -> PlanView:
    """Read the planner's MemoryPlan (tflite_converter.planner) into a PlanView; a PlanView
    passes through (tests and callers with a hand-made layout)."""
    if isinstance(plan, PlanView):
        return plan
    offsets = {int(i): int(p.offset) for i, p in plan.tensors.items()}
    scratch = {int(pos): (int(s.offset), int(s.bytes)) for pos, s in plan.scratch.items()}
    return PlanView(int(plan.arena_bytes), offsets, scratch,
                    frozenset(int(p) for p in getattr(plan, "inplace_ops", ())),
                    {int(p): str(v) for p, v in getattr(plan, "variants", {}).items()})


# ---------------------------------------------------------------------------------------------
# Generation


def _check_name(name: str) -> None:
    if not c_writer.is_identifier(name, NAME_MAX_CHARS):
        raise ConversionError(f"--name '{name}' is not a C identifier prefix "
                              f"(letters, digits, '_', not starting with a digit, at most {NAME_MAX_CHARS} chars)")


def _io_tensor(graph: Graph, ctx: CodegenContext, index: int, role: str) -> IoTensor:
    t = graph.tensors[index]
    if t.is_constant:
        raise ConversionError(Problem(f"graph {role} is a constant; the API exposes only arena "
                                      "tensors", tensor=t.name))
    offset = ctx.offset(index)
    if offset % t.dtype.itemsize:
        raise ConversionError(Problem(f"graph {role} at arena offset {offset} is not aligned to its "
                                      f"{t.dtype.itemsize}-byte elements", tensor=t.name))
    q = t.quant if t.quant is not None and t.quant.scale.size == 1 else None
    return IoTensor(t.name, tuple(int(d) for d in t.shape), t.dtype.value,
                    float(q.scale[0]) if q is not None else None,
                    int(q.zero_point[0]) if q is not None else None,
                    offset, t.nbytes)


def _emit_ops(graph: Graph, ctx: CodegenContext, order: Sequence[int]) -> tuple[list[str], list[str]]:
    """C statements of NAME_invoke and the kernel stems they use. Every op without an
    emitter is reported at once."""
    emitters = {i: op_registry.rule_and_emitter(graph, graph.ops[i])[1] for i in order}
    missing = [Problem(f"no C kernel for {graph.ops[i].kind.value} (no emitter in an op record)",
                       graph.ops[i].index, graph.ops[i].kind.value)
               for i in order if emitters[i] is None]
    if missing:
        raise ConversionError(missing)
    body: list[str] = []
    stems: list[str] = []
    problems: list[Problem] = []
    for pos in order:
        op = graph.ops[pos]
        try:
            emit = emitters[pos]
            assert emit is not None  # the missing ones were refused above
            call: KernelCall = emit(ctx, op)
        except ConversionError as e:  # keep going: every refusal is reported at once
            problems.extend(e.problems)
            continue
        except Exception as e:  # an emitter bug still names the op instead of a bare traceback
            raise ConversionError(Problem(f"C emitter failed: {type(e).__name__}: {e}",
                                          op.index, op.kind.value)) from e
        body.append("    " + c_writer.comment(_describe(graph, op)))
        # per-op timing hook for the latency model's calibration (MCU_PROFILE_OPS); the
        # macros expand to nothing otherwise
        body.append(f"    MCU_OP_BEGIN({op.index});")
        code = call.code.strip()
        if code:
            body.extend("    " + line if line.strip() else "" for line in code.splitlines())
        else:
            body.append("    /* nothing to do: the plan already holds the result in place (alias) */")
        body.append(f"    MCU_OP_END({op.index});")
        for stem in call.kernels:
            if stem not in stems:
                stems.append(stem)
    if problems:
        raise ConversionError(problems)
    return body, stems


def _describe(graph: Graph, op: Op) -> str:
    ins = ", ".join(shape_str(graph.tensors[i].shape) for i in op.inputs
                    if i >= 0 and not graph.tensors[i].is_constant)
    outs = ", ".join(shape_str(graph.tensors[i].shape) for i in op.outputs)
    return f"{op}: {ins} -> {outs}"


def _header(name: str, arena_bytes: int, n_in: int, n_out: int, graph: Graph,
            inputs: Sequence[IoTensor], outputs: Sequence[IoTensor]) -> str:
    guard = f"{name}_H_"
    io_doc = "\n".join(
        f" *   {role} {i}: {t.dtype} {shape_str(t.shape)} ({t.bytes} bytes)"
        + (f", scale {t.scale!r}, zero point {t.zero_point}" if t.scale is not None else "")
        for role, group in (("input", inputs), ("output", outputs)) for i, t in enumerate(group))
    return f"""/* Generated by tflite_converter from '{graph.name}'. Do not edit.
 *
{io_doc}
 */
#ifndef {guard}
#define {guard}

#include <stddef.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define {name}_ARENA_BYTES {arena_bytes}
#define {name}_NUM_INPUTS {n_in}
#define {name}_NUM_OUTPUTS {n_out}

/* Write input `index` here (TFLite layout and dtype) before every {name}_invoke: the arena
 * reuses its bytes once they are read, as TFLM's does. NULL if out of range. */
void *{name}_input(int index);
size_t {name}_input_bytes(int index);
/* Read output `index` here after {name}_invoke; NULL if out of range. */
const void *{name}_output(int index);
size_t {name}_output_bytes(int index);
/* Run the model once. Returns 0 on success. Not reentrant: one static arena. */
int {name}_invoke(void);

#ifdef __cplusplus
}}
#endif

#endif /* {guard} */
"""


# Opt-in per-op timing: built with -DMCU_PROFILE_OPS, each op of NAME_invoke calls the
# harness's mcu_profile_op_begin/end around its statements (engine/runtime/cortexm_main.c
# reads SysTick there), which is how nas/latency.py gets per-op instruction counts. Without
# the define the macros are empty statements and the code is what it was.
_PROFILE_HOOK = (
    "#ifdef MCU_PROFILE_OPS",
    "void mcu_profile_op_begin(int op);",
    "void mcu_profile_op_end(int op);",
    "#define MCU_OP_BEGIN(i) mcu_profile_op_begin(i)",
    "#define MCU_OP_END(i) mcu_profile_op_end(i)",
    "#else",
    "#define MCU_OP_BEGIN(i) ((void)0)",
    "#define MCU_OP_END(i) ((void)0)",
    "#endif",
)


def _switch(fn_sig: str, cases: Sequence[str], default: str) -> str:
    lines = [f"{fn_sig} {{", "    switch (index) {"]
    lines += [f"    case {i}: return {expr};" for i, expr in enumerate(cases)]
    lines += [f"    default: return {default};", "    }", "}"]
    return "\n".join(lines)


def _source(name: str, ctx: CodegenContext, body: list[str], kernel_files: Sequence[str],
            stems: Sequence[str], inputs: Sequence[IoTensor], outputs: Sequence[IoTensor]) -> str:
    align = f"{name}_ALIGNED"
    invoke_text = "\n".join(body)
    # Only arrays the final code names are defined: an unused static const is a warning
    # (-Wunused-const-variable is part of -Wall for C) and would waste Flash.
    arrays = [a for a in ctx.arrays() if re.search(rf"\b{re.escape(a.name)}\b", invoke_text)]
    includes = [f'#include "kernels/{catalogue.COMMON_HEADER}"'] if catalogue.COMMON_HEADER in kernel_files else []
    includes += [f'#include "kernels/{s}.c"' for s in stems]
    parts = [
        "/* Generated by tflite_converter. Do not edit. */",
        f'#include "{name}.h"',
        "",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "#include <string.h>",
        "",
        "/* Kernels are compiled into this translation unit: their functions are static. A",
        " * kernel file may hold several variants of which this model calls some: the unused",
        " * ones must not warn. */",
        "#if defined(__GNUC__) || defined(__clang__)",
        "#define MCU_KERNEL static __attribute__((unused))",
        "#else",
        "#define MCU_KERNEL static",
        "#endif",
        *includes,
        "",
        *_PROFILE_HOOK,
        "",
        "#if defined(__GNUC__) || defined(__clang__)",
        f"#define {align}(n) __attribute__((aligned(n)))",
        "#else",
        f"#define {align}(n)",
        "#endif",
        "",
        f"static int8_t {name}_arena[{name}_ARENA_BYTES > 0 ? {name}_ARENA_BYTES : 1] {align}({ARENA_ALIGN});",
        "",
        *[a.definition(align) + "\n" for a in arrays],
        _switch(f"void *{name}_input(int index)",
                [f"(void *)({name}_arena + {t.offset})" for t in inputs], "NULL"),
        "",
        _switch(f"size_t {name}_input_bytes(int index)", [f"{t.bytes}u" for t in inputs], "0u"),
        "",
        _switch(f"const void *{name}_output(int index)",
                [f"(const void *)({name}_arena + {t.offset})" for t in outputs], "NULL"),
        "",
        _switch(f"size_t {name}_output_bytes(int index)", [f"{t.bytes}u" for t in outputs], "0u"),
        "",
        f"int {name}_invoke(void) {{",
        *body,
        "    return 0;",
        "}",
        "",
    ]
    return "\n".join(parts)


def plan_json(graph: Graph, plan: Any, extra: Optional[dict[str, Any]] = None) -> str:
    """plan.json's text: the planner's report (`plan_report.plan_to_json`) of a MemoryPlan,
    or offsets and scratch only for a hand-made PlanView; `extra` adds top-level entries (the
    patch plan, pipeline.plan_extra)."""
    if not isinstance(plan, PlanView):
        return json.dumps({**plan_report.plan_to_json(graph, plan), **(extra or {})}, indent=1)
    return json.dumps({
        "arena_bytes": plan.arena_bytes,
        "tensors": [{"index": i, "name": graph.tensors[i].name, "offset": o,
                     "bytes": graph.tensors[i].nbytes} for i, o in sorted(plan.tensor_offsets.items())],
        "scratch": [{"op": k, "offset": o, "bytes": b} for k, (o, b) in sorted(plan.scratch.items())],
    }, indent=1)


def generate(graph: Graph, plan: Any, output_dir: str | os.PathLike[str], name: str = "model",
             order: Optional[Sequence[int]] = None, plan_extra: Optional[dict[str, Any]] = None) -> GeneratedModel:
    """Write the C folder for `graph` laid out by `plan`; ops run in `order` (positions in
    `graph.ops`, default: their order in the graph); `plan_extra`: more entries for plan.json.
    Raises ConversionError listing every op that has no C kernel."""
    _check_name(name)
    view = plan_view(plan, graph)
    order = list(range(len(graph.ops))) if order is None else [int(i) for i in order]
    ctx = CodegenContext(graph, view, name)
    body, stems = _emit_ops(graph, ctx, order)
    inputs = tuple(_io_tensor(graph, ctx, i, "input") for i in graph.inputs)
    outputs = tuple(_io_tensor(graph, ctx, i, "output") for i in graph.outputs)

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    kdir = out / "kernels"
    if kdir.is_dir():  # a folder regenerated in place keeps no stale kernels
        for old in kdir.iterdir():
            if old.is_file():
                old.unlink()
    kernel_files = catalogue.copy_kernels(stems, kdir) if stems or catalogue.KERNELS_DIR.is_dir() else []

    (out / f"{name}.h").write_text(_header(name, view.arena_bytes, len(inputs), len(outputs),
                                           graph, inputs, outputs))
    source = _source(name, ctx, body, kernel_files, stems, inputs, outputs)
    (out / f"{name}.c").write_text(source)
    used = [a for a in ctx.arrays() if re.search(rf"\b{re.escape(a.name)}\b", source)]
    model = GeneratedModel(out, name, view.arena_bytes, inputs, outputs, tuple(stems),
                           sum(a.nbytes for a in used))
    (out / IO_JSON).write_text(json.dumps(model.get_config(), indent=1))
    (out / PLAN_JSON).write_text(plan_json(graph, plan, plan_extra))
    return model


# ---------------------------------------------------------------------------------------------
# The whole pipeline


def convert_model(tflite: str | os.PathLike[str] | bytes, output_dir: str | os.PathLike[str],
                  name: str = "model", overlap: bool = True, overwrite_input: bool = True,
                  patch: PatchSetting = LAYER_BY_LAYER) -> GeneratedModel:
    """Read a .tflite (path or bytes), legalize, schedule and plan (`pipeline.compile_model`,
    `overlap`, `overwrite_input` and `patch` as there), then generate C into `output_dir`.
    Raises ConversionError (one line per problem) for what cannot be run."""
    compiled = compile_model(tflite, overlap=overlap, overwrite_input=overwrite_input, patch=patch)
    return generate(compiled.graph, compiled.plan, output_dir, name=name, order=compiled.order,
                    plan_extra=plan_extra(compiled))


__all__ = ["GeneratedModel", "IoTensor", "PlanView", "generate", "convert_model", "plan_view",
           "plan_json", "IO_JSON", "PLAN_JSON"]
