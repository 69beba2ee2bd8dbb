"""results.json and results.md: every figure machine-readable, and tables a person reads.

results.md opens with one summary table (each cell "TFLM → ours (ratio)", ratios > 1 mean
ours is better) and the geometric mean of each ratio over the models that have it, then one
detail table per area, the refused models with the converter's reasons, and the machine.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from benchmarks.measure import Agreement, InputSet, ModelResult, Reference, Status

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
MAX_REASONS = 6  # refusal lines shown per model in results.md (results.json has all)


def geomean(values: Iterable[Optional[float]]) -> Optional[float]:
    """Geometric mean of the positive values given (None and non-positive are skipped)."""
    logs = [math.log(v) for v in values if v is not None and v > 0 and math.isfinite(v)]
    return math.exp(sum(logs) / len(logs)) if logs else None


# ---------------------------------------------------------------------------------------------
# JSON


def results_document(results: Sequence[ModelResult], machine: dict[str, Any], options: dict[str, Any],
                     baseline_path: Optional[str], baseline_source: Optional[str], command: str,
                     wall_seconds: float) -> dict[str, Any]:
    ok = [r for r in results if r.status == Status.OK.value]
    return {
        "command": command,
        "wall_seconds": wall_seconds,
        "options": options,
        "machine": machine,
        "baseline": {"path": baseline_path, "source": baseline_source},
        "geomean": {
            "sram_ratio_tflm_over_ours": geomean(r.sram.ratio for r in ok if r.sram),
            "flash_ratio_tflm_over_ours": geomean(r.flash.ratio for r in ok if r.flash),
            "host_latency_ratio_tflm_over_ours": geomean(r.latency.host_ratio for r in ok if r.latency),
            "m7_instruction_ratio_tflm_cmsis_nn_over_ours": geomean(r.latency.m7_ratio for r in ok if r.latency),
        },
        "models": [r.get_config() for r in results],
    }


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(doc, indent=1, allow_nan=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    raise TypeError(f"cannot serialise {type(o).__name__}")


# ---------------------------------------------------------------------------------------------
# Markdown


def _n(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _x(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.2f}×"


def _us(seconds: Optional[float]) -> str:
    if seconds is None:
        return "–"
    us = seconds * 1e6
    return f"{us:,.1f}" if us < 100 else f"{us:,.0f}"


def _pair(tflm: Optional[float], ours: Optional[float], ratio: Optional[float], fmt=_n) -> str:
    if tflm is None and ours is None:
        return "–"
    return f"{fmt(tflm)} → {fmt(ours)} ({_x(ratio)})"


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """A GitHub-flavoured markdown table; columns in `right` are right-aligned."""
    sep = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(_esc(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"row of {len(r)} cells under a header of {len(header)}")
        lines.append("| " + " | ".join(_esc(c) for c in r) + " |")
    return lines


def agreement_text(a: Optional[Agreement]) -> str:
    if a is None:
        return "–"
    if a.refused is not None:
        return a.refused.split(":", 1)[0] if a.refused.startswith("litert refuses") else a.refused
    if a.identical:
        return f"identical ({a.samples}/{a.samples})"
    n = a.differing_elements
    return (f"{a.samples - a.identical_samples}/{a.samples} differ: {n} "
            f"element{'' if n == 1 else 's'}, max {a.max_abs_diff:g}")


NOT_RUN = "not run (host build failed)"


def _short_agreement(r: ModelResult, ref: Reference) -> str:
    parts = [a for a in (r.agreement(ref, InputSet.RANDOM), r.agreement(ref, InputSet.REAL)) if a]
    if not parts:
        return NOT_RUN if "host" in r.errors else "–"
    refused = [a for a in parts if a.refused]
    if refused:
        return agreement_text(refused[0])
    n = sum(a.samples for a in parts)
    same = sum(a.identical_samples for a in parts)
    return f"yes ({n}/{n})" if same == n else f"{n - same}/{n} differ"


def _qemu_instr(r: ModelResult, cpu: str, dsp: bool) -> Optional[float]:
    run = r.latency.qemu_run(cpu, dsp) if r.latency else None
    return run.mean_instructions if run and run.instructions else None


def _qemu_agree(r: ModelResult) -> str:
    runs = r.latency.qemu if r.latency else []
    known = [q for q in runs if q.outputs_identical_to_tflm is not None]
    if not known:
        return "–"
    same = sum(q.outputs_identical_to_tflm or 0 for q in known)
    total = sum(q.samples for q in known)
    return f"{same}/{total}"


def markdown(doc: dict[str, Any], results: Sequence[ModelResult]) -> str:
    ok = [r for r in results if r.status == Status.OK.value]
    refused = [r for r in results if r.status == Status.REFUSED.value]
    gm = doc["geomean"]
    out: list[str] = ["# Our generated C vs TensorFlow Lite Micro", ""]
    out += [f"Command: `{doc['command']}` — {len(results)} models, {len(ok)} converted, "
            f"{len(refused)} refused; wall time {doc['wall_seconds']:.0f} s.", ""]

    out += ["## Summary", "",
            "Each cell is TFLM → ours (TFLM / ours; above 1× ours is better). SRAM: TFLM's smallest "
            "arena that allocates vs our arena. Flash: TFLM + CMSIS-NN code (baseline) + .tflite vs "
            "our Cortex-M7 model object (code + weights). Host: median µs per invoke, same process. "
            "Cortex-M7: instructions per invoke, TFLM + CMSIS-NN (baseline) vs our DSP build.", ""]
    rows = []
    for r in ok:
        s, f, lat = r.sram, r.flash, r.latency
        rows.append([
            r.model, _short_agreement(r, Reference.TFLM),
            _pair(s.tflm_smallest_bytes, s.ours_arena_bytes, s.ratio) if s else "–",
            _pair(f.tflm_estimate_bytes, f.ours_model_bytes, f.ratio) if f else "–",
            _pair(lat.host_tflm_seconds, lat.host_ours_seconds, lat.host_ratio, _us) if lat else "–",
            _pair(lat.tflm_cmsis_nn_m7_instructions, _qemu_instr(r, "cortex-m7", True), lat.m7_ratio)
            if lat else "–",
        ])
    rows.append(["**geometric mean**", "", _x(gm["sram_ratio_tflm_over_ours"]),
                 _x(gm["flash_ratio_tflm_over_ours"]), _x(gm["host_latency_ratio_tflm_over_ours"]),
                 _x(gm["m7_instruction_ratio_tflm_cmsis_nn_over_ours"])])
    out += table(["model", "same bytes as TFLM", "SRAM (B)", "Flash (B)", "host latency (µs)",
                  "Cortex-M7 instructions"], rows)
    out.append("")

    out += ["## Correctness", "",
            "Output bytes of our C (host build) against TFLM (PyPI tflite-micro) and ai_edge_litert "
            "(BUILTIN_REF) on seeded random inputs and on real inputs where the shared data has them; "
            "QEMU: samples whose Cortex-M output bytes equal TFLM's, over all builds.", ""]
    rows = []
    for r in ok:
        lab = r.labels
        if not r.correctness and "host" in r.errors:
            rows.append([r.model, NOT_RUN, "–", "–", "–", r.real_inputs or "–", "–", _qemu_agree(r)])
            continue
        rows.append([r.model, agreement_text(r.agreement(Reference.TFLM, InputSet.RANDOM)),
                     agreement_text(r.agreement(Reference.TFLM, InputSet.REAL)),
                     agreement_text(r.agreement(Reference.LITERT, InputSet.RANDOM)),
                     agreement_text(r.agreement(Reference.LITERT, InputSet.REAL)),
                     r.real_inputs or "–",
                     f"{lab.ours_correct}/{lab.samples} (TFLM {_n(lab.tflm_correct)})" if lab else "–",
                     _qemu_agree(r)])
    out += table(["model", "vs TFLM, random", "vs TFLM, real", "vs LiteRT, random", "vs LiteRT, real",
                  "real inputs", "top-1 = label", "QEMU = TFLM"], rows)
    out.append("")

    out += ["## SRAM (bytes)", "",
            "TFLM (x86-64 wheel): recorded arena total = head (non-persistent: activations, scratch) + "
            "tail (persistent); smallest = smallest arena with which it still allocates (bisection "
            "to the byte). 32-bit: recorded total of the Cortex-M7 build (baseline json). Replica: "
            "our replica of TFLM's greedy plan (benchmarks/measure.py `replicate_tflm_plan`), to "
            "compare with the head. Ours: arena from the plan, the lower bound for our schedule, "
            "and .data + .bss of the Cortex-M7 model object (arena plus any other state).", ""]
    rows = []
    for r in ok:
        s = r.sram
        assert s is not None  # every measured (OK) model has its SRAM figures
        rows.append([r.model, _n(s.tflm_recorded_bytes), _n(s.tflm_head_bytes), _n(s.tflm_tail_bytes),
                     _n(s.tflm_smallest_bytes), _n(s.tflm_arena_32bit_baseline),
                     _n(s.tflm_replica_arena_bytes), _n(s.ours_arena_bytes),
                     _n(s.ours_lower_bound_bytes), _n(s.ours_static_ram_bytes), _x(s.ratio)])
    out += table(["model", "TFLM recorded", "head", "tail", "TFLM smallest", "TFLM 32-bit",
                  "replica", "ours arena", "lower bound", "ours static RAM", "TFLM / ours"],
                 rows, right=range(1, 11))
    out.append("")

    out += ["## Flash (bytes)", "",
            "Ours: the model's Cortex-M7 object (DSP build: code, weights, constants) and the whole "
            "linked QEMU image (harness and newlib stdio included). TFLM: its code with CMSIS-NN "
            "(baseline json) plus the .tflite it reads the weights from.", ""]
    rows = []
    for r in ok:
        f = r.flash
        assert f is not None
        rows.append([r.model, _n(f.tflite_bytes), _n(f.ours_model_text), _n(f.ours_model_rodata),
                     _n(f.ours_model_data), _n(f.ours_model_bytes), _n(f.ours_image_bytes),
                     _n(f.tflm_code_baseline), _n(f.tflm_estimate_bytes), _x(f.ratio)])
    out += table(["model", ".tflite", "ours text", "ours rodata", "ours data", "ours model",
                  "ours image", "TFLM code", "TFLM + .tflite", "TFLM / ours"], rows, right=range(1, 10))
    out.append("")

    out += ["## Latency", "",
            "Host: median µs per invoke over interleaved rounds in one process (TFLM timed around "
            "its Python `invoke()`, ours in C). QEMU `-icount shift=0`: instructions per invoke of "
            "our C, portable and DSP builds. TFLM columns: Cortex-M7 figures from the baseline json.",
            ""]
    rows = []
    for r in ok:
        lat = r.latency
        assert lat is not None
        rows.append([r.model, _us(lat.host_tflm_seconds), _us(lat.host_ours_seconds), _x(lat.host_ratio),
                     _n(_qemu_instr(r, "cortex-m7", False)), _n(_qemu_instr(r, "cortex-m7", True)),
                     _n(_qemu_instr(r, "cortex-m4", False)), _n(_qemu_instr(r, "cortex-m4", True)),
                     _n(lat.tflm_cmsis_nn_m7_instructions), _n(lat.tflm_reference_m7_instructions),
                     _x(lat.m7_ratio)])
    out += table(["model", "host TFLM µs", "host ours µs", "TFLM / ours", "M7 portable", "M7 DSP",
                  "M4 portable", "M4 DSP", "TFLM+CMSIS-NN M7", "TFLM ref M7", "CMSIS-NN / ours DSP"],
                 rows, right=range(1, 11))
    out.append("")

    patched = [r for r in ok if r.patch is not None]
    if patched:
        out += ["## Patch-based inference (`--patch=auto`)", "",
                "The first stage run patch by patch (tflite_converter/patch.py) where a split lowers the "
                "arena; \"layer by layer\" where none does. SRAM: our arena layer by layer → patched "
                "(layer by layer / patched), with the graph input in the arena (as the C has it) and held "
                "outside it. MACs: the share recomputed in the patches' halos. Same bytes: the patched C's "
                "outputs (host, random inputs) against TFLM's. Cortex-M7: DSP-build instructions per "
                "invoke, layer by layer → patched, one sample, and whether that sample equals TFLM.", ""]
        rows = []
        for r in patched:
            p = r.patch
            assert p is not None
            lbl_m7 = _qemu_instr(r, "cortex-m7", True)
            if p.split_op is None:
                rows.append([r.model, "layer by layer", "–", _n(p.layer_by_layer_bytes),
                             _n(p.layer_by_layer_without_input_bytes), "–", "–", "–"])
                continue
            m7 = "–"
            if p.m7_instructions is not None and lbl_m7:
                m7 = (f"{_n(lbl_m7)} → {_n(p.m7_instructions)} ({p.m7_instructions / lbl_m7:.2f}×"
                      f"{', same' if p.m7_identical else ', DIFFERENT' if p.m7_identical is False else ''})")
            rows.append([r.model, f"op {p.split_op}", str(p.grid),
                         _pair(p.layer_by_layer_bytes, p.arena_bytes, p.ratio),
                         _pair(p.layer_by_layer_without_input_bytes, p.arena_without_input_bytes,
                               p.ratio_without_input),
                         f"+{100 * p.macs_overhead:.1f}%", f"{p.identical_samples}/{p.samples}", m7])
        out += table(["model", "split", "grid", "SRAM (B)", "SRAM, input outside (B)", "MACs",
                      "same bytes as TFLM", "Cortex-M7 instructions"], rows)
        out.append("")

    if refused:
        out += ["## Refused by the converter", ""]
        for r in refused:
            out.append(f"- `{r.model}`:")
            out += [f"  - {_esc(line)}" for line in r.reasons[:MAX_REASONS]]
            if len(r.reasons) > MAX_REASONS:
                out.append(f"  - … and {len(r.reasons) - MAX_REASONS} more (results.json lists all)")
        out.append("")

    failed = [r for r in results if r.errors]
    if failed:
        out += ["## Stages that failed", ""]
        out += [f"- `{r.model}` {stage}: {_esc(msg)}" for r in failed for stage, msg in r.errors.items()]
        out.append("")

    m = doc["machine"]
    out += ["## Machine and sources", "",
            f"- {m['cpu']}, {m['cores']} cores, {m['platform']}",
            f"- Python {m['python']}; " + ", ".join(f"{k} {v or 'absent'}" for k, v in m["packages"].items()),
            *[f"- {k}: {v or 'absent'}" for k, v in m["tools"].items()],
            f"- TFLM Cortex-M7 reference figures (instructions, 32-bit arena, code size): "
            f"{doc['baseline']['path'] or 'absent'} — {doc['baseline']['source'] or 'no source given'}",
            "- options: " + ", ".join(f"{k}={v}" for k, v in doc["options"].items()), ""]
    return "\n".join(out)


def write_markdown(doc: dict[str, Any], results: Sequence[ModelResult], path: Path) -> None:
    path.write_text(markdown(doc, results))


def load_results(path: Path) -> tuple[dict[str, Any], list[ModelResult]]:
    """Read a results.json back (to re-render the tables or plots)."""
    doc = json.loads(path.read_text())
    return doc, [ModelResult.from_config(m) for m in doc["models"]]


__all__ = ["geomean", "results_document", "write_json", "markdown", "write_markdown", "table",
           "load_results", "RESULTS_JSON", "RESULTS_MD"]
