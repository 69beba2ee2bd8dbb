"""The search's latency model: instructions our generated C executes on a Cortex-M, per op.

Each op of the converter's Graph IR falls in a *cost class* (op kind, split where the engine
runs a different kernel for it: CONV_2D pointwise with 8/16/24/32 input channels takes the
register-resident kernel, other pointwise ones the matrix product, kxk ones im2col;
DEPTHWISE_CONV_2D by kernel size, stride and kernel: the channel-group kernel, valid taps
only, where the converter's cost rule prefers it or the op cannot run in place, else the
padded channel-plane kernel). A class's cost is a non-negative linear
combination of shape features (MACs, output elements, input elements, output pixels,
channels, a constant), fitted by ``benchmarks/calibrate_latency.py`` on per-op instruction
counts measured under QEMU (``-icount shift=0``: deterministic instruction counts, no timing)
and stored in ``nas/latency_table.json``.

Instructions become time through a stated cycles-per-instruction (CPI) assumption per core
(``cycles_per_instruction`` in the table; see ``CPI_ASSUMPTIONS``), then
``ms = instructions x CPI / clock_hz x 1000``. QEMU models no pipeline, wait states or
caches: the CPI is an assumption, not a measurement.

What the graph alone cannot tell (so the model averages over it): the requantisation mode
(weights decide it; the register 1x1 kernel needs the fast full-range mode, which random and
trained MCUNet weights normally give), and which depthwise kernel the memory plan allows
(in place or not, scratch granted). The calibration networks are planned by the same planner,
so their mix is the one the search's candidates get.

No TensorFlow here: the search calls this on thousands of graphs. Per-op costs are cached by
op shape, whole networks by their spec.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

from tflite_converter import depthwise_spec
from tflite_converter.conv2d_spec import REG_1X1_DEPTHS
from tflite_converter.ir import ConvAttrs, Graph, Op, OpKind, PoolAttrs

TABLE_PATH = Path(__file__).with_name("latency_table.json")


# Features each cost class is fitted on (names of _features' entries). Few per class: a
# search-space network gives each class only a handful of distinct shapes.
CLASS_FEATURES: dict[str, tuple[str, ...]] = {
    "conv1x1_reg": ("macs", "out_elems", "out_pixels", "one"),
    "conv1x1": ("macs", "out_elems", "out_pixels", "in_elems", "one"),
    "conv_kxk": ("macs", "out_elems", "patch_elems", "out_pixels", "one"),
    "depthwise_plane": ("macs", "out_elems", "padded_elems", "channels", "one"),
    "depthwise_hwc": ("valid_macs", "out_elems", "out_pixels", "one"),
    "depthwise_c1": ("macs", "out_elems", "padded_elems", "one"),
    # whole 4-row blocks over a depth of whole words run the assembly loop, the rest in C
    "fully_connected": ("fc_block_macs", "fc_tail_macs", "out_elems", "in_elems", "one"),
    "fully_connected_plain": ("fc_block_macs", "fc_tail_macs", "out_elems", "in_elems", "one"),
    "add": ("out_elems", "one"),
    "mean": ("in_elems", "out_elems", "one"),
    "pool": ("macs", "out_elems", "one"),
    "softmax": ("in_elems", "one"),
    "alias": ("one",),
    "other": ("in_elems", "out_elems", "one"),
}
_ALIAS_KINDS = {OpKind.RESHAPE, OpKind.SQUEEZE, OpKind.EXPAND_DIMS}
_POOL_KINDS = {OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D}

# What each core's CPI assumes (copied into the table's "cpi_assumption" by the calibration).
CPI_ASSUMPTIONS: dict[str, tuple[float, str]] = {
    "cortex-m7": (1.0, "Cortex-M7 dual-issue pipeline with the I-cache and D-cache on (or code "
                       "in ITCM, arena in DTCM): the occasional dual-issued pair balances "
                       "load-use stalls and taken branches, ~1 cycle per instruction. Flash "
                       "wait states are hidden by the cache/ART accelerator; cache misses on "
                       "weights streamed from Flash are not modelled."),
    "cortex-m4": (1.3, "Cortex-M4 single-issue, no data cache; code in Flash behind the ART "
                       "accelerator (zero-wait-state hits, prefetch on). Loads take 2 cycles, "
                       "taken branches 2-3: ~1.3 cycles per instruction for these int8 "
                       "kernels. Flash wait states on weight reads are not modelled."),
}


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def cost_class(graph: Graph, op: Op, consumers: Mapping[int, int] | None = None) -> str:
    """The cost class of `op` (a key of the table's coefficients; CLASS_FEATURES by family)."""
    k = op.kind
    if k is OpKind.CONV_2D:
        w = graph.tensors[op.inputs[1]].shape
        a = op.attrs
        pads = a.pads if isinstance(a, ConvAttrs) else None
        no_pad = pads is None or (pads.top, pads.bottom, pads.left, pads.right) == (0, 0, 0, 0)
        if w[1] == 1 and w[2] == 1 and no_pad:
            return "conv1x1_reg" if w[3] in REG_1X1_DEPTHS else "conv1x1"
        return "conv_kxk"
    if k is OpKind.DEPTHWISE_CONV_2D:
        w = graph.tensors[op.inputs[1]].shape
        a = op.attrs
        stride = a.stride_h if isinstance(a, ConvAttrs) else 1
        if depthwise_spec.depthwise_single_channel(graph, op, False):
            return "depthwise_c1"  # one input channel (out of place): the band / plane kernels
        hwc = depthwise_spec.depthwise_runs_hwc(graph, op, graph.consumer_counts() if consumers is None else consumers)
        return f"depthwise_k{w[1]}_s{stride}_{'hwc' if hwc else 'plane'}"
    if k is OpKind.FULLY_CONNECTED:
        return "fully_connected" if _fc_offset_kernel(graph, op) else "fully_connected_plain"
    if k is OpKind.ADD:
        return "add"
    if k is OpKind.MEAN:
        return "mean"
    if k in _POOL_KINDS:
        return "pool"
    if k is OpKind.SOFTMAX:
        return "softmax"
    if k in _ALIAS_KINDS:
        return "alias"
    return "other"


def _fc_offset_kernel(graph: Graph, op: Op) -> bool:
    """Whether the engine runs FULLY_CONNECTED on its offset-byte kernel (the accumulator
    bound of ``offset_kernel_exact`` holds) rather than the plain one. Without real weights
    (the search's graphs) the offset kernel: trained classifiers of these sizes meet the bound."""
    from tflite_converter.codegen.ops.fully_connected import graph_offset_kernel_exact

    exact = graph_offset_kernel_exact(graph, op)
    return True if exact is None else exact


def _fc_asm_rows(units: int, offset_kernel: bool) -> int:
    """The rows FULLY_CONNECTED runs in its DSP build's whole blocks (the rest is its C tail):
    the offset kernel's FCO_ROW_BLOCK-row blocks and a 6- or 4-row tail block, or the plain
    kernel's 4-row blocks (engine/kernels/fully_connected.c)."""
    from tflite_converter.codegen.ops.fully_connected import FCO_ROW_BLOCK

    if not offset_kernel:
        return units // 4 * 4
    tail = units % FCO_ROW_BLOCK
    return units - tail + (tail if tail in (4, 6) else 0)


def features_of(cls: str) -> tuple[str, ...]:
    if cls.startswith("depthwise_k"):
        return CLASS_FEATURES["depthwise_" + cls.rsplit("_", 1)[1]]
    return CLASS_FEATURES[cls]


def _valid_taps(size: int, out: int, k: int, stride: int, dilation: int, pad: int) -> int:
    """Kernel taps inside the input, summed over the output positions of one axis."""
    n = 0
    for o in range(out):
        start = o * stride - pad
        n += sum(1 for t in range(k) if 0 <= start + t * dilation < size)
    return n


def _op_key(graph: Graph, op: Op, cls: str) -> tuple:
    """Everything the cost of `op` depends on: class, attributes, tensor shapes."""
    shapes = tuple(tuple(graph.tensors[i].shape) if i >= 0 else () for i in op.inputs)
    outs = tuple(tuple(graph.tensors[i].shape) for i in op.outputs)
    return (cls, op.attrs, shapes, outs)


def op_features(graph: Graph, op: Op, cls: str | None = None) -> dict[str, float]:
    """Shape features of one op (all of them; each class uses a few); `cls`: its cost_class,
    where the caller has it."""
    t = graph.tensors
    x = t[op.inputs[0]].shape if op.inputs and op.inputs[0] >= 0 else ()
    y = t[op.outputs[0]].shape
    in_elems = sum(_prod(t[i].shape) for i in op.inputs if i >= 0 and not t[i].is_constant)
    out_elems = _prod(y)
    f = {"one": 1.0, "in_elems": float(in_elems), "out_elems": float(out_elems)}
    out_pixels = _prod(y[:-1]) if len(y) >= 2 else 1
    f["out_pixels"] = float(out_pixels)
    f["channels"] = float(y[-1]) if y else 1.0
    macs, patch, padded, valid = 0, 0, in_elems, 0
    a = op.attrs
    if op.kind is OpKind.CONV_2D:
        w = t[op.inputs[1]].shape  # [Cout, kh, kw, Cin]
        patch = out_pixels * w[1] * w[2] * w[3]  # im2col gathers
        macs = patch * w[0]
    elif op.kind is OpKind.DEPTHWISE_CONV_2D:
        w = t[op.inputs[1]].shape  # [1, kh, kw, C]
        macs = out_elems * w[1] * w[2]
        if isinstance(a, ConvAttrs) and len(x) == 4:
            p = a.pads
            padded = x[0] * (x[1] + p.top + p.bottom) * (x[2] + p.left + p.right) * x[3]
            valid = y[0] * y[3] * (_valid_taps(x[1], y[1], w[1], a.stride_h, a.dilation_h, p.top)
                                   * _valid_taps(x[2], y[2], w[2], a.stride_w, a.dilation_w, p.left))
    elif op.kind is OpKind.FULLY_CONNECTED:
        w = t[op.inputs[1]].shape  # [units, depth]
        batches = max(1, out_elems // max(1, w[0]))
        macs = _prod(w) * batches
        offset = cls == "fully_connected" if cls is not None else _fc_offset_kernel(graph, op)
        block = batches * _fc_asm_rows(w[0], offset) * w[1] if w[1] % 4 == 0 else 0
        f["fc_block_macs"], f["fc_tail_macs"] = float(block), float(macs - block)
    elif op.kind in _POOL_KINDS and isinstance(a, PoolAttrs):
        macs = out_elems * a.filter_h * a.filter_w
    f.setdefault("fc_block_macs", 0.0)
    f.setdefault("fc_tail_macs", 0.0)
    f["macs"], f["patch_elems"], f["padded_elems"] = float(macs), float(patch), float(padded)
    f["valid_macs"] = float(valid)
    return f


def _as_graph(model: Any) -> Graph:
    if isinstance(model, Graph):
        return model
    from nas.arch_graph import network_to_graph  # no TensorFlow: builds the IR in memory

    spec = model.to_network() if hasattr(model, "to_network") else model
    return network_to_graph(spec)


@dataclasses.dataclass
class LatencyModel:
    """Per-class coefficients (instructions per unit of each feature) for one core."""

    core: str
    cycles_per_instruction: float
    coefficients: dict[str, dict[str, float]]
    cpi_assumption: str = ""
    # instructions of an invoke outside its ops (call, return), per network
    invoke_overhead: float = 0.0
    _op_cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)
    _net_cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    _CACHE_LIMIT = 50000

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        return {"core": self.core, "cycles_per_instruction": self.cycles_per_instruction,
                "cpi_assumption": self.cpi_assumption, "invoke_overhead": self.invoke_overhead,
                "coefficients": {c: dict(v) for c, v in sorted(self.coefficients.items())}}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "LatencyModel":
        return cls(core=str(config["core"]),
                   cycles_per_instruction=float(config["cycles_per_instruction"]),
                   coefficients={str(c): {str(k): float(v) for k, v in coef.items()}
                                 for c, coef in config["coefficients"].items()},
                   cpi_assumption=str(config.get("cpi_assumption", "")),
                   invoke_overhead=float(config.get("invoke_overhead", 0.0)))

    @classmethod
    def load(cls, core: str, path: str | Path | None = None) -> "LatencyModel":
        """The calibrated model of `core` ("cortex-m7" or "cortex-m4") from the table."""
        table = json.loads(Path(path or TABLE_PATH).read_text())
        cores = table["cores"]
        if core not in cores:
            raise ValueError(f"no latency calibration for core '{core}': the table "
                             f"({path or TABLE_PATH}) has {', '.join(sorted(cores))}")
        return cls.from_config(cores[core])

    # ------------------------------------------------------------------ prediction
    def _coefficients(self, cls: str) -> dict[str, float]:
        coef = self.coefficients.get(cls)
        if coef is None and cls.startswith("depthwise_k"):
            # a kernel size / stride never calibrated: the nearest calibrated one, scaled by
            # MACs through its own coefficients (the features carry the kernel size)
            nearest = _nearest_depthwise(cls, self.coefficients)
            coef = self.coefficients.get(nearest) if nearest is not None else None
        if coef is None:
            coef = self.coefficients.get("other", {})
        return coef

    def op_instructions(self, graph: Graph, op: Op, cls: str | None = None) -> int:
        cls = cost_class(graph, op) if cls is None else cls
        key = _op_key(graph, op, cls)
        n = self._op_cache.get(key)
        if n is None:
            f = op_features(graph, op, cls)
            n = int(round(sum(c * f[name] for name, c in self._coefficients(cls).items())))
            if len(self._op_cache) >= self._CACHE_LIMIT:
                self._op_cache.clear()
            self._op_cache[key] = n
        return n

    def predict_ops(self, model: Any) -> list[tuple[int, str, int]]:
        """(op index, cost class, instructions) of every op, in graph order."""
        graph = _as_graph(model)
        consumers = graph.consumer_counts()
        out = []
        for op in graph.ops:
            cls = cost_class(graph, op, consumers)
            out.append((op.index, cls, self.op_instructions(graph, op, cls)))
        return out

    def predict_instructions(self, model: Any) -> int:
        """Instructions of one invoke of a NetworkSpec, an ArchConfig or a Graph."""
        key = None
        if not isinstance(model, Graph):
            try:
                key = hash(model), model
            except TypeError:
                key = None
            if key is not None and key in self._net_cache:
                return self._net_cache[key]
        total = int(round(self.invoke_overhead)) + sum(n for _, _, n in self.predict_ops(model))
        if key is not None:
            if len(self._net_cache) >= self._CACHE_LIMIT:
                self._net_cache.clear()
            self._net_cache[key] = total
        return total

    def predict_cycles(self, model: Any) -> float:
        return self.predict_instructions(model) * self.cycles_per_instruction

    def predict_ms(self, model: Any, clock_hz: float) -> float:
        """Milliseconds at `clock_hz` under the core's CPI assumption."""
        if clock_hz <= 0:
            raise ValueError(f"clock_hz must be positive, got {clock_hz}")
        return self.predict_cycles(model) / float(clock_hz) * 1000.0


def _nearest_depthwise(cls: str, coefficients: Mapping[str, Any]) -> str | None:
    def parse(c: str) -> tuple[int, int, str]:
        k, rest = c[len("depthwise_k"):].split("_s", 1)
        s, variant = rest.split("_", 1)
        return int(k), int(s), variant

    k, s, variant = parse(cls)
    known = [c for c in coefficients if c.startswith("depthwise_k") and parse(c)[2] == variant]
    if not known:
        return None
    return min(known, key=lambda c: (abs(parse(c)[1] - s), abs(parse(c)[0] - k)))


__all__ = ["LatencyModel", "CLASS_FEATURES", "CPI_ASSUMPTIONS", "TABLE_PATH", "cost_class",
           "op_features", "features_of"]
