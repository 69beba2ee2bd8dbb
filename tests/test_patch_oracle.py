"""The search's SRAM oracle with patch-based execution (`MemoryOracle(patch=...)`, the search's
--patch): the figure a candidate gets is the arena `convert --patch=auto` then gives its
export, and a candidate that fits layer by layer is not patched."""
from __future__ import annotations

import pytest
from conftest import mcunet_reference_model

from mcunet_tf.mcunet_configs import published_spec
from mcunet_tf.profile import profile
from nas.constraints import CandidateMeter
from nas.memory_oracle import MemoryOracle
from nas.settings import SearchSettings
from tflite_converter.patch import PatchSetting, grid_text
from tflite_converter.pipeline import compile_model


def _spec(name: str):
    try:
        return published_spec(name)
    except FileNotFoundError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("limit", [20_000, 30_000])
def test_patched_figure_is_the_converters_on_the_export(limit):
    spec = _spec("mcunet-in0")
    setting = PatchSetting("auto", sram_limit=limit)
    prof = MemoryOracle(patch=setting).profile(spec)
    layer_by_layer = MemoryOracle().profile(spec)
    assert layer_by_layer.arena_bytes > limit  # so the oracle has to patch
    compiled = compile_model(mcunet_reference_model("mcunet-in0"), patch=setting)
    assert compiled.patch is not None
    assert prof.arena_bytes == compiled.plan.arena_bytes <= limit
    p = compiled.patch.plan
    assert prof.strategy == f"patch {p.split.last_op_index}:{grid_text(p.grid)}"
    assert prof.macs_overhead == pytest.approx(p.macs_overhead) and prof.macs_overhead > 0
    # the fewest MACs that fit: every candidate with fewer MACs was over the limit
    assert all(c.arena_bytes > limit for c in compiled.patch_candidates if c.plan.macs < p.macs)


def test_a_network_that_fits_is_not_patched():
    spec = _spec("mcunet-in0")
    plain = MemoryOracle().profile(spec)
    prof = MemoryOracle(patch=PatchSetting("auto", sram_limit=plain.arena_bytes)).profile(spec)
    assert prof == plain and prof.macs_overhead == 0.0


def test_meter_counts_the_recomputed_macs():
    spec = _spec("mcunet-in0")
    oracle = MemoryOracle(patch=PatchSetting("auto", sram_limit=20_000))
    fit = CandidateMeter(oracle, latency=lambda s: 100.0).measure(spec)
    overhead = oracle.profile(spec).macs_overhead
    assert fit.macs == round(profile(spec).macs * (1 + overhead)) > profile(spec).macs
    assert fit.latency_ms == pytest.approx(100.0 * (1 + overhead))


def test_search_settings_carry_the_patch_flag():
    settings = SearchSettings.from_config({**_settings().get_config(), "patch": True})
    assert settings.patch and settings.patch_setting() == PatchSetting("auto", sram_limit=settings.limits.sram_bytes)
    assert "patch" in settings.result_defining()
    old = _settings().get_config()
    old.pop("patch")
    assert SearchSettings.from_config(old).patch_setting() is None  # runs saved before the flag


def _settings() -> SearchSettings:
    from nas.budget import BUDGETS, get_budget
    from nas.constraints import Limits
    from nas.mcu import Reserve, get_profile

    mcu = get_profile("stm32f746")
    return SearchSettings(mcu, Limits.for_mcu(mcu), Reserve(), get_budget(next(iter(BUDGETS))), "digits", None)
