"""SRAM oracle of the search: the converter's own memory planner, asked about a candidate.

MCUNet's co-design means the search sees the figure the deployed C will need, not an
analytic proxy. :class:`MemoryOracle` builds the candidate's legalized int8 graph in memory
(:func:`nas.arch_graph.network_to_graph`, the same graph ``load_tflite`` + ``legalize`` give
for its export), schedules it and plans it with ``tflite_converter``'s ``schedule`` and
``plan_memory`` exactly as ``mcunet-convert`` does. No TensorFlow and no file I/O on this path.

By default (``fast=True``) a candidate is first worked out from its NetworkSpec alone
(:mod:`nas.fast_oracle`: the same layout, bounds and placement strategy as the planner,
several times faster); where that strategy misses its bound the full planner above decides.
Both give the same three figures; ``strategy`` is ``"chain_fast"`` when the fast path decided.
``MemoryOracle(fast=False)`` always runs the full planner.

Figures:

- ``arena_bytes``: the planner's arena, i.e. activations and kernel scratch (im2col columns,
  the in-place depthwise channel buffer) in one arena -- the SRAM the engine's arena takes.
- ``lower_bound_bytes``: the layer-by-layer bound, the most bytes live at one step of that
  schedule with every op's whole input and output live together. With ``overlap`` (the
  default, as in ``mcunet-convert``) outputs may start inside their op's dying input
  (tflite_converter/write_order.py) and the arena is then often below it.
- ``flash_estimate_bytes``: an ESTIMATE of the generated model object's Flash (weights in the
  layouts the emitters write, their per-channel tables, and the code; :mod:`nas.flash_estimate`).
  The C runtime and the application beside it are not counted (the MCU reserve covers them):
  the exact figure is the model object's ``.text + .rodata + .data``.

With ``patch`` (``PatchSetting("auto", sram_limit=...)``, the search's ``--patch``), a network
whose layer-by-layer arena is above the limit is profiled as the converter's ``--patch=auto``
runs it (tflite_converter/patch.py: the fewest extra MACs whose patched arena fits, full
planner per split and grid, a few seconds a network): ``arena_bytes`` is then the patched
arena, ``strategy`` names the split and grid, and ``macs_overhead`` the MACs recomputed.

Results are cached by network (an :class:`ArchConfig` is first turned into its
:class:`NetworkSpec`, so equal networks share one entry whatever their name).
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Mapping, Optional, Sequence, Union

from mcunet_tf.arch import ArchConfig
from mcunet_tf.network import NetworkSpec
from nas.arch_graph import network_to_graph
from nas.fast_oracle import chain_memory
from nas.flash_estimate import graph_flash_bytes, network_flash_bytes
from tflite_converter.ir import Graph
from tflite_converter.patch import PatchSetting, choose_patch, grid_text
from tflite_converter.planner import plan_memory
from tflite_converter.schedule import schedule

Candidate = Union[NetworkSpec, ArchConfig]



@dataclasses.dataclass(frozen=True)
class MemoryProfile:
    """What the oracle knows about one network (bytes)."""

    arena_bytes: int
    lower_bound_bytes: int
    flash_estimate_bytes: int  # an estimate: see the module docstring
    strategy: str  # the planner's placement strategy that gave the arena, "chain_fast", or "patch ..."
    # with patch-based execution: the share of MACs the patches' halos recompute (0 layer by layer)
    macs_overhead: float = 0.0

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "MemoryProfile":
        return cls(**dict(config))


def flash_estimate_bytes(graph: Graph) -> int:
    """The model object's Flash (weights in the emitters' layouts, tables, code) estimated
    from `graph`: :func:`nas.flash_estimate.graph_flash_bytes`."""
    return graph_flash_bytes(graph)


def network_flash_estimate_bytes(spec: NetworkSpec) -> int:
    """``flash_estimate_bytes(network_to_graph(spec))`` from the spec alone (the fast path)."""
    return network_flash_bytes(spec)


class MemoryOracle:
    """`peak_sram` / `profile` of candidate networks, with an LRU cache of `cache_size`
    networks. `alignment`: the arena alignment the engine uses (bytes). `fast`: try the
    NetworkSpec fast path first (same figures; False: always the full planner). `overlap`: plan
    as the converter does by default (``plan_memory(overlap=True)``); False gives the arena
    without partial overlap."""

    def __init__(self, alignment: int = 4, cache_size: int = 100_000, fast: bool = True,
                 overlap: bool = True, patch: Optional[PatchSetting] = None) -> None:
        if alignment < 1:
            raise ValueError(f"MemoryOracle: alignment must be >= 1, got {alignment}")
        if cache_size < 0:
            raise ValueError(f"MemoryOracle: cache_size must be >= 0, got {cache_size}")
        self.alignment = alignment
        self.cache_size = cache_size
        self.fast = fast
        self.overlap = overlap
        # patch-based execution (MCUNetV2's joint search): a network whose layer-by-layer arena
        # is above the setting's SRAM limit (any, without one) is profiled as `--patch=auto`
        # converts it, so the figure is the one the C then uses
        self.patch = patch if patch is not None and patch.mode == "auto" else None
        self._cache: collections.OrderedDict[NetworkSpec, MemoryProfile] = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def network(candidate: Candidate) -> NetworkSpec:
        if isinstance(candidate, NetworkSpec):
            return candidate
        if isinstance(candidate, ArchConfig):
            return candidate.to_network()
        raise TypeError(
            f"MemoryOracle: expected a NetworkSpec or an ArchConfig, got {type(candidate).__name__}"
        )

    def graph(self, candidate: Candidate) -> Graph:
        """The legalized int8 graph the oracle plans (for inspection and reports)."""
        return network_to_graph(self.network(candidate))

    def profile(self, candidate: Candidate) -> MemoryProfile:
        spec = self.network(candidate)
        cached = self._cache.get(spec)
        if cached is not None:
            self.hits += 1
            self._cache.move_to_end(spec)
            return cached
        self.misses += 1
        fast = chain_memory(spec, self.alignment, self.overlap) if self.fast else None
        if fast is not None:
            arena, lower_bound = fast
            result = MemoryProfile(arena, lower_bound, network_flash_estimate_bytes(spec), "chain_fast")
        else:
            result = self._plan(spec)
        if self.patch is not None and self.patch.worth_trying(result.arena_bytes):
            result = self._patched(spec, result)
        if self.cache_size:
            self._cache[spec] = result
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return result

    def _plan(self, spec: NetworkSpec) -> MemoryProfile:
        graph = network_to_graph(spec)
        # the converter's pipeline (tflite_converter/convert.py): schedule, then plan
        plan = plan_memory(graph, schedule(graph), alignment=self.alignment, overlap=self.overlap)
        return MemoryProfile(
            arena_bytes=plan.arena_bytes,
            lower_bound_bytes=plan.lower_bound_bytes,
            flash_estimate_bytes=flash_estimate_bytes(graph),
            strategy=plan.strategy,
        )

    def _patched(self, spec: NetworkSpec, layer_by_layer: MemoryProfile) -> MemoryProfile:
        """The arena of `--patch=auto` with this oracle's setting (the pipeline's choice,
        tflite_converter/patch.py), or `layer_by_layer` where no split lowers it."""
        assert self.patch is not None
        graph = network_to_graph(spec)
        order = schedule(graph)

        def arena(g: Graph, o: Sequence[int]) -> int:
            return plan_memory(g, o, alignment=self.alignment, overlap=self.overlap).arena_bytes

        best, _ = choose_patch(graph, order, layer_by_layer.arena_bytes, self.patch, arena, without_input=False)
        if best is None:
            return layer_by_layer
        p = best.plan
        return dataclasses.replace(layer_by_layer, arena_bytes=best.arena_bytes,
                                   strategy=f"patch {p.split.last_op_index}:{grid_text(p.grid)}",
                                   macs_overhead=p.macs_overhead)

    def peak_sram(self, candidate: Candidate) -> int:
        """Arena bytes the engine needs for `candidate` (activations + kernel scratch)."""
        return self.profile(candidate).arena_bytes

    def clear_cache(self) -> None:
        self._cache.clear()
        self.hits = self.misses = 0
