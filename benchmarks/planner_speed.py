"""How fast the memory planner (and the NAS oracle on top of it) runs on MCUNet-sized graphs.

    python -m benchmarks.planner_speed [--seconds=1] [--samples=500] [--models]

Prints, per kind of graph, its size and plans/s of `tflite_converter.planner.plan_memory`
(CPU time of this process, so other jobs on the machine inflate it less), then distinct
configurations/s of `nas.memory_oracle.MemoryOracle` on random candidates of MCUNet's search
space, no cache hits: the default oracle (the NetworkSpec fast path, nas/fast_oracle.py, with
the full planner where it defers) beside `MemoryOracle(fast=False)` (graph building +
schedule + plan), the same candidates for both, and the share the fast path decided. `fast`
is the first pass over a space (--samples candidates): it pays the one-time work of every
layer shape it meets first (the per-block tables, and the write-order shifts of
tflite_converter/write_order.py, which the full planner then finds computed); `steady` is the
next --samples distinct candidates of the same space, as a search goes on. With --models,
also the real models in ../shared/models (read by the converter).
"""
from __future__ import annotations

import pathlib
import time
from typing import Callable, Optional, Sequence

import numpy as np
from absl import app, flags

from mcunet_tf.arch import ArchConfig, SearchSpace
from mcunet_tf.mcunet_configs import published_spec
from nas.arch_graph import network_to_graph
from nas.memory_oracle import MemoryOracle, MemoryProfile
from tflite_converter.ir import Graph
from tflite_converter.planner import plan_memory

FLAGS = flags.FLAGS
flags.DEFINE_float("seconds", 1.0, "CPU seconds spent measuring each graph.")
flags.DEFINE_integer("samples", 500, "Random search-space candidates per oracle measurement.")
flags.DEFINE_bool("models", False, "Also time the real models of ../shared/models.")

NETWORKS = ("mcunet-in0", "mcunet-in1", "mcunet-in2", "mcunet-in3", "mcunet-in4", "mbv2-w0.35",
            "mbv2-w0.3-r64", "proxyless-w0.3")
# (width multiplier, resolution); w0.35 r32 is the CIFAR-10 (32x32) search
SPACES = ((0.3, 64), (0.5, 128), (0.7, 160), (1.0, 176), (0.35, 32))
SHARED_MODELS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "models"


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per CPU second, after one warm-up call."""
    fn()
    n = 0
    t0 = time.process_time()
    while True:
        fn()
        n += 1
        elapsed = time.process_time() - t0
        if elapsed >= seconds:
            return n / elapsed


def plan_rate(graph: Graph, seconds: float) -> tuple[float, str]:
    plan = plan_memory(graph)
    return rate(lambda: plan_memory(graph), seconds), plan.strategy


def _row(kind: str, graph: Graph, seconds: float) -> str:
    r, strategy = plan_rate(graph, seconds)
    return f"{kind:<46} {len(graph.ops):>4} {len(graph.tensors):>6} {r:>9.0f}   {strategy}"


def main(argv: Sequence[str]) -> Optional[int]:
    del argv
    seconds = FLAGS.seconds
    print(f"{'graph kind':<46} {'ops':>4} {'tensors':>6} {'plans/s':>9}   strategy")
    for name in NETWORKS:
        try:
            spec = published_spec(name)
        except FileNotFoundError as e:
            print(f"{name}: skipped ({e})")
            continue
        print(_row(f"{name} (in-memory graph)", network_to_graph(spec), seconds))
    rng = np.random.default_rng(0)
    for width, res in SPACES:
        arch = SearchSpace(width_mult=width, resolution=res).sample(rng)
        print(_row(f"search space w{width} r{res} (1 sample)", network_to_graph(arch.to_network()), seconds))
    if FLAGS.models:
        from tflite_converter.errors import ConversionError
        from tflite_converter.passes import legalize
        from tflite_converter.reader import load_tflite

        for path in sorted(SHARED_MODELS.glob("*.tflite")):
            try:
                graph = legalize(load_tflite(path))
            except ConversionError:
                continue  # refused models (float, hybrid, LSTM) have no plan
            print(_row(f"{path.stem} (.tflite)", graph, seconds))

    print()
    print(f"{'oracle, distinct candidates (configs/s)':<46} {'fast':>9} {'steady':>9} {'full':>9} {'ratio':>6}"
          "   fast path decided")
    for width, res in SPACES:
        space = SearchSpace(width_mult=width, resolution=res)
        archs = [space.sample(rng) for _ in range(FLAGS.samples)]
        more = [space.sample(rng) for _ in range(FLAGS.samples)]
        fast, fast_rate = oracle_rate(MemoryOracle(), archs)
        steady, steady_rate = oracle_rate(MemoryOracle(), more)
        _, full_rate = oracle_rate(MemoryOracle(fast=False), archs)
        decided = sum(p.strategy == "chain_fast" for p in fast + steady)
        print(f"{f'search space w{width} r{res}':<46} {fast_rate:>9.0f} {steady_rate:>9.0f} {full_rate:>9.0f} "
              f"{fast_rate / full_rate:>5.1f}x   {decided}/{2 * len(archs)}")
    return 0


def oracle_rate(oracle: MemoryOracle, archs: Sequence[ArchConfig]) -> tuple[list[MemoryProfile], float]:
    """The profiles of `archs` (each new to `oracle`) and how many per CPU second."""
    t0 = time.process_time()
    profiles = [oracle.profile(arch) for arch in archs]
    return profiles, len(archs) / (time.process_time() - t0)


if __name__ == "__main__":
    app.run(main)
