"""The MCUNet search space: make_divisible, ArchConfig/SearchSpace/NetworkSpec, recognition."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mcunet_tf.arch import ArchConfig, SearchSpace, make_divisible
from mcunet_tf.mcunet_configs import (
    PUBLISHED,
    arch_config_from_network,
    builtin_published_spec,
    load_mcunet_config,
    load_published,
)
from mcunet_tf.network import BlockSpec, NetworkSpec

CONFIGS = Path(__file__).resolve().parents[1].parent / "shared" / "mcunet_configs"


def _need_configs() -> None:
    if not CONFIGS.is_dir():
        pytest.skip(f"MCUNet configurations not found at {CONFIGS}")


@pytest.mark.parametrize("value, expected", [
    (32 * 0.5, 16),    # exact
    (19.2, 24),        # 16 would lose > 10% -> +8
    (9.6, 16),         # 8 loses 16.7% -> +8
    (57.6, 56),        # rounds down, loses < 10%
    (33.6, 32),        # 32 >= 0.9 * 33.6
    (12.0, 16),        # halves round up
    (3.0, 8),          # never below the divisor
    (115.2, 112),
    (1280 * 0.35, 448),
])
def test_make_divisible(value: float, expected: int) -> None:
    assert make_divisible(value) == expected


def test_make_divisible_min_value_and_divisor() -> None:
    assert make_divisible(3.0, 8, min_value=16) == 16
    assert make_divisible(10.0, 4) == 12  # int(12)//4*4 = 12
    assert make_divisible(7.0, 4) == 8


def test_space_shape() -> None:
    space = SearchSpace(width_mult=1.0, resolution=160)
    assert space.num_block_slots == 21
    assert space.allowed_depths(5) == (1,)
    assert space.allowed_depths(0) == (2, 3, 4)
    assert space.stage_channels() == (24, 40, 80, 96, 192, 320)
    assert SearchSpace(width_mult=0.5, resolution=96).stage_channels() == (16, 24, 40, 48, 96, 160)


def test_json_round_trip() -> None:
    space = SearchSpace(width_mult=0.35, resolution=112, num_classes=10)
    cfg = space.sample(np.random.default_rng(3))
    text = cfg.to_json()
    back = ArchConfig.from_json(text)
    assert back == cfg
    assert back.space == space
    assert back.to_json() == text
    assert SearchSpace.from_config(json.loads(json.dumps(space.get_config()))) == space
    # Defaults: an ArchConfig without an explicit space gets MCUNet's at its width/resolution.
    plain = ArchConfig(resolution=112, width_mult=0.35, kernel_sizes=cfg.kernel_sizes,
                       expand_ratios=cfg.expand_ratios, depths=cfg.depths, num_classes=10)
    assert plain == cfg


def test_arch_config_rejects_inconsistent_input() -> None:
    space = SearchSpace(width_mult=1.0, resolution=160)
    good = space.largest()
    with pytest.raises(ValueError, match="kernel sizes"):
        ArchConfig(160, 1.0, good.kernel_sizes[:-1], good.expand_ratios, good.depths)
    with pytest.raises(ValueError, match="disagree"):
        ArchConfig(96, 1.0, good.kernel_sizes, good.expand_ratios, good.depths, space=space)
    with pytest.raises(ValueError, match="depth"):
        ArchConfig(160, 1.0, good.kernel_sizes, good.expand_ratios, (4, 4, 4, 4, 4, 2))


def test_sample_mutate_crossover_in_space_and_deterministic() -> None:
    space = SearchSpace(width_mult=0.5, resolution=128)
    rng = np.random.default_rng(0)
    samples = [space.sample(rng) for _ in range(50)]
    assert all(space.contains(s) for s in samples)
    assert len({s.to_json() for s in samples}) == 50
    assert all(s.depths[-1] == 1 for s in samples)

    def run(seed: int) -> list[str]:
        r = np.random.default_rng(seed)
        a, b = space.sample(r), space.sample(r)
        m = space.mutate(a, r, prob=0.3)
        c = space.crossover(a, b, r)
        return [x.to_json() for x in (a, b, m, c)]

    assert run(7) == run(7)
    assert run(7) != run(8)
    r = np.random.default_rng(1)
    a, b = space.sample(r), space.sample(r)
    for _ in range(20):
        m = space.mutate(a, r, prob=0.5)
        c = space.crossover(a, b, r)
        assert space.contains(m) and space.contains(c)
        for i, gene in enumerate(c.kernel_sizes):
            assert gene in (a.kernel_sizes[i], b.kernel_sizes[i])
    assert space.mutate(a, r, prob=0.0) == a
    assert space.mutate(a, r, prob=1.0) != a  # 48 genes redrawn: equal only by a fluke
    other = SearchSpace(width_mult=0.6, resolution=128).largest()
    assert not space.contains(other)
    with pytest.raises(ValueError, match="not in this search space"):
        space.mutate(other, r)


def test_to_network_channels() -> None:
    space = SearchSpace(width_mult=0.5, resolution=96)
    cfg = space.largest()
    net = cfg.to_network()
    assert net.first_conv.out_channels == 16 and net.first_conv.stride == 2
    first = net.blocks[0]
    assert (first.in_channels, first.out_channels, first.expand_ratio) == (16, 8, 1)
    assert first.mid_channels == 16 and not first.residual
    assert len(net.blocks) == 1 + sum(cfg.depths) == 1 + 21
    assert [b.out_channels for b in net.blocks[1:5]] == [16] * 4
    assert net.blocks[1].stride == 2 and net.blocks[1].mid_channels == 8 * 6
    assert not net.blocks[1].residual and all(b.residual for b in net.blocks[2:5])
    assert net.blocks[-1].out_channels == 160 and net.feature_channels == 160
    small = space.smallest().to_network()
    assert len(small.blocks) == 1 + 2 * 5 + 1
    # Unused slots are ignored: changing them does not change the network.
    genes = list(space.smallest().kernel_sizes)
    genes[3] = 7  # stage 0, slot 3: unused at depth 2
    changed = ArchConfig(96, 0.5, tuple(genes), space.smallest().expand_ratios,
                         space.smallest().depths)
    assert changed.to_network() == small and changed != space.smallest()


def test_network_spec_round_trip_and_validation() -> None:
    net = SearchSpace(width_mult=0.75, resolution=64).sample(np.random.default_rng(5)).to_network()
    assert NetworkSpec.from_json(net.to_json()) == net
    with pytest.raises(ValueError, match="shortcut"):
        BlockSpec(16, 24, 96, 3, 1, 6, residual=True)
    with pytest.raises(ValueError, match="mid_channels"):
        BlockSpec(16, 16, 32, 3, 1, 1, residual=False)
    with pytest.raises(ValueError, match="takes"):
        NetworkSpec(64, 3, net.first_conv, (BlockSpec(99, 8, 99, 3, 1, 1, False),), None, 10)


@pytest.mark.parametrize("entry", PUBLISHED, ids=lambda e: e.name)
def test_builtin_published_networks_equal_their_files(entry) -> None:
    _need_configs()
    builtin = builtin_published_spec(entry.name)
    if builtin is None:
        pytest.skip(f"{entry.name} has no built-in definition (file only)")
    assert builtin == load_published(entry.name, CONFIGS)


def test_every_config_file_loads_and_mcunets_are_arch_configs() -> None:
    _need_configs()
    recognised = {}
    for path in sorted(CONFIGS.glob("*.json")):
        spec = load_mcunet_config(path)
        assert spec.blocks and spec.num_classes == 1000
        arch = arch_config_from_network(spec)
        if arch is not None:
            assert arch.to_network() == spec
            assert arch.space.contains(arch)
            recognised[spec.name] = arch.width_mult
    assert recognised["mcunet-10fps"] == 0.6
    assert recognised["mcunet-5fps"] == 0.5
    assert recognised["mcunet-512kb-2mb"] == 1.0
    assert "mbv2-w0.35-r144" not in recognised  # MobileNetV2 is not in MCUNet's space
    # proxyless files: ZeroLayer blocks are skipped
    proxyless = load_mcunet_config(CONFIGS / "proxyless-w0.3-r176_imagenet.json")
    assert len(proxyless.blocks) == 20
