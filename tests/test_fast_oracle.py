"""The NAS oracle's fast path (nas/fast_oracle.py) against the full planner.

The contract: for every network, ``MemoryOracle()`` (fast path first) and
``MemoryOracle(fast=False)`` (network_to_graph -> schedule -> plan_memory) give the same
arena, lower bound and Flash estimate. Where the fast path decides, the planner's own first
strategy (``two_ended``) must be the one that reached the bound: the replay is faithful, not
lucky. Candidates come from MCUNet's search spaces, the published networks, hand-made
networks where the shortcut or an im2col buffer sets the peak, networks where the fast path
must defer, and irregular networks (odd shapes, strides, single channels, alignments).
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from mcunet_tf.arch import ArchConfig, SearchSpace
from mcunet_tf.mcunet_configs import PUBLISHED, published_spec
from mcunet_tf.network import BlockSpec, ConvSpec, NetworkSpec
from nas import fast_oracle
from nas.arch_graph import network_to_graph
from nas.fast_oracle import chain_memory
from nas.memory_oracle import MemoryOracle, flash_estimate_bytes, network_flash_estimate_bytes
from tflite_converter import planner
from tflite_converter.ir import OpKind
from tflite_converter.planner import plan_memory
from tflite_converter.planner.placement import place_greedy
from tflite_converter.planner.plan import overlap_bound_bytes

WIDTHS = (0.2, 0.35, 0.5, 0.75, 1.0)
RESOLUTIONS = (32, 64, 128, 176, 224)
SAMPLES_PER_SPACE = 7  # x 5 widths x 5 resolutions x 2 class counts = 350 candidates


def _figures(p):
    return p.arena_bytes, p.lower_bound_bytes, p.flash_estimate_bytes


def _assert_same(spec, alignment=4, overlap=True):
    fast = MemoryOracle(alignment, fast=True, overlap=overlap).profile(spec)
    full = MemoryOracle(alignment, fast=False, overlap=overlap).profile(spec)
    assert _figures(fast) == _figures(full), (spec.to_json(), fast, full)
    if fast.strategy == "chain_fast":
        if not overlap:
            assert full.strategy == "two_ended" and full.arena_bytes == full.lower_bound_bytes
    else:
        assert fast == full  # deferred: the full planner's profile, strategy included
    return fast, full


def _space_candidates(seed=0):
    rng = np.random.default_rng(seed)
    for width in WIDTHS:
        for res in RESOLUTIONS:
            for classes in (10, 1000):
                space = SearchSpace(width_mult=width, resolution=res, num_classes=classes)
                for _ in range(SAMPLES_PER_SPACE):
                    yield space.sample(rng).to_network()


@pytest.mark.parametrize("overlap", [True, False])
def test_fast_equals_full_on_search_space_candidates(overlap):
    decided = total = below = 0
    for spec in _space_candidates():
        fast, _ = _assert_same(spec, overlap=overlap)
        below += fast.arena_bytes < fast.lower_bound_bytes
        decided += fast.strategy == "chain_fast"
        total += 1
    assert total >= 300
    # the point of the fast path: it decides (almost) every candidate of MCUNet's spaces
    assert decided >= 0.9 * total, f"fast path decided only {decided}/{total}"
    # with overlap the arena goes below the layer-by-layer bound on most candidates
    assert (below >= 0.8 * total) if overlap else below == 0, f"{below}/{total} below the bound"


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("alignment", [1, 8, 16])
def test_fast_equals_full_at_other_alignments(alignment, overlap):
    for i, spec in enumerate(_space_candidates(seed=1)):
        if i % 7 == 0:
            _assert_same(spec, alignment, overlap)


@pytest.mark.parametrize("overlap", [True, False])
@pytest.mark.parametrize("name", [p.name for p in PUBLISHED])
def test_fast_equals_full_on_published_networks(name, overlap):
    try:
        spec = published_spec(name)
    except FileNotFoundError as e:  # read from ../shared/mcunet_configs
        pytest.skip(str(e))
    fast, _ = _assert_same(spec, overlap=overlap)
    assert fast.strategy == "chain_fast"


def _stem(out, kernel=3, stride=2):
    return ConvSpec(out_channels=out, kernel=kernel, stride=stride)


def _peak(spec):
    """The full plan, its graph and the step where the most bytes are live (unique)."""
    graph = network_to_graph(spec)
    plan = plan_memory(graph)
    live = plan.live_bytes
    step = max(range(len(live)), key=live.__getitem__)
    assert sorted(live)[-2] < live[step], "the peak must be at one step only"
    return graph, plan, step


def test_shortcut_sets_the_peak():
    # a wide expansion inside a residual block: at its steps the block input stays alive for
    # the ADD; leave it out and the bound drops (the peak is at that step only)
    spec = NetworkSpec(
        resolution=32, in_channels=3, first_conv=_stem(16),
        blocks=(BlockSpec(16, 16, 96, 3, 1, 6, True), BlockSpec(16, 8, 24, 3, 2, 3, False)),
        feature_mix=None, num_classes=10)
    graph, plan, step = _peak(spec)
    op = graph.ops[plan.order[step]]
    shortcut = [t for t, tp in plan.tensors.items()
                if tp.first_step < step < tp.last_step and t not in op.inputs + op.outputs]
    assert shortcut, "the block input must be live at the peak without being read there"
    fast, _ = _assert_same(spec, overlap=False)
    assert fast.strategy == "chain_fast"
    _assert_same(spec)  # with overlap: the same figures, decided or deferred


def test_im2col_scratch_sets_the_peak():
    # a 3x3 feature-mix conv over 320 channels at 2x2: its im2col columns (one pixel at a
    # time, conv2d_min_pixel_block's rule) outweigh every tensor of the network
    spec = NetworkSpec(
        resolution=32, in_channels=3, first_conv=_stem(8, stride=16),
        blocks=(BlockSpec(8, 320, 24, 3, 1, 3, False),),
        feature_mix=ConvSpec(out_channels=64, kernel=3, stride=1), num_classes=10)
    graph, plan, step = _peak(spec)
    p = plan.order[step]
    assert graph.ops[p].kind is OpKind.CONV_2D
    scratch = plan.scratch[p].min_bytes
    assert scratch > max(t.bytes for t in plan.tensors.values())
    assert plan.live_bytes[step] - scratch < sorted(plan.live_bytes)[-2]
    fast, _ = _assert_same(spec, overlap=False)
    assert fast.strategy == "chain_fast"
    _assert_same(spec)  # with overlap: the same figures, decided or deferred


def test_search_space_candidate_where_shortcut_and_projection_scratch_set_the_peak():
    # w0.5 r32: the peak is a residual block's projection, with the block input and the
    # projection's im2col buffer both live
    arch = ArchConfig(resolution=32, width_mult=0.5, num_classes=10,
                      kernel_sizes=(7, 3, 7, 7, 3, 5, 3, 5, 7, 7, 5, 5, 5, 7, 3, 3, 3, 5, 3, 3, 5),
                      expand_ratios=(3, 4, 5, 6, 5, 6, 4, 5, 3, 6, 4, 3, 4, 3, 6, 5, 5, 4, 6, 4, 5),
                      depths=(4, 2, 2, 3, 3, 1))
    spec = arch.to_network()
    graph, plan, step = _peak(spec)
    p = plan.order[step]
    op = graph.ops[p]
    assert op.kind is OpKind.CONV_2D and plan.scratch[p].min_bytes > 0
    assert any(tp.first_step < step < tp.last_step and t not in op.inputs + op.outputs
               for t, tp in plan.tensors.items())
    fast, _ = _assert_same(spec)
    assert fast.strategy == "chain_fast"


# Networks where the planner's two_ended strategy misses the lower bound: the fast path must
# hand them to the full planner (another strategy reaches the bound / nothing does). The
# last one misses by one byte (alignment 1): a replay that let buffers share a byte accepts it.
DEFERRED = (
    (NetworkSpec(resolution=1, in_channels=2, first_conv=_stem(24, kernel=5, stride=3),
                 blocks=(BlockSpec(24, 24, 72, 1, 3, 3, False),), feature_mix=None, num_classes=1), 4),
    (NetworkSpec(resolution=5, in_channels=3, first_conv=_stem(3, stride=1),
                 blocks=(BlockSpec(3, 2, 6, 3, 1, 2, False), BlockSpec(2, 2, 2, 3, 2, 1, False)),
                 feature_mix=None, num_classes=1), 4),
    (NetworkSpec(resolution=1, in_channels=3, first_conv=_stem(1, kernel=1, stride=3), blocks=(),
                 feature_mix=ConvSpec(out_channels=8, kernel=3, stride=2), num_classes=1), 1),
)


@pytest.mark.parametrize("spec, alignment", DEFERRED)
def test_fast_path_defers_where_two_ended_misses_the_bound(spec, alignment):
    plan = plan_memory(network_to_graph(spec), alignment=alignment, overlap=False)
    assert plan.strategy != "two_ended"
    assert chain_memory(spec, alignment, overlap=False) is None
    fast, full = _assert_same(spec, alignment, overlap=False)
    assert fast == full and fast.strategy == plan.strategy


def _merged(members):
    """(size, first, last) of a group's members, all at offset 0, with consecutive members of
    one size merged: the same bytes over one unbroken lifetime conflict exactly as one buffer."""
    out = []
    for size, first, last, *_ in sorted(members, key=lambda m: m[1]):
        if out and out[-1][0] == size and out[-1][2] == first:
            out[-1] = (size, out[-1][1], last)
        else:
            out.append((size, first, last))
    return out


def _check_layout(spec, alignment):
    graph = network_to_graph(spec)
    order = list(range(len(graph.ops)))
    layout = planner.build_layout(graph, order, alignment, True, True, overlap=True)
    items = layout.items
    theirs = []
    for i in sorted(range(len(items)), key=lambda i: (items[i][0], -items[i][2], i)):  # two_ended's order
        first, _, extent, members = items[i]
        assert all(rel == 0 for rel, *_ in members)  # what the replay relies on
        theirs.append((first, extent, _merged([(size, f, last) for _, size, f, last, _ in members])))
    seq, lower_bound, overlap_bound, shifts = fast_oracle._layout(spec, alignment, True)
    ours = [(step, extent, _merged(members)) for step, extent, members in seq]
    assert ours == theirs, spec.to_json()
    live = planner.live_bytes(layout)
    assert lower_bound == max(live)
    # the same shifts at the same ops, and the same bound once they are used to the full
    steps = {m[3]: m[1] for _, _, members in seq for m in members}
    assert sorted((steps[dst], d) for (_, dst), d in shifts.items()) == sorted(
        (layout.first[out], d) for (_, out), (d, _) in layout.overlaps.items()), spec.to_json()
    assert overlap_bound == overlap_bound_bytes(layout, live), spec.to_json()


def test_layout_is_the_planners():
    """The buffers the fast path replays are the planner's: sizes, groups, lifetimes (the
    shortcut alive until its ADD), scratch, and the order two_ended places them in."""
    for i, spec in enumerate(_space_candidates(seed=3)):
        if i % 5 == 0:
            _check_layout(spec, 4)
    rng = random.Random(1)
    for _ in range(200):
        _check_layout(_irregular(rng), rng.choice([1, 4, 8]))


def _check_greedy(spec, alignment):
    """The fast path's greedy replay (its parts' constraints put end to end) against the
    planner's place_greedy with the same shifts, at caps around the arena that gives."""
    parts = fast_oracle._parts(spec, alignment)
    if parts is None:
        return
    graph = network_to_graph(spec)
    layout = planner.build_layout(graph, list(range(len(graph.ops))), alignment, True, True, overlap=True)
    shifts = {pair: d for pair, (d, _) in layout.overlaps.items()}
    arena = place_greedy(layout.items, shifts=shifts)[1]
    assert max(p.overlap_bound for p in parts) == overlap_bound_bytes(layout, planner.live_bytes(layout))
    for cap in (arena, arena - 1, arena - alignment, arena + 1):
        assert fast_oracle._greedy_fits(parts, cap) == (arena <= cap), (spec.to_json(), alignment, cap)


def test_greedy_replay_is_the_planners():
    """Also where a part's static items, and the items that follow from its input's base
    (placed from the part's table, warm after the first network), decide."""
    for i, spec in enumerate(_space_candidates(seed=4)):
        if i % 3 == 0:
            _check_greedy(spec, (4, 1, 16)[i % 9 // 3])
    rng = random.Random(2)
    for _ in range(300):
        _check_greedy(_irregular(rng), rng.choice([1, 4, 8, 16]))


def test_figures_do_not_depend_on_what_the_tables_saw_before():
    specs = [spec for i, spec in enumerate(_space_candidates(seed=5)) if i % 4 == 0]
    first = [chain_memory(spec) for spec in specs]
    for cached in (fast_oracle._stem, fast_oracle._block_constraints, fast_oracle._tail):
        cached.cache_clear()
    assert [chain_memory(spec) for spec in reversed(specs)] == first[::-1]


def _irregular(rng: random.Random) -> NetworkSpec:
    """A NetworkSpec far from MCUNet's space: tiny or odd sizes, single channels, strides 1-3,
    1x1 depthwise, expansions below 1, optional kxk feature mix."""
    c = rng.choice([1, 2, 3, 4, 8, 16, 24])
    stem = ConvSpec(c, rng.choice([1, 3, 5]), rng.choice([1, 2, 3]))
    blocks = []
    for _ in range(rng.randint(0, 8)):
        stride = rng.choice([1, 1, 2, 3])
        out = rng.choice([c, c, 1, 2, 4, 8, 16, 32, 48])
        expand = rng.choice([1, 1, 2, 3, 6, 0.5])
        mid = c if expand == 1 else max(1, round(c * expand) + rng.choice([0, 0, 1]))
        residual = stride == 1 and out == c and rng.random() < 0.8
        blocks.append(BlockSpec(c, out, mid, rng.choice([1, 3, 5, 7]), stride, expand, residual))
        c = out
    fm = (ConvSpec(rng.choice([1, 8, 64, 200]), rng.choice([1, 3]), rng.choice([1, 2]))
          if rng.random() < 0.4 else None)
    return NetworkSpec(rng.choice([1, 2, 3, 5, 7, 8, 16, 24, 32, 40, 64, 96]), rng.choice([1, 2, 3, 4]),
                       stem, tuple(blocks), fm, rng.choice([1, 2, 10, 1000]))


@pytest.mark.parametrize("overlap", [False, True])
def test_irregular_networks(overlap):
    rng = random.Random(0 if not overlap else 5)
    decided = deferred = 0
    for _ in range(600):
        spec = _irregular(rng)
        alignment = rng.choice([1, 4, 8, 16])
        plan = plan_memory(network_to_graph(spec), alignment=alignment, overlap=overlap)
        fast = chain_memory(spec, alignment, overlap=overlap)
        if not overlap:
            exact = plan.strategy == "two_ended" and plan.arena_bytes == plan.lower_bound_bytes
            # decides exactly where the planner's first strategy reaches the bound
            assert (fast is not None) == exact, spec.to_json()
        if fast is not None:  # with overlap: where greedy_by_size reaches the overlap bound
            assert fast == (plan.arena_bytes, plan.lower_bound_bytes), spec.to_json()
            decided += 1
        else:
            deferred += 1
        if not overlap:
            assert network_flash_estimate_bytes(spec) == flash_estimate_bytes(network_to_graph(spec))
    assert decided and deferred  # both ways were exercised
    if overlap:
        assert decided > 0.6 * (decided + deferred)  # odd shapes defer more; MCUNet spaces ~all


def test_fast_flag_and_cache():
    spec = published_spec("mcunet-in0")
    full = MemoryOracle(fast=False)
    assert full.profile(spec).strategy == "greedy_by_size"  # with the overlap shifts
    assert MemoryOracle(fast=False, overlap=False).profile(spec).strategy == "two_ended"
    oracle = MemoryOracle()
    first = oracle.profile(spec)
    assert first.strategy == "chain_fast"
    assert oracle.profile(spec) is first and (oracle.hits, oracle.misses) == (1, 1)
    assert oracle.peak_sram(spec) == full.peak_sram(spec)
    assert oracle.graph(spec).ops  # the graph is still there for inspection


def test_fast_path_skips_the_graph_and_the_planner(monkeypatch):
    """The fast path's speed comes from not building the graph nor running the planner: count
    that work (deterministic, unlike a timed test; benchmarks/planner_speed.py gives the rates)."""
    import nas.memory_oracle as memory_oracle
    calls = {"graph": 0, "plan": 0}

    def counting(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(memory_oracle, "network_to_graph", counting("graph", network_to_graph))
    monkeypatch.setattr(memory_oracle, "plan_memory", counting("plan", plan_memory))
    rng = np.random.default_rng(2)
    archs = [SearchSpace(width_mult=0.5, resolution=128).sample(rng) for _ in range(150)]
    fast = [MemoryOracle().profile(a).arena_bytes for a in archs]
    fast_calls = dict(calls)
    calls.update(graph=0, plan=0)
    full = [MemoryOracle(fast=False).profile(a).arena_bytes for a in archs]
    assert fast == full
    assert calls == {"graph": 150, "plan": 150}
    # the fast path decided most candidates with neither a graph nor a plan
    assert fast_calls["plan"] == fast_calls["graph"] < 0.4 * 150
