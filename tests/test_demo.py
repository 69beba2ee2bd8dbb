"""The demo's architecture choice respects the MCU budget the converter's planner reports."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from absl import app

from mcunet_tf.arch import SearchSpace
from mcunet_tf.profile import profile
from nas.demo_steps import pick_architecture
from nas.mcu import PROFILES, get_profile
from nas.memory_oracle import MemoryOracle


def test_profiles_are_the_papers_boards():
    assert get_profile("stm32f746").sram_bytes == 320 * 1024
    assert get_profile("stm32h743").flash_bytes == 2048 * 1024
    for p in PROFILES.values():
        assert type(p).from_config(p.get_config()) == p
    with pytest.raises(ValueError, match="unknown MCU"):
        get_profile("esp32")


def test_pick_architecture_fits_and_maximises_macs():
    space = SearchSpace(width_mult=0.35, resolution=32, num_classes=10)
    oracle = MemoryOracle()
    # A budget between the smallest and the largest network's arena, so that it bites.
    small, large = oracle.peak_sram(space.smallest()), oracle.peak_sram(space.largest())
    assert small < large
    mcu = dataclasses.replace(get_profile("stm32f412"), sram_bytes=(small + large) // 2)
    cfg, info = pick_architecture(space, mcu, oracle, 60, 10**12, np.random.default_rng(1))
    assert oracle.peak_sram(cfg) <= mcu.sram_bytes
    assert info["macs"] == profile(cfg.to_network()).macs
    # It is the largest of the fitting samples: re-sample the same candidates and check.
    rng = np.random.default_rng(1)
    fitting = [c for c in (space.sample(rng) for _ in range(60)) if oracle.peak_sram(c) <= mcu.sram_bytes]
    assert info["fitting"] == len(fitting) < 60
    assert info["macs"] == max(profile(c.to_network()).macs for c in fitting)


def test_pick_architecture_refuses_an_impossible_budget():
    space = SearchSpace(width_mult=0.35, resolution=32, num_classes=10)
    mcu = dataclasses.replace(get_profile("stm32f412"), sram_bytes=1024)
    with pytest.raises(app.UsageError, match="fits"):
        pick_architecture(space, mcu, MemoryOracle(), 5, 10**12, np.random.default_rng(0))
