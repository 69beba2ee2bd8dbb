"""The analytic profile reproduces MCUNet's published figures; the mcunet-profile program."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcunet_tf.arch import SearchSpace
from mcunet_tf.mcunet_configs import PUBLISHED, load_mcunet_config, load_published
from mcunet_tf.network import BlockSpec, ConvSpec, NetworkSpec
from mcunet_tf.profile import profile

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO.parent / "shared" / "mcunet_configs"
PUBLISHED_WITH_FIGURES = [e for e in PUBLISHED if e.macs is not None]


def _need_configs() -> None:
    if not CONFIGS.is_dir():
        pytest.skip(f"MCUNet configurations not found at {CONFIGS}")


@pytest.mark.parametrize("entry", PUBLISHED_WITH_FIGURES, ids=lambda e: e.name)
def test_published_figures(entry) -> None:
    _need_configs()
    result = profile(load_published(entry.name, CONFIGS))
    assert round(result.macs / 1e6, 1) == pytest.approx(entry.macs / 1e6), result.macs
    assert abs(result.peak_activation_bytes / 1024 - entry.peak_kib) <= 1.0, \
        result.peak_activation_bytes
    if entry.params is not None:
        assert abs(result.params - entry.params) <= 0.02 * entry.params, result.params


# Exact integers of MCUNET_FIGURES.md for the parameters and the peak (bytes), which do not
# depend on how the pooling is counted.
EXACT = {
    "mcunet-10fps": (749_840, 46_080),
    "mcunet-5fps": (636_232, 92_160),
    "mcunet-256kb-1mb": (729_392, 332_800),
    "mcunet-320kb-1mb": (737_408, 340_736),
    "mcunet-512kb-2mb": (1_732_640, 422_400),
    "mbv2-w0.35-r144": (750_280, 311_040),
    "proxyless-w0.3-r176": (754_280, 247_808),
}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_params_and_peak(name: str) -> None:
    _need_configs()
    result = profile(load_mcunet_config(CONFIGS / f"{name}_imagenet.json"))
    assert (result.params, result.peak_activation_bytes) == EXACT[name]


def test_residual_term_decides_peak() -> None:
    """in2's peak is a depthwise conv of a residual block, with the block input held."""
    _need_configs()
    result = profile(load_mcunet_config(CONFIGS / "mcunet-256kb-1mb_imagenet.json"))
    peak = max(result.per_layer, key=lambda layer: layer.live_elements)
    assert peak.name.endswith("_dw")
    h, w, c = peak.input_shape
    assert peak.live_elements > h * w * c + peak.output_shape[0] * peak.output_shape[1] * c


def test_hand_counted_tiny_network() -> None:
    """A 8x8x3 net: stem 3x3/2 -> 8ch, one residual MBConv (e2, k3), classifier to 10."""
    spec = NetworkSpec(
        resolution=8, in_channels=3,
        first_conv=ConvSpec(out_channels=8, kernel=3, stride=2),
        blocks=(BlockSpec(8, 8, 16, 3, 1, 2, residual=True),),
        feature_mix=None, num_classes=10)
    result = profile(spec)
    stem = 4 * 4 * 8 * 3 * 9
    expand = 4 * 4 * 16 * 8
    dw = 4 * 4 * 16 * 9
    project = 4 * 4 * 8 * 16
    assert result.macs == stem + expand + dw + project + 8 * 10
    assert result.params == (8 * 3 * 9 + 16) + (16 * 8 + 32) + (16 * 9 + 32) + (8 * 16 + 16) \
        + 8 * 10 + 10
    # depthwise: in 4*4*16 + out 4*4*16 + held block input 4*4*8 = 640; stem 192 + 128
    assert result.peak_activation_bytes == 640
    assert profile(spec, activation_bits=4).peak_activation_bytes == 320


def test_odd_sizes_round_up() -> None:
    spec = SearchSpace(width_mult=0.5, resolution=11).smallest().to_network()
    shapes = [layer.output_shape[:2] for layer in profile(spec).per_layer]
    assert shapes[0] == (6, 6)  # 11 -> 6 at stride 2


def _run_cli(*args: str, cwd: Path, env_extra: dict[str, str] | None = None):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "mcunet_tf.profile_main", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_cli_mcunet_json(tmp_path: Path) -> None:
    _need_configs()
    proc = _run_cli(f"--config={CONFIGS / 'mcunet-5fps_imagenet.json'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {"macs", "params", "peak_activation_bytes"} <= set(out)
    assert (out["params"], out["peak_activation_bytes"]) == EXACT["mcunet-5fps"]
    assert out["arch_config"]["width_mult"] == 0.5


def test_cli_arch_config_relative_to_bazel_working_dir(tmp_path: Path) -> None:
    cfg = SearchSpace(width_mult=0.5, resolution=96).sample(np.random.default_rng(0))
    (tmp_path / "arch.json").write_text(cfg.to_json())
    # Run from elsewhere: the relative path must resolve against BUILD_WORKING_DIRECTORY.
    proc = _run_cli("--config=arch.json", cwd=REPO,
                    env_extra={"BUILD_WORKING_DIRECTORY": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    expected = profile(cfg.to_network())
    assert (out["macs"], out["params"], out["peak_activation_bytes"]) == (
        expected.macs, expected.params, expected.peak_activation_bytes)
    assert out["format"] == "arch"


def test_cli_refuses_bad_file_cleanly(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"hello": 1}')
    proc = _run_cli("--config=bad.json", cwd=tmp_path)
    assert proc.returncode != 0
    assert "unrecognised configuration" in proc.stderr
    assert "Traceback" not in proc.stderr
