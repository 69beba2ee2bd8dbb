"""The NAS memory oracle: the converter's planner on in-memory graphs of MCUNet networks.

The co-design contract: for a network, the oracle's arena EQUALS the plan of that network's
exported .tflite read by the converter (load_tflite -> legalize -> schedule -> plan_memory),
because the in-memory graph is the same graph. Exports come from mcunet_tf/export.py (cached
in build/models or $MCUNET_MODEL_CACHE, made in a child process); they need TensorFlow, the
oracle and this test process do not.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import mcunet_reference_model

from mcunet_tf.arch import SearchSpace
from mcunet_tf.mcunet_configs import published_spec
from nas.arch_graph import network_to_graph
from nas.memory_oracle import MemoryOracle, MemoryProfile, flash_estimate_bytes
from tflite_converter.planner import plan_memory, verify_plan
from tflite_converter.schedule import schedule

REPO = pathlib.Path(__file__).resolve().parent.parent
KIB = 1024

# TinyEngine's published peak SRAM (STM32H743; activations plus its scratch), 1 KB = 1024 B
TINYENGINE_PEAK_KB = {
    "mcunet-in0": 49,
    "mcunet-in1": 96,
    "mcunet-in2": 215,
    "mcunet-in3": 260,
    "mcunet-in4": 416,
    "mbv2-w0.3-r64": 61,
    "proxyless-w0.3": 259,
}
# exported in the default run (the Keras export tests export them too: the cache is shared);
# the others take about a minute each to export on this machine
DEFAULT_EXPORTS = ("mcunet-in0", "mbv2-w0.35")
SLOW_EXPORTS = ("mcunet-in1", "mcunet-in2", "mcunet-in3", "mcunet-in4", "mbv2-w0.3-r64", "proxyless-w0.3")


def _spec(name: str):
    """A published network's NetworkSpec (some are read from ../shared/mcunet_configs)."""
    try:
        return published_spec(name)
    except FileNotFoundError as e:
        pytest.skip(str(e))


def _read_export(name: str):
    """The converter's graph of the exported reference model (skips if unavailable). The
    export runs in a child process: this process never imports TensorFlow."""
    reader = pytest.importorskip("tflite_converter.reader", reason="the .tflite reader is not available")
    passes = pytest.importorskip("tflite_converter.passes", reason="the converter passes are not available")
    return passes.legalize(reader.load_tflite(mcunet_reference_model(name)))


def _signature(graph):
    """Everything of a graph the planner and the engine depend on, tensor numbering aside."""
    def tensor(t):
        if t < 0:
            return None
        tt = graph.tensors[t]
        return (tt.shape, tt.dtype, tt.is_constant)

    return (
        [(op.kind, op.attrs, [tensor(t) for t in op.inputs], [tensor(t) for t in op.outputs]) for op in graph.ops],
        [tensor(t) for t in graph.inputs],
        [tensor(t) for t in graph.outputs],
    )


def _check_export_matches(name: str) -> None:
    spec = _spec(name)
    real = _read_export(name)
    ours = network_to_graph(spec)
    assert _signature(ours) == _signature(real), f"{name}: in-memory graph differs from the export"
    real_plan = plan_memory(real, schedule(real))
    assert verify_plan(real, real_plan) == []
    profile = MemoryOracle().profile(spec)
    # the contract: same planner, same graph, same number
    assert profile.arena_bytes == real_plan.arena_bytes
    assert profile.lower_bound_bytes == real_plan.lower_bound_bytes
    assert profile.flash_estimate_bytes == flash_estimate_bytes(real)


@pytest.mark.parametrize("name", DEFAULT_EXPORTS)
def test_oracle_equals_plan_of_exported_tflite(name):
    _check_export_matches(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_EXPORTS)
def test_oracle_equals_plan_of_exported_tflite_slow(name):
    _check_export_matches(name)


@pytest.mark.parametrize("name", sorted(TINYENGINE_PEAK_KB))
def test_arena_within_tinyengine_published_peak(name):
    # the oracle stands for the exported model here (equality is checked above)
    plain = MemoryOracle(overlap=False).profile(_spec(name))
    assert plain.lower_bound_bytes <= plain.arena_bytes <= TINYENGINE_PEAK_KB[name] * KIB, plain
    # the default, with overlap, goes below the layer-by-layer bound
    assert MemoryOracle().profile(_spec(name)).arena_bytes < plain.lower_bound_bytes


@pytest.mark.parametrize("name", ["mcunet-in0", "mcunet-in1", "mcunet-in2", "mbv2-w0.35"])
def test_published_networks_plan_optimally(name):
    """These networks are chains with residuals: without overlap the placement reaches the
    schedule's lower bound, which is at least the input + output bytes of every op (nothing
    in place there); with it (the default) the arena is at least 10% below that bound."""
    spec = _spec(name)
    g = network_to_graph(spec)
    profile = MemoryOracle(overlap=False).profile(spec)
    assert profile.arena_bytes == profile.lower_bound_bytes
    overlapped = MemoryOracle().profile(spec)
    assert overlapped.lower_bound_bytes == profile.lower_bound_bytes
    assert overlapped.arena_bytes <= 0.9 * profile.lower_bound_bytes, overlapped
    largest_layer = max(
        sum(g.tensors[t].nbytes for t in (op.inputs[0], op.outputs[0])) for op in g.ops
        if op.kind.name in ("CONV_2D", "FULLY_CONNECTED")
    )
    assert profile.lower_bound_bytes >= largest_layer


def test_graph_of_search_space_candidates_is_sound():
    rng = np.random.default_rng(0)
    for width, res in ((0.3, 48), (0.5, 128), (1.0, 176)):
        space = SearchSpace(width_mult=width, resolution=res)
        for _ in range(3):
            arch = space.sample(rng)
            g = network_to_graph(arch.to_network())
            plan = plan_memory(g)
            assert verify_plan(g, plan) == []
            assert plan.arena_bytes == MemoryOracle().peak_sram(arch)
            spec = arch.to_network()
            # one MEAN + FULLY_CONNECTED head, one op per conv, one ADD per residual
            n_ops = 1 + sum(2 + b.has_expansion + b.residual for b in spec.blocks) + 2
            assert len(g.ops) == n_ops


def test_cache_by_network():
    oracle = MemoryOracle(cache_size=2)
    space = SearchSpace(width_mult=0.5, resolution=96)
    a, b, c = (space.sample(np.random.default_rng(i)) for i in range(3))
    first = oracle.profile(a)
    assert oracle.profile(a.to_network("renamed")) is first  # same network, other name
    assert (oracle.hits, oracle.misses) == (1, 1)
    oracle.profile(b)
    oracle.profile(c)  # evicts a (least recently used)
    oracle.profile(a)
    assert oracle.misses == 4
    assert MemoryProfile.from_config(first.get_config()) == first
    with pytest.raises(TypeError, match="NetworkSpec or an ArchConfig"):
        oracle.profile("mcunet-in0")


def test_oracle_throughput():
    rng = np.random.default_rng(1)
    archs = [SearchSpace(width_mult=0.5, resolution=128).sample(rng) for _ in range(100)]
    oracle = MemoryOracle()
    oracle.peak_sram(archs[0])
    oracle.clear_cache()
    t0 = time.process_time()  # CPU time: other jobs on the machine do not count
    for arch in archs:
        oracle.peak_sram(arch)
    rate = len(archs) / (time.process_time() - t0)
    print(f"\noracle: {rate:.0f} distinct configs/s")
    assert oracle.misses == len(archs)
    assert rate > 200


def test_no_tensorflow_on_the_oracle_path():
    code = (
        "import sys\n"
        "import nas.memory_oracle, nas.arch_graph, mcunet_tf.arch, mcunet_tf.network, mcunet_tf.mcunet_configs\n"
        "from mcunet_tf.mcunet_configs import published_spec\n"
        "nas.memory_oracle.MemoryOracle().peak_sram(published_spec('mcunet-in0'))\n"
        "heavy = sorted(m for m in ('tensorflow', 'tf_keras', 'keras') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
