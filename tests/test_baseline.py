"""The compound-scaled MobileNetV2 baseline: its path, the choice at the search's limits, and
its training from scratch."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from nas.baseline import WIDTH_PATH, BaselineChoice, choose_baseline, compound_path, mobilenet_v2_network
from nas.memory_oracle import MemoryOracle

RESOLUTIONS = (32, 48, 64, 80, 96)


def test_compound_path_shrinks_width_and_resolution_together():
    path = compound_path(RESOLUTIONS)
    assert [w for w, _ in path] == list(WIDTH_PATH)
    assert path[0] == (1.0, 96) and path[-1] == (0.1, 32)
    rs = [r for _, r in path]
    assert rs == sorted(rs, reverse=True) and set(rs) == set(RESOLUTIONS)
    # Off-grid resolutions are dropped; a one-point grid pairs every width with it.
    assert {r for _, r in compound_path((64, 70))} == {64}
    with pytest.raises(ValueError, match="multiple of 16"):
        compound_path((30,))


def test_choose_baseline_takes_the_largest_fitting_point():
    oracle = MemoryOracle()
    path = compound_path(RESOLUTIONS)
    profiles = [oracle.profile(mobilenet_v2_network(w, r, 10, 1)) for w, r in path]
    arenas = [p.arena_bytes for p in profiles]
    # An SRAM limit that the third point meets and the first two do not.
    assert arenas[2] < min(arenas[:2])
    sram = arenas[2]
    choice = choose_baseline(10, 1, RESOLUTIONS, sram_bytes=sram, flash_bytes=10**9, oracle=oracle)
    assert (choice.width_mult, choice.resolution) == path[2]
    assert choice.spec.in_channels == 1 and choice.spec.num_classes == 10
    assert choice.spec.resolution == path[2][1]
    assert choice.arena_bytes == sram == oracle.profile(choice.spec).arena_bytes
    assert [p.fits for p in choice.path] == [False, False, True]
    config = choice.get_config()
    assert config["width_mult"] == path[2][0] and config["resolution"] == path[2][1]
    assert BaselineChoice.from_config(config) == choice
    # The Flash limit bites as well.
    # The estimate needs its 1% error margin: a limit equal to point 4's estimate is not met
    # by point 4, the same limit plus the margin is.
    flash = profiles[4].flash_estimate_bytes
    choice = choose_baseline(10, 1, RESOLUTIONS, sram_bytes=10**9, flash_bytes=flash, oracle=oracle)
    assert choice.flash_bytes < flash and len(choice.path) > 5
    flash = math.ceil(profiles[4].flash_estimate_bytes * 1.01)
    choice = choose_baseline(10, 1, RESOLUTIONS, sram_bytes=10**9, flash_bytes=flash, oracle=oracle)
    assert choice.flash_bytes * 1.01 <= flash and len(choice.path) == 5


def test_choose_baseline_latency_limit_is_measured_only_where_memory_fits():
    seen = []

    def latency(spec):
        seen.append(spec)
        return 100.0 * spec.first_conv.out_channels / 32  # wider -> slower

    choice = choose_baseline(10, 3, RESOLUTIONS, sram_bytes=10**9, flash_bytes=10**9,
                             latency_ms=40.0, latency=latency)
    assert choice.latency_ms is not None and choice.latency_ms <= 40.0
    assert all(p.latency_ms is not None for p in choice.path)
    assert len(seen) == len(choice.path) and not choice.path[-2].fits


def test_choose_baseline_refuses_impossible_limits():
    with pytest.raises(ValueError, match=r"smallest arena \d+ B .*smallest flash \d+ B"):
        choose_baseline(10, 3, RESOLUTIONS, sram_bytes=1000, flash_bytes=10**9)
    with pytest.raises(ValueError, match="latency"):
        choose_baseline(10, 3, RESOLUTIONS, sram_bytes=10**9, flash_bytes=10**9, latency_ms=1.0)


def test_choose_baseline_needs_no_tensorflow():
    code = ("import sys; from nas.baseline import choose_baseline; "
            "choose_baseline(10, 1, (32, 48), sram_bytes=10**9, flash_bytes=10**9); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_train_baseline_is_seeded_and_trains():
    from mcunet_tf import data
    from nas.arch_graph import network_to_graph
    from nas.baseline import train_baseline

    spec = mobilenet_v2_network(0.1, 32, 10, 1)
    assert network_to_graph(spec).ops  # the oracle's graph builder takes it
    splits = data.load_digits()
    train = data.prepare_dataset(splits.train, data.Preprocessing(32, 1))
    a = train_baseline(spec, splits, train, steps=0, batch_size=16, seed=3, progress=False)
    b = train_baseline(spec, splits, train, steps=3, batch_size=16, seed=3, progress=False)
    assert a.input_shape == (None, 32, 32, 1) and a.output_shape == (None, 10)
    # Same seed, same initial weights: the 3 steps are the only difference.
    init = [w.copy() for w in a.get_weights()]
    changed = [not np.array_equal(x, y) for x, y in zip(init, b.get_weights())]
    assert any(changed)
    c = train_baseline(spec, splits, train, steps=0, batch_size=16, seed=3, progress=False)
    assert all(np.array_equal(x, y) for x, y in zip(init, c.get_weights()))
    with pytest.raises(ValueError, match="training images"):
        train_baseline(mobilenet_v2_network(0.1, 48, 10, 1), splits, train, steps=1,
                       batch_size=16, seed=0, progress=False)
