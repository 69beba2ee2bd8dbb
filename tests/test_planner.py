"""Memory planner: exactness (independent checker), chain optimality, in-place decisions,
aliases, concatenation in place, the greedy baseline, and the shared models."""
from __future__ import annotations

import pathlib
import random
import time

import numpy as np
import pytest

from tflite_converter import depthwise_spec, opspec
from tflite_converter.ir import (
    ConcatAttrs,
    ConvAttrs,
    DType,
    ElementwiseAttrs,
    Graph,
    NoAttrs,
    Op,
    OpKind,
    Padding,
    Pads,
    Quantization,
    ReshapeAttrs,
    Tensor,
    same_pads,
)
from tflite_converter.planner import Role, greedy_arena_bytes, plan_memory, verify_plan

SHARED = pathlib.Path(__file__).resolve().parent.parent.parent / "shared"
MODELS = SHARED / "models"

# TFLM arena figures from ../shared/models/README.md
TFLM_ARENA = {
    "mlperf_tiny_vww_96_int8": 103680,
    "mlperf_tiny_kws_ref_model_int8": 24272,
    "mlperf_tiny_ic_resnet_quant": 55984,
    "mlperf_tiny_ad01_int8": 3984,
    "mlperf_tiny_ad_toycar_fullint_floatio": 6592,
    "tflm_person_detect": 85264,
    "tflm_micro_speech_quantized": 7584,
    "tflm_hello_world_int8": 1504,
    "tinyengine_mcunet_vww": 224976,
    "tinymaix_mnist_resnet_q": 6864,
    "tinymaix_cifar10_q": 14336,
}
# required improvement over TFLM (issue 3, "Done when")
TFLM_FACTOR = {"mlperf_tiny_vww_96_int8": 1.8, "tflm_person_detect": 1.5, "tinyengine_mcunet_vww": 2.0}


class GraphBuilder:
    """Hand-built int8 graphs for planner tests (no reader needed)."""

    def __init__(self) -> None:
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.q = Quantization(np.array([0.1], np.float32), np.array([0], np.int64))

    def tensor(self, shape, const: bool = False, dtype: DType = DType.INT8) -> int:
        i = len(self.tensors)
        data = np.zeros(shape, dtype.np) if const else None
        self.tensors.append(Tensor(i, f"t{i}", tuple(shape), dtype, self.q, data))
        return i

    def op(self, kind: OpKind, inputs, out_shape, attrs=None) -> int:
        out = self.tensor(out_shape)
        self.ops.append(Op(len(self.ops), kind, list(inputs), [out], attrs or NoAttrs()))
        return out

    def shape(self, t: int):
        return self.tensors[t].shape

    def conv(self, x: int, cout: int, k: int = 1, stride: int = 1) -> int:
        n, h, w, cin = self.shape(x)
        ho, wo = -(-h // stride), -(-w // stride)
        pt, pb = same_pads(h, k, stride, 1, ho)
        pl, pr = same_pads(w, k, stride, 1, wo)
        wt = self.tensor((cout, k, k, cin), const=True)
        b = self.tensor((cout,), const=True, dtype=DType.INT32)
        attrs = ConvAttrs(Padding.SAME, stride, stride, pads=Pads(pt, pb, pl, pr))
        return self.op(OpKind.CONV_2D, [x, wt, b], (n, ho, wo, cout), attrs)

    def dw(self, x: int, k: int = 3, stride: int = 1) -> int:
        n, h, w, c = self.shape(x)
        ho, wo = -(-h // stride), -(-w // stride)
        pt, pb = same_pads(h, k, stride, 1, ho)
        pl, pr = same_pads(w, k, stride, 1, wo)
        wt = self.tensor((1, k, k, c), const=True)
        b = self.tensor((c,), const=True, dtype=DType.INT32)
        attrs = ConvAttrs(Padding.SAME, stride, stride, pads=Pads(pt, pb, pl, pr), depth_multiplier=1)
        return self.op(OpKind.DEPTHWISE_CONV_2D, [x, wt, b], (n, ho, wo, c), attrs)

    def add(self, a: int, b: int) -> int:
        return self.op(OpKind.ADD, [a, b], self.shape(a), ElementwiseAttrs())

    def relu(self, a: int) -> int:
        return self.op(OpKind.RELU, [a], self.shape(a))

    def reshape(self, a: int, shape) -> int:
        return self.op(OpKind.RESHAPE, [a], shape, ReshapeAttrs())

    def concat(self, ins, axis: int) -> int:
        shape = list(self.shape(ins[0]))
        shape[axis] = sum(self.shape(t)[axis] for t in ins)
        return self.op(OpKind.CONCATENATION, ins, tuple(shape), ConcatAttrs(axis))

    def graph(self, inputs, outputs) -> Graph:
        return Graph(self.tensors, self.ops, list(inputs), list(outputs))


def _chain(rng: random.Random, n_ops: int, with_dw: bool) -> Graph:
    b = GraphBuilder()
    x = b.tensor((1, rng.choice([8, 12, 16]), rng.choice([8, 12, 16]), rng.choice([3, 4, 8])))
    inp = x
    for _ in range(n_ops):
        r = rng.random()
        if with_dw and r < 0.3:
            x = b.dw(x, rng.choice([3, 5]), rng.choice([1, 1, 2]))
        else:
            x = b.conv(x, rng.choice([4, 8, 12, 16, 24]), rng.choice([1, 1, 3]), 1)
    return b.graph([inp], [x])


def random_dag(seed: int, n_ops: int = 14) -> Graph:
    """Random int8 DAG: convolutions, depthwise, ADD, RELU, reshapes and concatenations,
    branches and long skips, several outputs sometimes."""
    rng = random.Random(seed)
    b = GraphBuilder()
    hw = rng.choice([1, 4, 6])
    inp = b.tensor((1, hw, hw, rng.choice([4, 8])))
    pool = [inp]
    for _ in range(n_ops):
        x = rng.choice(pool[-3:] if rng.random() < 0.7 else pool)
        r = rng.random()
        same = [t for t in pool if b.shape(t) == b.shape(x) and t != x]
        if r < 0.25:
            y = b.conv(x, rng.choice([4, 8, 12]), rng.choice([1, 3]))
        elif r < 0.4:
            y = b.dw(x, 3, rng.choice([1, 2]) if b.shape(x)[1] > 1 else 1)
        elif r < 0.55 and same:
            y = b.add(x, rng.choice(same))
        elif r < 0.65:
            y = b.relu(x)
        elif r < 0.75:
            n, h, w, c = b.shape(x)
            y = b.reshape(b.reshape(x, (n, h * w * c)), (n, h, w, c))
        elif r < 0.9 and b.shape(x)[1] == 1:
            parts = [b.conv(x, rng.choice([4, 8])) for _ in range(rng.choice([2, 3]))]
            y = b.concat(parts, 3)
        else:
            y = b.concat([x, rng.choice(pool)], 3) if b.shape(rng.choice(pool))[:3] == b.shape(x)[:3] else b.relu(x)
        pool.append(y)
    consumed = {t for op in b.ops for t in op.inputs}
    outs = [t for t in pool[1:] if t not in consumed] or [pool[-1]]
    return b.graph([inp], outs)


def mbv2_like(n_blocks: int = 16) -> Graph:
    """An MCUNet-sized inverted-residual network (about 60 ops)."""
    b = GraphBuilder()
    x = inp = b.tensor((1, 96, 96, 3))
    x = b.conv(x, 16, 3, 2)
    c = 16
    for i in range(n_blocks):
        stride = 2 if i in (1, 3, 6, 11) else 1
        cout = c * 2 if stride == 2 else c
        h = b.conv(x, c * 4)
        h = b.dw(h, 3 if i % 2 else 5, stride)
        h = b.conv(h, cout)
        x = b.add(x, h) if stride == 1 and cout == c else h
        c = cout
    x = b.conv(x, 160)
    x = b.reshape(x, (1, b.shape(x)[1] * b.shape(x)[2] * 160))
    return b.graph([inp], [x])


# ---------------------------------------------------------------------------------------------


def test_chain_arena_equals_lower_bound():
    rng = random.Random(1)
    for i in range(60):
        g = _chain(rng, rng.randint(1, 25), with_dw=False)
        for inplace in (False, True):
            plan = plan_memory(g, inplace=inplace, overlap=False)
            assert verify_plan(g, plan) == []
            assert plan.arena_bytes == plan.lower_bound_bytes, (i, plan.strategy)
            # with overlap (the default): proved safe and never larger
            overlapped = plan_memory(g, inplace=inplace)
            assert verify_plan(g, overlapped) == []
            assert overlapped.arena_bytes <= plan.arena_bytes, i


def test_chain_with_inplace_depthwise_is_sound_and_not_above_greedy():
    rng = random.Random(2)
    for _ in range(60):
        g = _chain(rng, rng.randint(2, 25), with_dw=True)
        plan = plan_memory(g, overlap=False)
        assert verify_plan(g, plan) == []
        assert plan.lower_bound_bytes <= plan.arena_bytes <= greedy_arena_bytes(g)
        overlapped = plan_memory(g)
        assert verify_plan(g, overlapped) == []
        assert overlapped.arena_bytes <= plan.arena_bytes


def test_lower_bound_counts_live_bytes_and_scratch():
    b = GraphBuilder()
    x = b.tensor((1, 8, 8, 4))  # 256 B
    y = b.conv(x, 8, 3)  # 512 B, scratch: one int16 column of K=36 + the 36 B gather = 108 B
    z = b.conv(y, 2)  # 128 B, 1x1: three int16 columns of K=8 = 48 B
    g = b.graph([x], [z])
    plan = plan_memory(g, overlap=False)
    assert plan.live_bytes == (256 + 512 + 108, 512 + 128 + 48)
    assert plan.lower_bound_bytes == 876 == plan.arena_bytes
    assert plan.scratch[0].bytes == 108 and plan.scratch[1].bytes == 48
    assert verify_plan(g, plan) == []


def test_inplace_depthwise_takes_over_dead_input():
    b = GraphBuilder()
    x = b.tensor((1, 10, 10, 2))
    e = b.conv(x, 16)
    d = b.dw(e, 3, 2)  # stride 2: output is a prefix of the input's bytes
    y = b.conv(d, 8)
    g = b.graph([x], [y])
    plan = plan_memory(g)
    assert verify_plan(g, plan) == []
    assert 1 in plan.inplace_ops
    td = plan.tensors[d]
    assert td.role is Role.INPLACE and td.alias_of == e and td.offset == plan.tensors[e].offset
    # one channel of the padded input: (10 + 0 + 1) * (10 + 0 + 1)
    assert plan.scratch[1].bytes == depthwise_spec.depthwise_inplace_scratch_bytes(g, g.ops[1]) == 121
    assert plan.arena_bytes < greedy_arena_bytes(g)
    # without in-place, no channel buffer
    plain = plan_memory(g, inplace=False)
    assert 1 not in plain.scratch and not plain.inplace_ops
    assert verify_plan(g, plain) == []


def test_depthwise_with_multiplier_or_live_input_not_inplace():
    b = GraphBuilder()
    x = b.tensor((1, 6, 6, 4))
    e = b.conv(x, 4)
    d = b.dw(e)
    s = b.add(e, d)  # e still needed after the depthwise
    g = b.graph([x], [s])
    plan = plan_memory(g)
    assert 1 not in plan.inplace_ops
    assert 2 in plan.inplace_ops  # the ADD writes over one of its dying inputs
    assert verify_plan(g, plan) == []
    op = g.ops[1]
    op.attrs = ConvAttrs(Padding.SAME, 1, 1, pads=Pads(1, 1, 1, 1), depth_multiplier=2)
    assert opspec.inplace_input(g, op) is None


def test_elementwise_inplace_and_broadcast():
    b = GraphBuilder()
    x = b.tensor((1, 4, 4, 8))
    a = b.conv(x, 8)
    r = b.relu(a)
    bias = b.tensor((1, 1, 1, 8))
    c = b.conv(x, 8)
    m = b.op(OpKind.MUL, [c, b.tensor((1, 1, 1, 8), const=True)], (1, 4, 4, 8), ElementwiseAttrs())
    s = b.add(r, m)
    g = b.graph([x, bias], [s])
    plan = plan_memory(g)
    assert verify_plan(g, plan) == []
    assert plan.tensors[r].role is Role.INPLACE and plan.tensors[r].alias_of == a
    assert opspec.inplace_candidates(g, g.ops[3]) == (0,)  # broadcast operand excluded
    assert plan.tensors[s].role is Role.INPLACE


def test_graph_inputs_overwritten_unless_kept():
    b = GraphBuilder()
    x = b.tensor((1, 8, 8, 8))
    r = b.relu(x)
    d = b.dw(r)
    g = b.graph([x], [d])
    kept = plan_memory(g, overwrite_inputs=False)
    assert kept.tensors[r].role is Role.OWN  # x intact until the RELU has run
    # a graph output may be written over a dead intermediate: r is ours
    assert kept.tensors[d].role is Role.INPLACE and kept.tensors[d].alias_of == r
    assert verify_plan(g, kept) == []
    plan = plan_memory(g)  # the default: x is dead once read, as TFLM treats it
    assert plan.tensors[r].role is Role.INPLACE and plan.tensors[r].alias_of == x
    assert verify_plan(g, plan) == []
    assert plan.arena_bytes < kept.arena_bytes


def test_graph_outputs_never_overwritten():
    b = GraphBuilder()
    x = b.tensor((1, 4, 4, 4))
    a = b.conv(x, 4)
    r = b.relu(a)  # a is also a graph output: r must not take it over
    g = b.graph([x], [a, r])
    plan = plan_memory(g)
    assert plan.tensors[r].role is Role.OWN
    assert verify_plan(g, plan) == []


def test_reshape_alias_shares_bytes_and_lifetime():
    b = GraphBuilder()
    x = b.tensor((1, 4, 4, 8))
    a = b.conv(x, 8)
    f = b.reshape(a, (1, 128))
    y = b.op(OpKind.FULLY_CONNECTED, [f, b.tensor((10, 128), const=True), -1], (1, 10))
    g = b.graph([x], [y])
    plan = plan_memory(g)
    tf, ta = plan.tensors[f], plan.tensors[a]
    assert tf.role is Role.ALIAS and tf.alias_of == a and tf.offset == ta.offset
    # the alias costs nothing: live bytes at the FC step are a/f (128) + y (12 rounded)
    assert plan.live_bytes[2] == 128 + 12
    assert verify_plan(g, plan) == []


def test_concatenation_written_in_place():
    b = GraphBuilder()
    x = b.tensor((1, 1, 1, 8))
    parts = [b.conv(x, c) for c in (8, 4, 12)]
    cat = b.concat(parts, 3)
    y = b.conv(cat, 4)
    g = b.graph([x], [y])
    plan = plan_memory(g)
    assert verify_plan(g, plan) == []
    assert 3 in plan.inplace_ops
    base = plan.tensors[cat].offset
    assert [plan.tensors[p].offset - base for p in parts] == [0, 8, 12]
    assert all(plan.tensors[p].role is Role.CONCAT_SLICE for p in parts)
    # at the concatenation step the slices and the output are the same 24 bytes
    assert plan.live_bytes[3] == 24 and plan_memory(g, inplace=False).live_bytes[3] == 48
    # the peak is the last 1x1 convolution: concatenation, output, three int16 columns of 24
    assert plan.lower_bound_bytes == 24 + 4 + 3 * 24 * 2 == plan.arena_bytes


def test_concatenation_not_in_place_when_unsafe():
    b = GraphBuilder()
    x = b.tensor((1, 2, 2, 8))  # outer dims not 1: slices are not contiguous
    parts = [b.conv(x, 4) for _ in range(2)]
    cat = b.concat(parts, 3)
    g = b.graph([x], [cat])
    assert 2 not in plan_memory(g).inplace_ops
    b = GraphBuilder()
    x = b.tensor((1, 1, 1, 8))
    p1 = b.conv(x, 4)
    p2 = b.conv(x, 4)
    cat = b.concat([p1, p2], 3)
    y = b.add(p1, p1)  # p1 has another reader
    g = b.graph([x], [cat, y])
    plan = plan_memory(g)
    assert 2 not in plan.inplace_ops
    assert verify_plan(g, plan) == []


def test_verify_plan_catches_overlap():
    g = mbv2_like(3)
    plan = plan_memory(g)
    assert verify_plan(g, plan) == []
    t = next(iter(t for t, tp in plan.tensors.items() if tp.role is Role.OWN and tp.first_step > 0))
    other = next(
        tp for tp in plan.tensors.values()
        if tp.index != t and tp.first_step <= plan.tensors[t].first_step <= tp.last_step
        and tp.offset != plan.tensors[t].offset
    )
    import dataclasses

    bad = dict(plan.tensors)
    bad[t] = dataclasses.replace(plan.tensors[t], offset=other.offset)
    assert verify_plan(g, dataclasses.replace(plan, tensors=bad))


def test_random_dags_sound_and_not_above_greedy():
    for seed in range(300):
        g = random_dag(seed, n_ops=random.Random(seed).randint(3, 18))
        for inplace in (True, False):
            plan = plan_memory(g, inplace=inplace, overlap=False)
            problems = verify_plan(g, plan)
            assert problems == [], (seed, inplace, problems[:3])
            assert plan.lower_bound_bytes <= plan.arena_bytes <= greedy_arena_bytes(g), seed
            overlapped = plan_memory(g, inplace=inplace)
            assert verify_plan(g, overlapped) == [], seed
            assert overlapped.arena_bytes <= plan.arena_bytes, seed


def test_random_dags_other_orders_and_alignment():
    from tflite_converter.schedule import schedule

    for seed in range(100):
        g = random_dag(1000 + seed, 12)
        order = schedule(g)
        for alignment in (1, 16):
            plan = plan_memory(g, order=order, alignment=alignment)
            assert verify_plan(g, plan) == [], seed
            assert plan.arena_bytes % 1 == 0 and all(tp.offset % alignment == 0 for tp in plan.tensors.values())


def test_bad_order_refused():
    g = mbv2_like(2)
    from tflite_converter.planner import PlanError

    with pytest.raises(PlanError):
        plan_memory(g, order=list(reversed(range(len(g.ops)))))
    with pytest.raises(PlanError):
        plan_memory(g, order=[0])


def test_planning_speed_mcunet_sized():
    g = mbv2_like()
    assert 55 <= len(g.ops) <= 70
    plan_memory(g)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        plan_memory(g)
        n += 1
    rate = n / (time.perf_counter() - t0)
    print(f"\n{len(g.ops)}-op inverted-residual graph: {rate:.0f} plans/s")
    assert rate > 100


# ---------------------------------------------------------------------------------------------
# Shared models (need the reader and the passes)


def _load(name: str) -> Graph:
    if not MODELS.is_dir():
        pytest.skip(f"shared models not found at {MODELS}")
    reader = pytest.importorskip("tflite_converter.reader")
    passes = pytest.importorskip("tflite_converter.passes")
    return passes.legalize(reader.load_tflite(str(MODELS / f"{name}.tflite")))


@pytest.mark.parametrize("name", sorted(TFLM_ARENA))
def test_shared_model_plans(name):
    from tflite_converter.errors import ConversionError
    from tflite_converter.schedule import schedule

    try:
        g = _load(name)
    except ConversionError as e:
        pytest.fail(f"{name} refused: {e}")
    plan = plan_memory(g, order=schedule(g))
    assert verify_plan(g, plan) == []
    assert plan.arena_bytes <= greedy_arena_bytes(g, plan.order)
    assert plan.arena_bytes <= TFLM_ARENA[name]
    if name in TFLM_FACTOR:
        assert plan.arena_bytes * TFLM_FACTOR[name] <= TFLM_ARENA[name], plan.arena_bytes


def test_inplace_over_alias_of_graph_input_blocked_when_kept():
    b = GraphBuilder()
    x = b.tensor((1, 4, 4, 8))
    f = b.reshape(x, (1, 128))
    r = b.op(OpKind.RELU, [f], (1, 128))
    g = b.graph([x], [r])
    over = plan_memory(g)  # the default: the RELU may write over the view, hence the input
    assert over.tensors[r].role is Role.INPLACE and verify_plan(g, over) == []
    plan = plan_memory(g, overwrite_inputs=False)
    assert plan.tensors[f].role is Role.ALIAS
    assert plan.tensors[r].role is Role.OWN
    assert plan.tensors[r].offset != plan.tensors[x].offset
    assert verify_plan(g, plan) == []


def test_verify_plan_catches_unsafe_inplace_claim():
    import dataclasses

    b = GraphBuilder()
    x = b.tensor((1, 4, 4, 8))
    a = b.conv(x, 8)
    r = b.relu(a)
    s = b.add(a, r)  # a is read after the RELU: RELU may not write over it
    g = b.graph([x], [s])
    plan = plan_memory(g)
    assert plan.tensors[r].role is Role.OWN and verify_plan(g, plan) == []
    forged = dict(plan.tensors)
    forged[r] = dataclasses.replace(plan.tensors[r], offset=plan.tensors[a].offset, role=Role.INPLACE, alias_of=a)
    bad = dataclasses.replace(plan, tensors=forged, inplace_ops=plan.inplace_ops | {1})
    assert any("overlaps" in p for p in verify_plan(g, bad))


def test_scratch_records_minimum_and_granted():
    """Every scratch buffer carries its minimum (what the arena was sized with) and the
    granted bytes (>= the minimum, <= the op's preferred size); plan.json shows both."""
    from tflite_converter.plan_report import plan_to_json

    b = GraphBuilder()
    x = b.tensor((1, 4, 4, 32))
    y = b.conv(x, 32, 5)  # a one-pixel minimum, room for more at this step
    z = b.conv(y, 1024)
    g = b.graph([x], [z])
    plan = plan_memory(g)
    assert verify_plan(g, plan) == []
    for p, sp in plan.scratch.items():
        assert sp.min_bytes == opspec.scratch_bytes(g, g.ops[p], p in plan.inplace_ops)
        assert sp.min_bytes <= sp.bytes <= opspec.preferred_scratch_bytes(g, g.ops[p], False)
    assert plan.scratch[0].bytes > plan.scratch[0].min_bytes
    rows = {r["position"]: r for r in plan_to_json(g, plan)["scratch"]}
    assert (rows[0]["min_bytes"], rows[0]["bytes"]) == (plan.scratch[0].min_bytes, plan.scratch[0].bytes)


# ---------------------------------------------------------------------------------------------
# The one TFLM-greedy implementation, its two callers' figures on the shared models

# (greedy_arena_bytes on the legalized model in its schedule, alignment 4: the baseline
# plan_memory is never worse than; benchmarks/measure.py's replicate_tflm_plan on the file as
# read, one 16-byte buffer per tensor, TFLM's tie-break: (arena, peak live bytes))
GREEDY_BASELINE = {
    "mlperf_tiny_ad01_int8": 768,
    "mlperf_tiny_ad_toycar_fullint_floatio": 3200,
    "mlperf_tiny_ic_resnet_quant": 50160,
    "mlperf_tiny_kws_ref_model_int8": 16384,
    "mlperf_tiny_vww_96_int8": 64512,
    "tflm_hello_world_int8": 32,
    "tflm_micro_speech_quantized": 6420,
    "tflm_person_detect": 55344,
    "tinyengine_mcunet_vww": 96000,
    "tinymaix_cifar10_q": 12640,
    "tinymaix_mnist_resnet_q": 4284,
}
TFLM_REPLICA = {
    "mlperf_tiny_ad01_int8": (768, 768),
    "mlperf_tiny_ad_toycar_fullint_floatio": (3200, 3200),
    "mlperf_tiny_ic_resnet_quant": (49152, 49152),
    "mlperf_tiny_kws_ref_model_int8": (16000, 16000),
    "mlperf_tiny_vww_96_int8": (73728, 55296),
    "tflm_hello_world_int8": (32, 32),
    "tflm_micro_speech_quantized": (5968, 5968),
    "tflm_person_detect": (55296, 55296),
    "tinyengine_mcunet_vww": (161472, 161472),
    "tinymaix_cifar10_q": (11264, 11264),
    "tinymaix_mnist_resnet_q": (3552, 3552),
}


@pytest.mark.parametrize("name", sorted(GREEDY_BASELINE))
def test_greedy_figures_on_shared_models(name):
    from tflite_converter import planner
    from tflite_converter.schedule import schedule

    g = _load(name)
    assert greedy_arena_bytes(g, schedule(g)) == GREEDY_BASELINE[name]
    raw = pytest.importorskip("tflite_converter.reader").load_tflite(str(MODELS / f"{name}.tflite"))
    rep = planner.tflm_greedy_plan(raw, alignment=16, tie_break=planner.TieBreak.LATER_TENSOR,
                                   buffers=planner.GreedyBuffers.TENSORS)
    assert (rep.arena_bytes, max(rep.live_bytes)) == TFLM_REPLICA[name]


def test_replica_is_the_planner_greedy():
    """benchmarks/measure.py's replica of TFLM's plan is tflm_greedy_plan with TFLM's buffer
    alignment and tie-break, on one buffer per tensor."""
    measure = pytest.importorskip("benchmarks.measure")
    from tflite_converter import planner

    for seed in range(20):
        g = random_dag(seed)
        rep = measure.replicate_tflm_plan(g)
        mine = planner.tflm_greedy_plan(g, alignment=measure.TFLM_BUFFER_ALIGNMENT,
                                        tie_break=planner.TieBreak.LATER_TENSOR,
                                        buffers=planner.GreedyBuffers.TENSORS)
        assert (rep.arena_bytes, rep.live_bytes) == (mine.arena_bytes, mine.live_bytes)


def test_greedy_tie_break():
    """Equal extents: this planner places the one live first, TFLM the later tensor first;
    larger extents go first either way."""
    from tflite_converter.planner import TieBreak, greedy_order

    items = [(0, 1, 16, [(0, 16, 0, 1, 0)]), (1, 2, 16, [(0, 16, 1, 2, 1)]),
             (2, 2, 16, [(0, 16, 2, 2, 2)]), (1, 1, 32, [(0, 32, 1, 1, 3)])]
    assert greedy_order(items, TieBreak.EARLIER_START) == [3, 0, 1, 2]
    assert greedy_order(items, TieBreak.LATER_TENSOR) == [3, 2, 1, 0]


def test_greedy_tensor_buffers_ignore_reshape_aliases_and_scratch():
    """One buffer per tensor: a reshape output is a buffer of its own (TFLM copies nothing
    but plans it anyway), kernel scratch is not planned."""
    from tflite_converter import planner

    b = GraphBuilder()
    x = b.tensor((1, 4, 4, 8))
    y = b.conv(x, 8, 3)  # needs im2col scratch
    r = b.reshape(y, (1, 128))
    g = b.graph([x], [r])
    own = planner.tflm_greedy_plan(g, alignment=4, buffers=planner.GreedyBuffers.TENSORS)
    assert own.arena_bytes == 128 + 128  # x and y at step 0, y and r at step 1
    assert own.live_bytes == (256, 256)
    ours = planner.tflm_greedy_plan(g, alignment=4)
    assert ours.arena_bytes == greedy_arena_bytes(g) > 128  # r shares y's bytes; scratch too


# ---------------------------------------------------------------------------------------------
# Alias chains, alignment, element sizes


def test_alias_root_walks_chains_and_stops_on_cycles():
    from tflite_converter.planner import alias_root

    assert alias_root(5, {}) == 5
    assert alias_root(3, {3: 2, 2: 1}) == 1
    assert alias_root(1, {3: 2, 2: 1}) == 1
    assert alias_root(1, {1: 2, 2: 1}) in (1, 2)  # a corrupted plan: no hang


def test_reshape_chain_is_one_buffer_in_verify():
    b = GraphBuilder()
    x = b.tensor((1, 4, 4, 8))
    a = b.relu(x)
    r1 = b.reshape(a, (1, 128))
    r2 = b.reshape(r1, (1, 16, 8))
    y = b.relu(r2)
    g = b.graph([x], [y])
    plan = plan_memory(g)
    assert plan.tensors[r2].role is Role.ALIAS and plan.tensors[r2].alias_of == r1
    assert plan.tensors[r2].offset == plan.tensors[a].offset
    assert verify_plan(g, plan) == []


def test_offset_alignment_divides_the_arena_base_alignment():
    """The plan aligns offsets in the arena, the generator the arena's base address: every
    buffer is aligned to the offset alignment only while the base's is a multiple of it."""
    from tflite_converter.codegen.generate import ARENA_ALIGN
    from tflite_converter.planner import OFFSET_ALIGNMENT

    assert ARENA_ALIGN % OFFSET_ALIGNMENT == 0
    assert plan_memory(mbv2_like(2)).alignment == OFFSET_ALIGNMENT


def test_tensor_nbytes_and_itemsize():
    for d in DType:
        assert d.itemsize == np.dtype(d.value).itemsize
    assert Tensor(0, "s", (), DType.INT32).nbytes == 4
    assert Tensor(0, "t", (1, 3, 5), DType.INT16).nbytes == 30
    assert Tensor(0, "z", (2, 0), DType.FLOAT32).nbytes == 0
