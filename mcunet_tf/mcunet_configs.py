"""Import of MCUNet's released network configurations, and the published networks by name.

MCUNet's model zoo ships each network as a ProxylessNAS-style JSON file (``first_conv``,
``blocks`` of ``MobileInvertedResidualBlock`` with a ``mobile_inverted_conv`` and a
``shortcut``, ``feature_mix_layer``, ``classifier``, ``resolution``). The reading rules are
those of ``../shared/MCUNET_FIGURES.md``:

* channel counts are taken as written (no rounding);
* hidden width = ``mid_channels`` if given, else ``round(in_channels * expand_ratio)``;
  expand ratio 1 means no expansion convolution;
* a block whose ``mobile_inverted_conv`` is a ``ZeroLayer`` is skipped (it is an identity);
* ``shortcut`` non-null means an identity residual;
* older files omit ``mid_channels``/``act_func``/``use_se`` (defaults null, relu6, false).

Everything the Keras builder cannot represent (squeeze-excite, grouped or dilated
convolutions, non-identity shortcuts, biased convolutions, ...) is refused with a message
naming the layer and the reason.

:func:`arch_config_from_network` recognises a network that is a point of MCUNet's search space
(the MCUNet ``in0``..``in4`` files are) and gives its :class:`ArchConfig`.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from mcunet_tf.arch import ArchConfig, SearchSpace, is_arch_config, make_divisible
from mcunet_tf.network import Activation, BlockSpec, ConvSpec, NetworkSpec, is_network_spec_config

CONFIGS_DIR_ENV = "MCUNET_CONFIGS_DIR"


class MCUNetConfigError(ValueError):
    """A configuration file that cannot be turned into a :class:`NetworkSpec`."""


# --------------------------------------------------------------------------- MCUNet JSON
def _act(layer: Mapping[str, Any], where: str, default: str | None = "relu6") -> Activation:
    try:
        return Activation.parse(layer.get("act_func", default))
    except ValueError as err:
        raise MCUNetConfigError(f"{where}: {err}") from None


def _conv_layer(layer: Mapping[str, Any], where: str) -> tuple[int, ConvSpec]:
    """A ProxylessNAS ``ConvLayer`` -> (in_channels, ConvSpec)."""
    if layer.get("name") != "ConvLayer":
        raise MCUNetConfigError(f"{where}: expected a ConvLayer, got {layer.get('name')!r}")
    if layer.get("groups", 1) != 1:
        raise MCUNetConfigError(f"{where}: grouped convolution (groups={layer['groups']}) "
                                "is not supported")
    if layer.get("dilation", 1) != 1:
        raise MCUNetConfigError(f"{where}: dilated convolution is not supported")
    if layer.get("bias", False):
        raise MCUNetConfigError(f"{where}: convolution with bias is not supported "
                                "(the backbone uses conv + BatchNorm)")
    if not layer.get("use_bn", True):
        raise MCUNetConfigError(f"{where}: convolution without BatchNorm is not supported")
    if layer.get("ops_order", "weight_bn_act") != "weight_bn_act":
        raise MCUNetConfigError(f"{where}: ops_order {layer['ops_order']!r} is not supported "
                                "(only weight_bn_act)")
    if layer.get("has_shuffle", False):
        raise MCUNetConfigError(f"{where}: channel shuffle is not supported")
    kernel = int(layer["kernel_size"])
    if kernel % 2 == 0:
        raise MCUNetConfigError(f"{where}: even kernel size {kernel} is not supported")
    return int(layer["in_channels"]), ConvSpec(out_channels=int(layer["out_channels"]),
                                                kernel=kernel, stride=int(layer["stride"]),
                                                act=_act(layer, where))


def _mb_block(block: Mapping[str, Any], index: int) -> BlockSpec | None:
    """One ``MobileInvertedResidualBlock``; ``None`` for a skipped (ZeroLayer) block."""
    where = f"block {index}"
    conv = block.get("mobile_inverted_conv") or {}
    shortcut = block.get("shortcut")
    kind = conv.get("name")
    if kind == "ZeroLayer":
        if shortcut is None:
            # A zero block without a shortcut would output zeros: not a network we can build.
            raise MCUNetConfigError(f"{where}: ZeroLayer without a shortcut is not supported")
        return None
    if kind != "MBInvertedConvLayer":
        raise MCUNetConfigError(f"{where}: unsupported block layer {kind!r}")
    if conv.get("use_se"):
        raise MCUNetConfigError(f"{where}: squeeze-and-excite (use_se) is not supported")
    if shortcut is not None and shortcut.get("name") != "IdentityLayer":
        raise MCUNetConfigError(f"{where}: shortcut {shortcut.get('name')!r} is not supported "
                                "(only IdentityLayer)")
    in_ch = int(conv["in_channels"])
    expand = conv["expand_ratio"]
    mid = conv.get("mid_channels")
    if expand == 1:
        mid = in_ch
    elif mid is None:
        mid = round(in_ch * expand)
    kernel = int(conv["kernel_size"])
    if kernel % 2 == 0:
        raise MCUNetConfigError(f"{where}: even kernel size {kernel} is not supported")
    try:
        return BlockSpec(in_channels=in_ch, out_channels=int(conv["out_channels"]),
                         mid_channels=int(mid), kernel_size=kernel,
                         stride=int(conv["stride"]), expand_ratio=expand,
                         residual=shortcut is not None, act=_act(conv, where))
    except ValueError as err:
        raise MCUNetConfigError(f"{where}: {err}") from None


def network_from_mcunet_dict(config: Mapping[str, Any], name: str = "") -> NetworkSpec:
    """A parsed MCUNet/ProxylessNAS JSON object -> :class:`NetworkSpec`."""
    for key in ("first_conv", "blocks", "classifier", "resolution"):
        if key not in config:
            raise MCUNetConfigError(f"{name or 'config'}: missing key {key!r}")
    in_channels, first_conv = _conv_layer(config["first_conv"], "first_conv")
    blocks = [b for i, raw in enumerate(config["blocks"])
              if (b := _mb_block(raw, i)) is not None]
    fmix_raw = config.get("feature_mix_layer")
    feature_mix = None
    if fmix_raw is not None:
        _, feature_mix = _conv_layer(fmix_raw, "feature_mix_layer")
        if feature_mix.kernel != 1 or feature_mix.stride != 1:
            raise MCUNetConfigError("feature_mix_layer: only a 1x1 stride-1 conv is supported")
    classifier = config["classifier"]
    if classifier.get("name") != "LinearLayer" or not classifier.get("bias", True):
        raise MCUNetConfigError("classifier: only a LinearLayer with bias is supported")
    if classifier.get("use_bn") or classifier.get("act_func") is not None:
        raise MCUNetConfigError("classifier: BatchNorm/activation after the classifier is "
                                "not supported")
    try:
        spec = NetworkSpec(resolution=int(config["resolution"]), in_channels=in_channels,
                           first_conv=first_conv, blocks=tuple(blocks),
                           feature_mix=feature_mix,
                           num_classes=int(classifier["out_features"]), name=name)
    except ValueError as err:
        raise MCUNetConfigError(f"{name or 'config'}: {err}") from None
    if int(classifier["in_features"]) != spec.feature_channels:
        raise MCUNetConfigError(
            f"{name or 'config'}: classifier takes {classifier['in_features']} features but "
            f"the network gives {spec.feature_channels}")
    return spec


def is_mcunet_config(config: Mapping[str, Any]) -> bool:
    return {"first_conv", "blocks", "classifier"} <= set(config)


def load_mcunet_config(path: str | os.PathLike[str]) -> NetworkSpec:
    """Read one of MCUNet's released JSON files (``../shared/mcunet_configs/*.json``)."""
    path = Path(path)
    with path.open() as f:
        config = json.load(f)
    name = path.stem.removesuffix("_imagenet")
    return network_from_mcunet_dict(config, name=name)


# --------------------------------------------------------------------------- any format
class ConfigFormat(enum.Enum):
    MCUNET = "mcunet"          # MCUNet / ProxylessNAS released JSON
    ARCH_CONFIG = "arch"       # ArchConfig.to_json()
    NETWORK_SPEC = "network"   # NetworkSpec.to_json()


def detect_format(config: Mapping[str, Any]) -> ConfigFormat:
    if is_arch_config(config):
        return ConfigFormat.ARCH_CONFIG
    if is_mcunet_config(config):
        return ConfigFormat.MCUNET
    if is_network_spec_config(config):
        return ConfigFormat.NETWORK_SPEC
    raise MCUNetConfigError(
        "unrecognised configuration: expected an MCUNet JSON (first_conv/blocks/classifier), "
        "an ArchConfig JSON (kernel_sizes/expand_ratios/depths/...) or a NetworkSpec JSON; "
        f"got keys {sorted(config)}")


_SPEC_READERS = {
    ConfigFormat.MCUNET: network_from_mcunet_dict,
    ConfigFormat.ARCH_CONFIG: lambda cfg, name: ArchConfig.from_config(cfg).to_network(name),
    ConfigFormat.NETWORK_SPEC: lambda cfg, name: NetworkSpec.from_config(cfg),
}


@dataclass(frozen=True)
class LoadedConfig:
    spec: NetworkSpec
    format: ConfigFormat
    arch: ArchConfig | None  # set when the network is a point of MCUNet's search space


def load_config(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read any of the three formats; also recognise MCUNet search-space points."""
    path = Path(path)
    with path.open() as f:
        config = json.load(f)
    fmt = detect_format(config)
    name = path.stem.removesuffix("_imagenet")
    spec = _SPEC_READERS[fmt](config, name)
    arch = (ArchConfig.from_config(config) if fmt is ConfigFormat.ARCH_CONFIG
            else arch_config_from_network(spec))
    return LoadedConfig(spec=spec, format=fmt, arch=arch)


# --------------------------------------------------------------------------- recognition
def _candidate_width_mults(stem_channels: int, template: SearchSpace) -> list[float]:
    """Width multipliers (multiples of 0.05 up to 4) whose rounded stem width matches."""
    return [w for w in (round(0.05 * i, 2) for i in range(1, 81))
            if make_divisible(template.stem_width * w) == stem_channels]


def arch_config_from_network(spec: NetworkSpec,
                             template: SearchSpace | None = None) -> ArchConfig | None:
    """The :class:`ArchConfig` whose :meth:`~ArchConfig.to_network` is exactly ``spec``.

    Tries width multipliers on a 0.05 grid (the released MCUNets use 0.5, 0.6, 0.9, 1.0,
    1.5) with the backbone of ``template`` (MCUNet's by default). Unused block slots get the
    smallest choices. Returns ``None`` when the network is not a point of such a space.
    """
    template = template or SearchSpace(width_mult=1.0, resolution=spec.resolution)
    if spec.feature_mix is not None or not spec.blocks:
        return None
    for width in _candidate_width_mults(spec.first_conv.out_channels, template):
        space = SearchSpace.from_config({**template.get_config(), "width_mult": width,
                                         "resolution": spec.resolution,
                                         "num_classes": spec.num_classes,
                                         "in_channels": spec.in_channels})
        arch = _fit_genes(spec, space)
        if arch is not None and arch.to_network() == spec:
            return arch
    return None


def _fit_genes(spec: NetworkSpec, space: SearchSpace) -> ArchConfig | None:
    widths = space.stage_channels()
    kernels = [min(space.kernel_choices)] * space.num_block_slots
    expands = [min(space.expand_choices)] * space.num_block_slots
    depths: list[int] = []
    searchable = list(spec.blocks[1:])  # block 0 is the fixed expand-1 block
    pos = 0
    for stage, width in enumerate(widths):
        offset = space.stage_slot_offsets()[stage]
        depth = 0
        # A stage's blocks all output its width; its first block carries the stride.
        while (pos < len(searchable) and searchable[pos].out_channels == width
               and depth < space.max_depths[stage]
               and (depth == 0 or searchable[pos].stride == 1)):
            block = searchable[pos]
            if not float(block.expand_ratio).is_integer():
                return None
            kernels[offset + depth] = block.kernel_size
            expands[offset + depth] = int(block.expand_ratio)
            depth += 1
            pos += 1
        if depth == 0:
            return None
        depths.append(depth)
    if pos != len(searchable):
        return None
    try:
        return ArchConfig(resolution=space.resolution, width_mult=space.width_mult,
                          kernel_sizes=tuple(kernels), expand_ratios=tuple(expands),
                          depths=tuple(depths), num_classes=space.num_classes, space=space)
    except ValueError:
        return None


# --------------------------------------------------------------------------- published nets
@dataclass(frozen=True)
class PublishedNetwork:
    """A released network: its canonical name, its model-zoo file and its published figures.

    ``macs``/``params`` in units (not millions); ``peak_kib`` at int8. ``None`` where the
    issue gives no published figure. ``resolution`` overrides the file's when set.
    """

    name: str
    file: str
    macs: float | None = None
    params: float | None = None
    peak_kib: float | None = None
    resolution: int | None = None
    aliases: tuple[str, ...] = ()


PUBLISHED: tuple[PublishedNetwork, ...] = (
    PublishedNetwork("mcunet-in0", "mcunet-10fps_imagenet.json", 6.4e6, 0.75e6, 45,
                     aliases=("mcunet-10fps",)),
    PublishedNetwork("mcunet-in1", "mcunet-5fps_imagenet.json", 12.8e6, 0.64e6, 90,
                     aliases=("mcunet-5fps",)),
    PublishedNetwork("mcunet-in2", "mcunet-256kb-1mb_imagenet.json", 67.3e6, 0.73e6, 325,
                     aliases=("mcunet-256kb-1mb",)),
    PublishedNetwork("mcunet-in3", "mcunet-320kb-1mb_imagenet.json", 81.8e6, 0.74e6, 333,
                     aliases=("mcunet-320kb-1mb",)),
    PublishedNetwork("mcunet-in4", "mcunet-512kb-2mb_imagenet.json", 125.9e6, 1.73e6, 413,
                     aliases=("mcunet-512kb-2mb",)),
    PublishedNetwork("mbv2-w0.35", "mbv2-w0.35-r144_imagenet.json", 23.5e6, None, 303,
                     aliases=("mbv2-w0.35-r144",)),
    PublishedNetwork("proxyless-w0.3", "proxyless-w0.3-r176_imagenet.json", 38.3e6, None,
                     242, aliases=("proxyless-w0.3-r176",)),
    # Not a published figure: MobileNetV2 w0.3 at a small resolution, as light test material.
    PublishedNetwork("mbv2-w0.3-r64", "mbv2-w0.3-r80_imagenet.json", resolution=64),
)


def published_network(name: str) -> PublishedNetwork:
    for entry in PUBLISHED:
        if name == entry.name or name in entry.aliases:
            return entry
    known = ", ".join(e.name for e in PUBLISHED)
    raise KeyError(f"unknown published network {name!r} (known: {known})")


def default_configs_dir() -> Path:
    """``$MCUNET_CONFIGS_DIR`` or ``<repo>/../shared/mcunet_configs``."""
    env = os.environ.get(CONFIGS_DIR_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "mcunet_configs"


# The released MCUNets are points of MCUNet's search space; their genes (one digit per block
# slot; unused slots hold the smallest choice) let them be built without the model-zoo files.
# tests/test_arch.py checks that each equals its released file layer for layer.
_BUILTIN_MCUNET_GENES: dict[str, tuple[float, int, str, str, str]] = {
    # name: (width_mult, resolution, kernel sizes, expand ratios, stage depths)
    "mcunet-in0": (0.6, 48, "533375537533353335333", "434354535433545364336", "332321"),
    "mcunet-in1": (0.5, 96, "333373333733533375533", "433335335433434354436", "222331"),
    "mcunet-in2": (0.5, 160, "573537537533353355535", "365556634533554364345", "432341"),
    "mcunet-in3": (0.5, 176, "737555533753573337337", "355455535643555365435", "433331"),
    "mcunet-in4": (1.0, 160, "735373737373355377535", "354354433333433343334", "333331"),
}

# MobileNetV2's body (expand ratio t, channels c, repeats n, first stride s); the MCUNet zoo
# scales the final 1x1 (1280) with the width too.
_MBV2_TABLE = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1))
_BUILTIN_MBV2: dict[str, tuple[float, int]] = {"mbv2-w0.35": (0.35, 144),
                                               "mbv2-w0.3-r64": (0.3, 64)}


def builtin_arch_config(name: str) -> ArchConfig | None:
    """The :class:`ArchConfig` of a released MCUNet (``mcunet-in0``..``in4``), else None."""
    genes = _BUILTIN_MCUNET_GENES.get(published_network(name).name)
    if genes is None:
        return None
    width, resolution, kernels, expands, depths = genes
    return ArchConfig(resolution=resolution, width_mult=width,
                      kernel_sizes=tuple(int(c) for c in kernels),
                      expand_ratios=tuple(int(c) for c in expands),
                      depths=tuple(int(c) for c in depths))


def mobilenet_v2_spec(width_mult: float, resolution: int, num_classes: int = 1000,
                      name: str = "") -> NetworkSpec:
    """MobileNetV2 at a width multiplier, with channels rounded by :func:`make_divisible`."""
    act = Activation.RELU6
    stem = make_divisible(32 * width_mult)
    blocks, channels = [], stem
    for expand, base, repeats, first_stride in _MBV2_TABLE:
        out = make_divisible(base * width_mult)
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            blocks.append(BlockSpec(
                in_channels=channels, out_channels=out,
                mid_channels=channels if expand == 1 else round(channels * expand),
                kernel_size=3, stride=stride, expand_ratio=expand,
                residual=stride == 1 and channels == out, act=act))
            channels = out
    return NetworkSpec(resolution=resolution, in_channels=3,
                       first_conv=ConvSpec(out_channels=stem, kernel=3, stride=2, act=act),
                       blocks=tuple(blocks),
                       feature_mix=ConvSpec(out_channels=make_divisible(1280 * width_mult)),
                       num_classes=num_classes, name=name)


def builtin_published_spec(name: str) -> NetworkSpec | None:
    """A published network built from the tables above (no file needed), else None."""
    canonical = published_network(name).name
    arch = builtin_arch_config(canonical)
    if arch is not None:
        return arch.to_network(name=canonical)
    if canonical in _BUILTIN_MBV2:
        width, resolution = _BUILTIN_MBV2[canonical]
        return mobilenet_v2_spec(width, resolution, name=canonical)
    return None


def published_spec(name: str, configs_dir: str | os.PathLike[str] | None = None) -> NetworkSpec:
    """A published network: built in when possible, else read from its model-zoo file."""
    spec = builtin_published_spec(name)
    return spec if spec is not None else load_published(name, configs_dir)


def load_published(name: str, configs_dir: str | os.PathLike[str] | None = None) -> NetworkSpec:
    """The :class:`NetworkSpec` of a published network, read from its model-zoo file."""
    entry = published_network(name)
    path = Path(configs_dir) if configs_dir is not None else default_configs_dir()
    file = path / entry.file
    if not file.is_file():
        raise FileNotFoundError(
            f"{entry.name}: configuration {file} not found (set ${CONFIGS_DIR_ENV} to the "
            "folder holding MCUNet's released JSON files)")
    spec = load_mcunet_config(file)
    if entry.resolution is not None:
        spec = spec.with_resolution(entry.resolution)
    from dataclasses import replace

    return replace(spec, name=entry.name)
