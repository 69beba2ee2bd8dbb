"""TinyNAS stages without TensorFlow: stage 1 (space choice) and stage 2 (evolution) with a
stand-in accuracy, their constraints, determinism and resumption after an interruption."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mcunet_tf.arch import SearchSpace
from nas.constraints import CandidateMeter, Fit, Limits
from nas.evolution import Evolution, EvolutionConfig, network_key
from nas.mcu import DEFAULT_RESERVE, get_profile
from nas.space_search import (
    MIN_FIT_FRACTION,
    NothingFits,
    SpaceGrid,
    SpaceStats,
    Stage1Result,
    eligible_spaces,
    optimise_spaces,
    profile_space,
    random_space,
    resolutions_for_images,
    smallest_reachable,
)

KIB = 1024


@pytest.fixture(scope="module")
def meter():
    return CandidateMeter()


def test_resolution_grid_adapts_to_the_images():
    assert resolutions_for_images(32) == (32, 48, 64, 80, 96)
    assert resolutions_for_images(28) == (32, 48, 64, 80)
    assert resolutions_for_images(8) == (32, 48)  # tiny images: the backbone's minimum
    assert resolutions_for_images(224)[-1] == 224
    assert resolutions_for_images(32, max_resolution=48) == (32, 48)


def test_limits_take_the_reserve_off_the_part_only():
    mcu = get_profile("stm32f746")
    lim = Limits.for_mcu(mcu)
    assert lim.sram_bytes == 320 * KIB - DEFAULT_RESERVE.sram_bytes
    assert lim.flash_bytes == 1024 * KIB - DEFAULT_RESERVE.flash_bytes
    explicit = Limits.for_mcu(mcu, sram_kb=64, flash_kb=256)
    assert (explicit.sram_bytes, explicit.flash_bytes) == (64 * KIB, 256 * KIB)


def test_fit_checks_every_limit():
    fit = Fit(arena_bytes=1000, flash_bytes=2000, macs=5, latency_ms=3.0)
    # Flash is an estimate: it fits only with the estimate's error margin (1% of 2000) kept.
    assert fit.within(Limits(1000, 2020))
    assert not fit.within(Limits(1000, 2000))
    assert not fit.within(Limits(999, 2020))
    assert not fit.within(Limits(1000, 2019))
    assert fit.within(Limits(1000, 2020, latency_ms=3.0))
    assert not fit.within(Limits(1000, 2020, latency_ms=2.9))
    assert not Fit(1, 1, 1, None).within(Limits(10, 10, latency_ms=1.0))  # unknown latency


def test_space_profile_keeps_exactly_the_fitting_networks(meter):
    space = SearchSpace(0.3, 48, num_classes=10)
    limits = Limits(28 * KIB, 300 * KIB)
    stats = profile_space(space, meter, limits, 60, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    expected = []
    for _ in range(60):
        fit = meter.measure(space.sample(rng))
        if fit.arena_bytes <= limits.sram_bytes and fit.flash_bytes * 1.01 <= limits.flash_bytes:
            expected.append(fit.macs)
    assert stats.fitting_macs == tuple(sorted(expected))
    assert 0 < stats.fitting < 60  # the limits cut through this space
    assert stats.mean_macs == pytest.approx(np.mean(expected))


def test_stage1_chooses_the_space_with_most_mean_macs_and_resumes(meter, tmp_path):
    grid = SpaceGrid((0.2, 0.4, 0.6), (32, 48, 64), num_classes=10)
    limits = Limits(48 * KIB, 256 * KIB)
    full = optimise_spaces(grid, meter, limits, 40, seed=1, progress=False)
    means = [s.mean_macs for s in full.stats]
    assert full.chosen.mean_macs == max(means)
    assert full.ranked()[0] is full.chosen
    # a run stopped after 4 spaces (the partial file holds them) resumes to the same result
    partial = tmp_path / "partial.json"
    first = optimise_spaces(SpaceGrid((0.2,), (32, 48, 64), 10), meter, limits, 40, seed=1,
                            partial_path=partial, progress=False)
    saved = json.loads(partial.read_text())
    saved["grid"] = grid.get_config()
    saved["stats"] = saved["stats"] + [full.stats[3].get_config()]
    partial.write_text(json.dumps(saved))
    resumed = optimise_spaces(grid, meter, limits, 40, seed=1, partial_path=partial, progress=False)
    assert [s.get_config() for s in resumed.stats] == [s.get_config() for s in full.stats]
    assert first.stats == full.stats[:3]
    assert "(chosen)" in full.table_markdown()


def test_stage1_passes_over_spaces_where_too_few_networks_fit():
    # One network in a thousand right at the limits has the highest mean, but a space where
    # 252 fit is the one to specialise.
    sliver = SpaceStats(0.4, 80, 1000, (8_900_000,), 60_000, 200_000)
    broad = SpaceStats(0.3, 80, 1000, tuple(range(6_000_000, 6_000_000 + 252)), 30_000, 100_000)
    small = SpaceStats(0.2, 48, 1000, tuple(range(1_000_000, 1_001_000)), 10_000, 50_000)
    none = SpaceStats(0.5, 80, 1000, (), 90_000, 300_000)
    assert sliver.fitting_fraction < MIN_FIT_FRACTION <= broad.fitting_fraction
    assert eligible_spaces([sliver, broad, small, none]) == [broad, small]
    # with no space above the fraction, every space that has a fitting network may be chosen
    assert eligible_spaces([sliver, none]) == [sliver]
    grid = SpaceGrid((0.2, 0.3, 0.4, 0.5), (48, 80), num_classes=10)
    result = Stage1Result(grid, Limits(64 * KIB, 256 * KIB), (sliver, broad, small, none), 1)
    assert result.eligible() == [broad, small]
    assert "(too few fit)" in result.table_markdown()
    assert {random_space(result, seed).width_mult for seed in range(20)} == {0.3, 0.2}


def test_stage1_chooses_only_among_eligible_spaces(meter):
    grid = SpaceGrid((0.2, 0.4, 0.6), (32, 48, 64), num_classes=10)
    result = optimise_spaces(grid, meter, Limits(40 * KIB, 160 * KIB), 60, seed=2, progress=False)
    eligible = result.eligible()
    assert result.chosen in eligible
    assert result.chosen.mean_macs == max(s.mean_macs for s in eligible)
    if len(eligible) < sum(1 for s in result.stats if s.fitting):
        assert all(s.fitting_fraction >= MIN_FIT_FRACTION for s in eligible)


def test_stage1_refuses_limits_nothing_meets(meter):
    grid = SpaceGrid((0.2,), (32,), num_classes=10)
    with pytest.raises(NothingFits, match=r"smallest peak SRAM sampled is [\d.]+ KiB"):
        optimise_spaces(grid, meter, Limits(2 * KIB, 1024 * KIB), 20, seed=0, progress=False)
    arena, flash = smallest_reachable(grid, meter)
    assert arena > 2 * KIB and flash > 0


def _toy_accuracy(calls):
    """A deterministic stand-in for supernet accuracy: bigger kernels and expansions score
    higher, so evolution has a direction to go."""
    def accuracy(cfg):
        calls.append(network_key(cfg))
        slots = cfg.active_slots
        return float(sum(cfg.kernel_sizes[s] * cfg.expand_ratios[s] for s in slots)) / 1000.0
    return accuracy


def _evolution(meter, calls, path=None, generations=5):
    space = SearchSpace(0.3, 48, num_classes=10)
    return Evolution(space, meter, Limits(64 * KIB, 300 * KIB), _toy_accuracy(calls),
                     EvolutionConfig(population=12, generations=generations, seed=4), path,
                     progress=False)


def test_evolution_improves_and_every_candidate_fits(meter):
    calls = []
    result = _evolution(meter, calls).run()
    history = result.history
    assert len(history) == 5
    best = [h["best_accuracy"] for h in history]
    assert best == sorted(best)  # parents are kept: the best never gets worse
    assert best[-1] > best[0]
    assert len(calls) == len(set(calls)) == result.evaluations  # each network measured once
    limits = Limits(64 * KIB, 300 * KIB)
    for scored in result.top:
        assert meter.measure(scored.config).within(limits)
        assert scored.fit.arena_bytes <= limits.sram_bytes
    assert result.best.accuracy == max(s.accuracy for s in result.top)


def test_evolution_resumes_to_the_same_result(meter, tmp_path):
    unbroken = _evolution(meter, []).run()
    path = tmp_path / "evo.json"
    # stop after 2 generations, then continue in a fresh object (as a new process would)
    first = _evolution(meter, [], path, generations=5)

    class Stop(Exception):
        pass

    original = first.children
    count = {"n": 0}

    def stop_after_two(parents, generation):
        count["n"] += 1
        if count["n"] == 2:
            raise Stop
        return original(parents, generation)

    first.children = stop_after_two
    with pytest.raises(Stop):
        first.run()
    calls = []
    resumed = _evolution(meter, calls, path, generations=5).run()
    assert resumed.best.config == unbroken.best.config
    assert [h["best_accuracy"] for h in resumed.history] == [h["best_accuracy"] for h in unbroken.history]
    assert len(calls) < unbroken.evaluations  # measured accuracies were not measured again
