"""How fast the memory planner (and the NAS oracle on top of it) runs on MCUNet-sized graphs.

    python -m benchmarks.planner_speed [--seconds=1] [--samples=200] [--models]

Prints, per kind of graph, its size and plans/s of `tflite_converter.planner.plan_memory`
(CPU time of this process, so other jobs on the machine inflate it less), then distinct
configurations/s of `nas.memory_oracle.MemoryOracle` on random candidates of MCUNet's search
space (graph building + schedule + plan, no cache hits). With --models, also the real models
in ../shared/models (read by the converter).
"""
from __future__ import annotations

import pathlib
import time
from typing import Callable, Optional, Sequence

import numpy as np
from absl import app, flags

from mcunet_tf.arch import SearchSpace
from mcunet_tf.mcunet_configs import published_spec
from nas.arch_graph import network_to_graph
from nas.memory_oracle import MemoryOracle
from tflite_converter.ir import Graph
from tflite_converter.planner import plan_memory

FLAGS = flags.FLAGS
flags.DEFINE_float("seconds", 1.0, "CPU seconds spent measuring each graph.")
flags.DEFINE_integer("samples", 200, "Random search-space candidates per oracle measurement.")
flags.DEFINE_bool("models", False, "Also time the real models of ../shared/models.")

NETWORKS = ("mcunet-in0", "mcunet-in1", "mcunet-in2", "mcunet-in3", "mcunet-in4", "mbv2-w0.35",
            "mbv2-w0.3-r64", "proxyless-w0.3")
SPACES = ((0.3, 64), (0.5, 128), (0.7, 160), (1.0, 176))  # (width multiplier, resolution)
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
    print(f"{'oracle, distinct candidates':<46} {'configs/s':>9}   (graph build + schedule + plan)")
    for width, res in SPACES:
        space = SearchSpace(width_mult=width, resolution=res)
        archs = [space.sample(rng) for _ in range(FLAGS.samples)]
        oracle = MemoryOracle()
        t0 = time.process_time()
        for arch in archs:
            oracle.peak_sram(arch)
        elapsed = time.process_time() - t0
        print(f"{f'search space w{width} r{res}':<46} {len(archs) / elapsed:>9.0f}")
    return 0


if __name__ == "__main__":
    app.run(main)
