"""Planner overlap (planner.plan_memory(overlap=True), tflite_converter/write_order.py): an
op's output starting inside its dying input as far as the kernel's write order allows.

The shift is checked three ways: against a byte-level replay of every read and write
(sound, and exact where windows lie inside the image), by running the C with the output
placed at exactly that shift on the host and the Cortex-M7 (bit-exact with TFLM), and by
showing that a shift past it is refused by verify_plan and does corrupt the C's output.
"""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import pytest
from kernel_harness import (
    ConvCase,
    assert_cortex_m7_matches,
    conv_model,
    random_int8_samples,
    seeded_rng,
    tflm_outputs,
)

from engine.compare import host_vs_tflm
from engine.host import HostModel
from tflite_converter import opspec
from tflite_converter.codegen.generate import convert_model, generate
from tflite_converter.pipeline import compile_model
from tflite_converter.planner import plan_memory, verify_plan
from tflite_converter.write_order import (
    INTERLEAVED_PIXEL,
    block_starts,
    conv_output_shift,
    elementwise_output_shift,
)

SHARED = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "models"


def _replayed_shift(in_hw, in_c, out_hw, out_c, k, stride, pad, width) -> int:
    """The largest safe shift by brute force: every byte each block reads (whole windows)
    against every byte written before (after, for INTERLEAVED_PIXEL's own writes)."""
    (ih, iw), (oh, ow) = in_hw, out_hw
    n = oh * ow

    def reads(p):
        y, x = divmod(p, ow)
        return [((y * stride - pad + ky) * iw + (x * stride - pad + kx)) * in_c + c
                for ky in range(k) for kx in range(k) for c in range(in_c)
                if 0 <= y * stride - pad + ky < ih and 0 <= x * stride - pad + kx < iw]

    w = 1 if width in (1, INTERLEAVED_PIXEL) or n < width else width
    best = None
    written = 0
    for s in block_starts(n, width):
        if width == INTERLEAVED_PIXEL:
            written = max(written, (s + 1) * out_c)
        rd = [b for p in range(s, s + w) for b in reads(p)]
        if written and rd:
            limit = min(rd) - written
            best = limit if best is None else min(best, limit)
        written = max(written, (s + w) * out_c)
    return ih * iw * in_c if best is None else best


@pytest.mark.parametrize("geom", [
    # (in_hw, in_c, out_hw, out_c, k, stride, pad)
    ((6, 6), 8, (6, 6), 48, 1, 1, 0),     # expansion
    ((6, 6), 48, (6, 6), 8, 1, 1, 0),     # projection
    ((8, 8), 16, (4, 4), 32, 1, 2, 0),    # strided shortcut
    ((7, 5), 8, (7, 5), 8, 3, 1, 1),      # 3x3 SAME
    ((9, 9), 3, (5, 5), 16, 3, 2, 1),     # RGB stem, stride 2
    ((2, 1), 4, (2, 1), 4, 1, 1, 0),      # fewer pixels than a block
])
@pytest.mark.parametrize("width", [3, 1, INTERLEAVED_PIXEL])
def test_shift_is_sound_and_exact_inside_the_image(geom, width):
    in_hw, in_c, out_hw, out_c, k, stride, pad = geom
    got = conv_output_shift(*in_hw, in_c, *out_hw, out_c, stride, stride, pad, pad, (width,))
    want = _replayed_shift(in_hw, in_c, out_hw, out_c, k, stride, pad, width)
    assert got <= want  # never more than the replay allows
    if pad == 0:
        assert got == want  # windows inside the image: the bound is exact


def _plan_at_shift(compiled, extra: int = 0):
    """The one-conv plan with the output at input + (the op's allowed shift, aligned) + extra,
    everything else above both."""
    graph, plan = compiled.graph, compiled.plan
    op = graph.ops[0]
    a = plan.alignment
    d = opspec.spec(op.kind).output_shift(graph, op) // a * a + extra
    x, y = op.inputs[0], op.outputs[0]
    tx, ty = plan.tensors[x], plan.tensors[y]
    in_off = max(0, -d)
    out_off = in_off + d
    top = max(in_off + tx.bytes, out_off + ty.bytes)
    top = -(-top // a) * a
    tensors = dict(plan.tensors)
    tensors[x] = dataclasses.replace(tx, offset=in_off)
    tensors[y] = dataclasses.replace(ty, offset=out_off)
    scratch = {p: dataclasses.replace(sp, offset=top) for p, sp in plan.scratch.items()}
    arena = top + sum(-(-sp.bytes // a) * a for sp in plan.scratch.values())
    shared = min(in_off + tx.bytes, out_off + ty.bytes) - max(in_off, out_off)
    return dataclasses.replace(plan, tensors=tensors, scratch=scratch, arena_bytes=arena,
                               overlaps={0: shared} if shared > 0 else {}), d


def _brute_elementwise_shift(n: int, wi: int, wo: int) -> int:
    """The largest d such that every offset up to d is safe for a kernel that reads element
    i (wi bytes) and then writes element i (wo bytes at d + i * wo), i = 0..n-1: no write
    hits a byte a later read still needs. Capped at the input's size (nothing to overlap)."""
    for d in range(-(wi + wo) * n, n * wi + 1):
        for i in range(n - 1):
            w_lo, w_hi = d + i * wo, d + (i + 1) * wo
            if w_hi > (i + 1) * wi and w_lo < n * wi:  # hits the input of elements > i
                return d - 1
    return n * wi


@pytest.mark.parametrize("wi,wo", [(4, 1), (1, 4), (1, 1), (2, 1), (1, 2)])
def test_elementwise_shift_is_exact(wi, wo):
    for n in (1, 2, 3, 7, 16):
        assert elementwise_output_shift(n, wi, wo) == _brute_elementwise_shift(n, wi, wo), n


# every kernel the emitter picks for CONV_2D: matrix core 1x1 (48 channels), register 1x1
# (8 / 16 / 24 / 32 channels, strided, odd output count), kxk gather, stride-2 stem
CASES = [
    ConvCase("ov_expand_reg8", (1, 6, 6, 8), 48, kernel=(1, 1), padding="VALID"),
    ConvCase("ov_project_mm", (1, 6, 6, 48), 8, kernel=(1, 1), padding="VALID"),
    ConvCase("ov_wide_reg32_s2_odd", (1, 8, 8, 32), 7, kernel=(1, 1), stride=(2, 2), padding="VALID"),
    ConvCase("ov_reg24", (1, 5, 5, 24), 40, kernel=(1, 1), padding="VALID"),
    ConvCase("ov_3x3_same", (1, 7, 5, 8), 8),
    ConvCase("ov_stem_s2", (1, 9, 9, 3), 16, stride=(2, 2)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_output_at_the_shift_is_bit_exact_host_and_cortex_m7(case, tmp_path):
    model = conv_model(case, False, seeded_rng(case.name))
    compiled = compile_model(model)
    plan, d = _plan_at_shift(compiled)
    assert verify_plan(compiled.graph, plan) == []
    assert plan.overlaps, f"shift {d} gives no overlap: the case tests nothing"
    out = tmp_path / case.name
    generate(compiled.graph, plan, out, name="m", order=compiled.order)
    samples = random_int8_samples(seeded_rng(case.name + "in"), case.in_shape)
    want = tflm_outputs(model, samples)
    for got, w in zip(HostModel(out, "m", sanitize=True).run_many(samples), want):
        assert np.array_equal(got[0], w[0])
    assert_cortex_m7_matches(out, "m", samples[:2], want[:2])


@pytest.mark.parametrize("case", [CASES[0], CASES[2], CASES[4]], ids=lambda c: c.name)
def test_a_shift_past_the_proof_is_refused_and_corrupts(case, tmp_path):
    model = conv_model(case, False, seeded_rng(case.name))
    compiled = compile_model(model)
    # one alignment step past the proof: verify_plan names the overlap
    plan, d = _plan_at_shift(compiled, extra=compiled.plan.alignment)
    assert any("overlaps" in p for p in verify_plan(compiled.graph, plan))
    # far past it (the output over the whole input): the C really computes wrong bytes
    far, _ = _plan_at_shift(compiled, extra=-d)
    out = tmp_path / case.name
    generate(compiled.graph, far, out, name="m", order=compiled.order)
    samples = random_int8_samples(seeded_rng(case.name + "in"), case.in_shape)
    got = HostModel(out, "m").run_many(samples)
    assert any(not np.array_equal(g[0], w[0]) for g, w in zip(got, tflm_outputs(model, samples)))


@pytest.mark.parametrize("name,below", [
    ("tflm_person_detect", 0.75), ("mlperf_tiny_vww_96_int8", 0.85), ("mlperf_tiny_ic_resnet_quant", 0.75),
    ("tinymaix_mnist_resnet_q", 0.75), ("mlperf_tiny_kws_ref_model_int8", 1.0),
    # the QUANTIZE over the float input image (write_order.elementwise_output_shift)
    ("tinyengine_mcunet_vww", 0.88),
    # float32 in and out: QUANTIZE and DEQUANTIZE over their dying inputs
    ("mlperf_tiny_ad_toycar_fullint_floatio", 0.81),
])
def test_shared_models_with_overlap(name, below, tmp_path):
    path = SHARED / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"../shared not found: {path} unavailable")
    compiled = compile_model(path, overlap=True)
    graph, plan = compiled.graph, compiled.plan
    assert verify_plan(graph, plan) == []
    plain = plan_memory(graph, compiled.order)
    assert plan.arena_bytes <= plain.arena_bytes
    assert plan.arena_bytes <= below * plan.lower_bound_bytes  # below the layer-by-layer bound
    if below < 1.0:
        assert plan.overlaps
    convert_model(path, tmp_path / name, name="m", overlap=True)
    assert host_vs_tflm(path, tmp_path / name, "m", seed=3) is None
