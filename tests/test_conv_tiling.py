"""Loop tiling into the arena room the plan leaves free (issue 4): the planner grants an op
up to its preferred scratch (opspec.preferred_scratch_bytes) without growing the arena, the
checker holds grants to the rules, and the CONV_2D emitter picks the widest pixel block the
granted bytes hold, with output bytes still TFLM's."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.test_planner import GraphBuilder
from tflite_converter import conv2d_spec, opspec
from tflite_converter.ir import OpKind
from tflite_converter.planner import plan_memory, verify_plan

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


def _roomy_graph():
    """A 5x5 convolution with K = 800 on a 4x4 image (its minimum scratch is one pixel's
    column), followed by a 1x1 expansion to 1024 channels whose step sets the arena: at the
    5x5's step the arena has room for the 3-pixel block."""
    b = GraphBuilder()
    x = b.tensor((1, 4, 4, 32))
    y = b.conv(x, 32, 5)
    z = b.conv(y, 1024)
    return b.graph([x], [z])


def _without_preferences(monkeypatch):
    """Plan as if no kernel asked for more than its minimum."""
    conv = opspec.spec(OpKind.CONV_2D)  # loads the records, so the override below sticks
    monkeypatch.setitem(opspec._BY_NAME, OpKind.CONV_2D.name, dataclasses.replace(conv, preferred_scratch=None))


def test_grant_uses_free_room_without_growing_the_arena(monkeypatch):
    g = _roomy_graph()
    op = g.ops[0]
    minimum = opspec.scratch_bytes(g, op, False)
    preferred = opspec.preferred_scratch_bytes(g, op, False)
    assert conv2d_spec.conv2d_pixel_block(g, op) == 1 and minimum == 800 * 2 + 800
    assert preferred == conv2d_spec.conv2d_block_scratch(g, op, 3) == 3 * 800 * 2 + 800
    plan = plan_memory(g)
    assert verify_plan(g, plan) == []
    sp = plan.scratch[0]
    assert (sp.min_bytes, sp.bytes) == (minimum, preferred)
    assert plan.variants[0] == conv2d_spec.conv2d_variant(g, op, False, sp.bytes) == "px3"
    _without_preferences(monkeypatch)
    base = plan_memory(g)
    # the arena, every tensor and the ungranted scratch are the minimum-scratch plan's
    assert base.arena_bytes == plan.arena_bytes and base.tensors == plan.tensors
    assert base.scratch[1] == plan.scratch[1]
    assert base.scratch[0].bytes == base.scratch[0].min_bytes == minimum


def test_no_room_means_the_minimum():
    b = GraphBuilder()
    x = b.tensor((1, 4, 4, 32))
    y = b.conv(x, 32, 5)  # the only step: the scratch is the peak
    g = b.graph([x], [y])
    plan = plan_memory(g, overlap=False)  # with overlap the output would start inside x
    sp = plan.scratch[0]
    assert sp.bytes == sp.min_bytes == opspec.scratch_bytes(g, g.ops[0], False)
    assert plan.arena_bytes == plan.lower_bound_bytes
    assert plan.variants[0] == conv2d_spec.conv2d_variant(g, g.ops[0], False, sp.bytes) == "px1"


def test_verify_plan_checks_granted_scratch():
    g = _roomy_graph()
    plan = plan_memory(g)
    sp = plan.scratch[0]

    def with_scratch(**changes):
        return dataclasses.replace(plan, scratch={**plan.scratch, 0: dataclasses.replace(sp, **changes)})

    too_much = with_scratch(bytes=sp.bytes + 4)
    assert any("more than the" in p for p in verify_plan(g, too_much))
    wrong_min = with_scratch(min_bytes=sp.min_bytes - 4)
    assert any("scratch minimum recorded" in p for p in verify_plan(g, wrong_min))
    # a grant placed over the live input is corrupt data
    over_input = with_scratch(offset=plan.tensors[g.ops[0].inputs[0]].offset)
    assert any("overlaps" in p for p in verify_plan(g, over_input))


def test_no_variant_in_too_little_scratch_and_the_verifier_checks_the_recorded_one():
    g = _roomy_graph()
    assert conv2d_spec.conv2d_variant(g, g.ops[0], False, 100) is None
    plan = plan_memory(g)
    assert verify_plan(g, plan) == []
    wrong = dataclasses.replace(plan, variants={**plan.variants, 0: "px1"})
    assert any("kernel variant recorded as px1" in p for p in verify_plan(g, wrong))


def _cifar10():
    path = SHARED / "models" / "tinymaix_cifar10_q.tflite"
    if not path.exists():
        pytest.skip(f"{path} not found (the shared models live in <repo>/../shared)")
    return path


def test_cifar10_plan_grants_a_wider_block_within_tflm_arena():
    from tflite_converter.pipeline import compile_model

    m = compile_model(_cifar10(), overlap=False)  # layer by layer: room left for wider blocks
    assert verify_plan(m.graph, m.plan) == []
    # the default plan overlaps instead, in less SRAM than any granted block needs
    assert compile_model(_cifar10()).plan.arena_bytes < m.plan.arena_bytes
    granted = [
        p
        for p, sp in m.plan.scratch.items()
        if sp.bytes > sp.min_bytes and m.graph.ops[p].kind is OpKind.CONV_2D
    ]
    assert granted, "no CONV_2D of tinymaix_cifar10_q got its 3-pixel block"
    for p in granted:
        op = m.graph.ops[p]
        assert conv2d_spec.conv2d_pixel_block(m.graph, op) == 1
        assert m.plan.variants[p] == "px3"
    assert m.plan.arena_bytes <= 15_588  # TFLM's arena (../shared/models/README.md)


def test_cifar10_with_granted_blocks_matches_tflm(tmp_path):
    from engine.host import HostModel, have_compiler
    from engine.tflm import TflmModel, random_inputs
    from tflite_converter.codegen.generate import convert_model

    if not have_compiler():
        pytest.skip("no host C compiler")
    path = _cifar10()
    convert_model(path, tmp_path / "m", name="m")
    src = (tmp_path / "m" / "m.c").read_text()
    assert ", 3, ((int8_t *)" in src and ", 1, ((int8_t *)" in src  # both blocks in use
    ours, ref = HostModel(str(tmp_path / "m"), "m"), TflmModel(path)
    details = [ref.input_details(i) for i in range(ref.num_inputs)]
    rng = np.random.default_rng(3)
    for _ in range(3):
        sample = random_inputs(details, rng)
        for got, want in zip(ours.run(sample), ref.run(sample)):
            assert np.array_equal(np.asarray(got).view(np.uint8), np.asarray(want).view(np.uint8))
