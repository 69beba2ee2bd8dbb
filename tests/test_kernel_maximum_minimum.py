"""MAXIMUM and MINIMUM (engine/kernels/maximum_minimum.c) against TFLite Micro on the host:
same shapes and every broadcasting pattern (both inputs and the output share one
quantization, as TFLM requires)."""
from __future__ import annotations

import pytest

from tests.kernel_harness import (
    BINARY_BROADCAST_SHAPES,
    assert_host_matches_tflm_on_random_inputs,
    binary_shapes_id,
    broadcast_binary_model,
    needs_host_compiler,
)


@needs_host_compiler
@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM"])
@pytest.mark.parametrize("shapes", BINARY_BROADCAST_SHAPES, ids=binary_shapes_id)
def test_maximum_minimum_broadcast_matches_tflm(op, shapes, tmp_path):
    assert_host_matches_tflm_on_random_inputs(broadcast_binary_model(op, shapes), tmp_path)
