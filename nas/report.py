"""The run's report: ``report.json`` (every figure) and ``report.md`` (for people).

Figures and where they come from:

- search: stage 1's chosen space and the table of all spaces; evolution's best held-out
  accuracy (supernet, BN recalibrated) and how many networks it measured;
- the network: MACs and parameters (MCUNet's analytic profile), the planner's arena (= the
  generated C's), the Flash estimate of weights, the latency model's estimate;
- deployed: accuracies on the test split of the float model, the int8 ``.tflite`` and our C;
  identical outputs to TFLite Micro; TFLM's arena for the same ``.tflite``; the Flash of the
  model's own object file and of the linked Cortex-M image; the QEMU instruction count.

What "fits" checks: the limits are the network's (``--sram_kb`` / ``--flash_kb`` as given, or
the part's memory less the reserve): its arena against the SRAM limit, its model object
(weights, tables and code: what the search's Flash estimate stands for) against the Flash
limit. The whole firmware (the linked image, whose harness and C library stand in for an
application) is checked against the part itself: ``image_fits_part``.
"""
from __future__ import annotations

from typing import Any, Optional

from mcunet_tf.arch import ArchConfig
from mcunet_tf.profile import profile
from nas.evolution import EvolutionResult
from nas.run_files import atomic_write_json, atomic_write_text


def _kib(n: Optional[float]) -> str:
    return "n/a" if n is None else f"{n / 1024:.1f} KiB"


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def latency_check(run: Any, arch: ArchConfig, deployed: dict[str, Any]) -> dict[str, Any]:
    """The latency model's estimate beside the QEMU count of the same network."""
    from nas.latency import LatencyModel

    model = LatencyModel.load(run.settings.mcu.qemu_cpu)
    spec = arch.to_network()
    estimate = int(model.predict_instructions(spec))
    out: dict[str, Any] = {"estimated_instructions": estimate,
                           "estimated_ms": model.predict_ms(spec, run.settings.mcu.clock_hz),
                           "cycles_per_instruction": model.cycles_per_instruction}
    measured = deployed.get("qemu_instructions")
    if measured:
        out["measured_instructions"] = int(measured)
        out["error"] = round(estimate / measured - 1.0, 4)
        out["measured_ms"] = measured * model.cycles_per_instruction / run.settings.mcu.clock_hz * 1e3
    return out


def network_figures(run: Any, arch: ArchConfig) -> dict[str, Any]:
    spec = arch.to_network()
    prof = profile(spec)
    fit = run.meter.measure(arch)
    return {"macs": prof.macs, "params": prof.params, "planned_arena_bytes": fit.arena_bytes,
            "flash_estimate_bytes": fit.flash_bytes, "latency_estimate_ms": fit.latency_ms}


def write_report(run: Any, arch: ArchConfig, evo: EvolutionResult, deployed: dict[str, Any],
                 baseline: Optional[dict[str, Any]], seconds: float) -> dict[str, Any]:
    s = run.settings
    limits = s.limits
    arena = deployed.get("arena_bytes")
    flash = deployed.get("flash_bytes_model_object")
    image = deployed.get("flash_bytes_linked_image")
    report: dict[str, Any] = {
        "mcu": s.mcu.get_config(), "limits": limits.get_config(), "reserve": s.reserve.get_config(),
        "budget": s.budget.get_config(), "data": run.splits().summary(),
        "space": run.state["done"].get("stage1"), "arch": arch.get_config(),
        "search": {"holdout_accuracy_supernet": evo.best.accuracy, "evaluations": evo.evaluations,
                   "generations": len(evo.history), "top": [t.get_config() for t in evo.top[:10]]},
        "network": network_figures(run, arch),
        "deployed": deployed,
        "latency": latency_check(run, arch, deployed),
        "margins": {"sram_bytes": None if arena is None else limits.sram_bytes - arena,
                    "flash_bytes": None if flash is None else limits.flash_bytes - flash},
        "fits": (arena is not None and arena <= limits.sram_bytes
                 and (flash is None or flash <= limits.flash_bytes)),
        "image_fits_part": None if image is None else bool(
            image <= s.mcu.flash_bytes and arena is not None
            and arena + s.reserve.sram_bytes <= s.mcu.sram_bytes),
        "baseline": baseline,
        "stages": {k: v.get("seconds") for k, v in run.state["done"].items() if isinstance(v, dict)},
        "seconds": round(seconds, 1),
    }
    atomic_write_json(run.out / "report.json", report)
    atomic_write_text(run.out / "report.md", render_markdown(report))
    return report


def _row(name: str, d: dict[str, Any], fit: dict[str, Any]) -> str:
    return (f"| {name} | {_pct(d.get('float_test_accuracy'))} | {_pct(d.get('int8_test_accuracy'))} | "
            f"{_pct(d.get('c_test_accuracy'))} | {d.get('tflm_identical', 'n/a')} | "
            f"{_kib(d.get('arena_bytes'))} | {_kib(d.get('tflm_arena_bytes'))} | "
            f"{_kib(d.get('flash_bytes_model_object'))} "
            f"({_kib(fit.get('flash_estimate_bytes', fit.get('flash_bytes')))}) | "
            f"{_kib(d.get('flash_bytes_linked_image'))} | {fit.get('macs', 0) / 1e6:.2f} M | "
            f"{d.get('qemu_instructions', 'n/a')} |")


def render_markdown(r: dict[str, Any]) -> str:
    lim, mcu, d = r["limits"], r["mcu"], r["deployed"]
    lat = r["latency"]
    space = r["space"] or {}
    lines = [
        f"# TinyNAS search: {r['data']['name']} on {mcu['name']} ({mcu['core']})",
        "",
        f"Limits: peak SRAM {_kib(lim['sram_bytes'])}, Flash {_kib(lim['flash_bytes'])}"
        + (f", latency {lim['latency_ms']:g} ms" if lim.get("latency_ms") else "")
        + f" (reserve kept for the firmware: {_kib(r['reserve']['sram_bytes'])} SRAM, "
          f"{_kib(r['reserve']['flash_bytes'])} Flash, when the MCU's own figures apply). "
          f"Budget `{r['budget']['name']}`; {r['seconds']:.0f} s in this process.",
        "",
        f"Space: width {space.get('width_mult')} resolution {space.get('resolution')} "
        f"(`--space={space.get('how')}`; stage 1 ranked w{(space.get('chosen_by_stage1') or {}).get('width_mult')}"
        f"-r{(space.get('chosen_by_stage1') or {}).get('resolution')} first, see spaces.md, flops_cdf.png). "
        f"Evolution: {r['search']['generations']} generations, {r['search']['evaluations']} networks "
        f"measured, best held-out accuracy {_pct(r['search']['holdout_accuracy_supernet'])} "
        "(supernet, BN recalibrated; evolution_curve.png).",
        "",
        "| network | float test acc | int8 .tflite test acc | our C test acc | same bytes as TFLM | "
        "our arena | TFLM arena | model Flash (estimate) | linked image | MACs | Cortex-M instructions |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        _row("searched", d, r["network"]),
    ]
    if r.get("baseline"):
        b = r["baseline"]
        lines.append(_row(f"MobileNetV2 w{b['choice'].get('width_mult')} r{b['choice'].get('resolution')} "
                          "(compound-scaled baseline)", b["deploy"], b.get("fit", {})))
    lines += [
        "",
        f"Margins: SRAM {_kib(r['margins']['sram_bytes'])}, Flash {_kib(r['margins']['flash_bytes'])}; "
        f"fits: {'yes' if r['fits'] else 'NO'} (arena vs the SRAM limit, the model object vs the Flash "
        f"limit); the whole linked image with the SRAM reserve "
        + {True: "fits", False: "does NOT fit", None: "was not built for"}[r.get("image_fits_part")]
        + f" the {mcu['name']} itself.",
        f"Latency: model {lat['estimated_instructions']:,} instructions "
        f"({lat['estimated_ms']:.2f} ms at {mcu['clock_hz'] / 1e6:.0f} MHz, "
        f"{lat['cycles_per_instruction']:g} cycles per instruction assumed)"
        + (f"; QEMU measured {lat['measured_instructions']:,} ({100 * lat['error']:+.1f}%)."
           if "measured_instructions" in lat else "; not run under QEMU."),
        "",
        "Files: arch.json, model_float.*, model_int8.tflite, c/, stage1.json, spaces.md, flops_cdf.png, "
        "evolution.json, evolution_curve.png, report.json.",
        "",
    ]
    return "\n".join(lines)
