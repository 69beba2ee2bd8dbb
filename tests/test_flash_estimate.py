"""The search's Flash estimate (nas.flash_estimate) against what the code generator writes
and what the Cortex-M compiler makes of it, on real MCUNet-style models (no TensorFlow), as
they are and with every filter rewritten as int4 (tflite_converter.int4)."""
from __future__ import annotations

import collections
import re

import numpy as np
import pytest

from engine import qemu
from mcunet_tf.arch import SearchSpace
from nas import flash_estimate
from nas.arch_graph import network_to_graph
from tflite_converter.codegen.generate import generate
from tflite_converter.pipeline import compile_model

_C_SIZES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4,
            "float": 4}
RULED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD"}  # kinds with a layout rule
MODELS = ("tinyengine_mcunet_vww", "mlperf_tiny_vww_96_int8")


def _generated(shared_models, name, tmp_path, int4=False):
    """The model's generated C; `int4`: of its rewrite with every filter int4."""
    from tflite_converter.int4 import int4_filters_tflite

    data = (shared_models / f"{name}.tflite").read_bytes()
    compiled = compile_model(int4_filters_tflite(data) if int4 else data)
    out = tmp_path / name
    generate(compiled.graph, compiled.plan, out, name="model", order=compiled.order)
    return compiled.graph, out


def _array_bytes_per_op(source: str) -> dict[int, int]:
    per: dict[int, int] = collections.Counter()
    for m in re.finditer(r"/\* op(\d+)_\w+: (\d+) x (\w+) \*/", source):
        per[int(m.group(1))] += int(m.group(2)) * _C_SIZES[m.group(3)]
    return per


@pytest.mark.parametrize("int4", [False, True])
@pytest.mark.parametrize("name", MODELS)
def test_constant_bytes_per_op_are_the_generated_arrays(shared_models, name, int4, tmp_path):
    graph, out = _generated(shared_models, name, tmp_path, int4)
    written = _array_bytes_per_op((out / "model.c").read_text())
    consumers = graph.consumer_counts()
    kinds = collections.Counter()
    for op in graph.ops:
        estimate = flash_estimate.op_const_bytes(graph, op, consumers)
        if op.kind.name == "MEAN":
            assert abs(estimate - written.get(op.index, 0)) <= 32, op
        elif op.kind.name in RULED:
            assert estimate == written.get(op.index, 0), (op.index, op.kind.name)
        kinds[op.kind.name] += 1
        if op.kind.name in RULED - {"ADD"}:
            assert graph.tensors[op.inputs[1]].packed_int4 == int4
    assert kinds["DEPTHWISE_CONV_2D"] >= 8 and kinds["CONV_2D"] >= 8  # the rules were exercised


@pytest.mark.skipif(not qemu.toolchain_available(), reason="arm-none-eabi toolchain not installed")
@pytest.mark.parametrize("int4", [False, True])
@pytest.mark.parametrize("name", MODELS)
def test_estimate_is_within_one_percent_of_the_model_object(shared_models, name, int4, tmp_path):
    graph, out = _generated(shared_models, name, tmp_path, int4)
    image = qemu.build_image(out, "model", "cortex-m7", True)
    measured = qemu.section_sizes(image.model_object).flash_bytes
    estimate = flash_estimate.graph_flash_bytes(graph)
    assert abs(estimate - measured) <= 0.01 * measured, (estimate, measured)


def test_spec_path_equals_graph_path():
    rng = np.random.default_rng(5)
    checked = 0
    for width in (0.2, 0.5, 1.0):
        for resolution in (32, 64, 144):
            space = SearchSpace(width_mult=width, resolution=resolution, num_classes=10)
            for _ in range(15):
                spec = space.sample(rng).to_network()
                assert flash_estimate.network_flash_bytes(spec) == \
                    flash_estimate.graph_flash_bytes(network_to_graph(spec))
                checked += 1
    assert checked == 135


def test_layout_rules():
    assert flash_estimate.conv_bytes(10, 1, 16) == 10 * (32 + 16)  # register kernel: int16 weights
    assert flash_estimate.conv_bytes(10, 1, 40) == 10 * (40 + 16)
    assert flash_estimate.conv_bytes(8, 3, 3) == 8 * (28 + 16)  # 27 taps padded to 28
    assert flash_estimate.depthwise_bytes(4, 5, 5, hwc=True) == 4 * (25 + 12)
    assert flash_estimate.depthwise_bytes(4, 5, 5, hwc=False) == 4 * (40 + 12)
    assert flash_estimate.fully_connected_bytes(10, 30) == 10 * (32 + 16)
    # int4: whole words of eight weights, half-byte depthwise taps, FC units padded to 4
    assert flash_estimate.conv_bytes(10, 1, 16, int4=True) == 10 * 16 // 2 + 10 * 16
    assert flash_estimate.conv_bytes(3, 3, 3, int4=True) == 3 * 28 // 2 + 2 + 3 * 16
    assert flash_estimate.depthwise_bytes(4, 3, 3, hwc=False, int4=True) == 4 * 12 // 2 + 4 * 12
    assert flash_estimate.fully_connected_bytes(10, 30, int4=True) == 12 * 32 // 2 + 10 * 12


def test_int4_spec_path_equals_graph_path():
    rng = np.random.default_rng(6)
    for width, resolution in ((0.3, 48), (0.75, 96)):
        space = SearchSpace(width_mult=width, resolution=resolution, num_classes=10)
        for _ in range(10):
            spec = space.sample(rng).to_network()
            four = flash_estimate.network_flash_bytes(spec, int4=True)
            assert four == flash_estimate.graph_flash_bytes(network_to_graph(spec, int4=True))
            assert four < 0.7 * flash_estimate.network_flash_bytes(spec)
