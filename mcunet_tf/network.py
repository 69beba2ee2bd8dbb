"""An explicit, layer-level description of an MCUNet-style network.

:class:`NetworkSpec` is the common currency of ``mcunet_tf``: the search space
(:class:`mcunet_tf.arch.ArchConfig`) and the importer of MCUNet's released configurations
both produce one, and the analytic profile and the Keras builder both consume one. Channel
counts are explicit here (no rounding happens after this point), so whatever reads a spec
sees exactly the same network.

The network is::

    input (R x R x in_channels)
      -> first_conv (k x k conv, BN, activation)
      -> blocks (MBConv: [1x1 expand, BN, act] -> k x k depthwise, BN, act -> 1x1 project, BN
                 [+ identity shortcut])
      -> feature_mix (optional 1x1 conv, BN, act)
      -> global average pool -> classifier (dense with bias)

Layer names (:func:`conv_layer_name`) are shared by the profile and the Keras builder so
that per-layer figures and weights can be matched by name. No TensorFlow import here.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping


class Activation(str, enum.Enum):
    """Activation after a BatchNorm. The value is the spelling used in JSON."""

    RELU6 = "relu6"
    RELU = "relu"
    NONE = "none"

    @classmethod
    def parse(cls, value: "str | None | Activation") -> "Activation":
        """Parse a JSON spelling; ``None``/``null`` means no activation."""
        if isinstance(value, Activation):
            return value
        if value is None:
            return cls.NONE
        try:
            return cls(value)
        except ValueError:
            supported = ", ".join(a.value for a in cls)
            raise ValueError(
                f"unsupported activation {value!r} (supported: {supported})"
            ) from None


class LayerRole(str, enum.Enum):
    """What a convolution is for inside the network; part of its layer name."""

    FIRST_CONV = "stem"
    EXPAND = "expand"
    DEPTHWISE = "dw"
    PROJECT = "project"
    FEATURE_MIX = "feature_mix"
    CLASSIFIER = "classifier"


def conv_layer_name(role: LayerRole, block_index: int | None = None) -> str:
    """The deterministic name of a weight layer, e.g. ``block3_dw`` or ``stem``.

    Keras companions add suffixes: ``block3_dw_bn``, ``block3_dw_act``, ``block3_add``.
    """
    if role in (LayerRole.EXPAND, LayerRole.DEPTHWISE, LayerRole.PROJECT):
        if block_index is None:
            raise ValueError(f"layer role {role.value} needs a block index")
        return f"block{block_index}_{role.value}"
    return role.value


def conv_output_size(size: int, stride: int) -> int:
    """Spatial output size of a 'same'-padded conv: ceil(size / stride)."""
    return -(-size // stride)


@dataclass(frozen=True)
class ConvSpec:
    """A plain convolution followed by BatchNorm and an activation (no bias)."""

    out_channels: int
    kernel: int = 1
    stride: int = 1
    act: Activation = Activation.RELU6

    def __post_init__(self) -> None:
        object.__setattr__(self, "act", Activation.parse(self.act))
        _check_positive(self, ("out_channels", "kernel", "stride"))

    def get_config(self) -> dict[str, Any]:
        return {
            "out_channels": self.out_channels,
            "kernel": self.kernel,
            "stride": self.stride,
            "act": self.act.value,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "ConvSpec":
        return cls(**dict(config))


@dataclass(frozen=True)
class BlockSpec:
    """One MBConv block (inverted residual).

    ``expand_ratio == 1`` means there is no expansion convolution; the depthwise conv then runs
    on the block input and ``mid_channels`` must equal ``in_channels``. ``residual`` is an
    identity shortcut (only legal at stride 1 with equal channel counts).
    """

    in_channels: int
    out_channels: int
    mid_channels: int
    kernel_size: int
    stride: int
    expand_ratio: float
    residual: bool
    act: Activation = Activation.RELU6

    def __post_init__(self) -> None:
        object.__setattr__(self, "act", Activation.parse(self.act))
        _check_positive(
            self, ("in_channels", "out_channels", "mid_channels", "kernel_size", "stride")
        )
        if self.expand_ratio <= 0:
            raise ValueError(f"BlockSpec: expand_ratio must be > 0, got {self.expand_ratio}")
        if not self.has_expansion and self.mid_channels != self.in_channels:
            raise ValueError(
                "BlockSpec: a block without expansion (expand_ratio 1) runs the depthwise conv "
                f"on its input, so mid_channels ({self.mid_channels}) must equal in_channels "
                f"({self.in_channels})"
            )
        if self.residual and (self.stride != 1 or self.in_channels != self.out_channels):
            raise ValueError(
                "BlockSpec: an identity shortcut needs stride 1 and in_channels == "
                f"out_channels (got stride {self.stride}, {self.in_channels} -> "
                f"{self.out_channels})"
            )

    @property
    def has_expansion(self) -> bool:
        return self.expand_ratio != 1

    def get_config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "mid_channels": self.mid_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "expand_ratio": self.expand_ratio,
            "residual": self.residual,
            "act": self.act.value,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "BlockSpec":
        return cls(**dict(config))


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network, layer by layer. See the module docstring for its shape."""

    resolution: int
    in_channels: int
    first_conv: ConvSpec
    blocks: tuple[BlockSpec, ...]
    feature_mix: ConvSpec | None
    num_classes: int
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        # Accept any sequence of blocks but store a tuple so the spec stays hashable/frozen.
        object.__setattr__(self, "blocks", tuple(self.blocks))
        _check_positive(self, ("resolution", "in_channels", "num_classes"))
        channels = self.first_conv.out_channels
        for index, block in enumerate(self.blocks):
            if block.in_channels != channels:
                raise ValueError(
                    f"NetworkSpec {self.name!r}: block {index} takes {block.in_channels} "
                    f"channels but the previous layer gives {channels}"
                )
            channels = block.out_channels

    @property
    def feature_channels(self) -> int:
        """Channels entering the classifier (after the optional feature-mix layer)."""
        if self.feature_mix is not None:
            return self.feature_mix.out_channels
        if self.blocks:
            return self.blocks[-1].out_channels
        return self.first_conv.out_channels

    @property
    def last_block_channels(self) -> int:
        return self.blocks[-1].out_channels if self.blocks else self.first_conv.out_channels

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "resolution": self.resolution,
            "in_channels": self.in_channels,
            "first_conv": self.first_conv.get_config(),
            "blocks": [b.get_config() for b in self.blocks],
            "feature_mix": None if self.feature_mix is None else self.feature_mix.get_config(),
            "num_classes": self.num_classes,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "NetworkSpec":
        fmix = config.get("feature_mix")
        return cls(
            resolution=int(config["resolution"]),
            in_channels=int(config["in_channels"]),
            first_conv=ConvSpec.from_config(config["first_conv"]),
            blocks=tuple(BlockSpec.from_config(b) for b in config["blocks"]),
            feature_mix=None if fmix is None else ConvSpec.from_config(fmix),
            num_classes=int(config["num_classes"]),
            name=str(config.get("name", "")),
        )

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.get_config(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "NetworkSpec":
        return cls.from_config(json.loads(text))

    def with_resolution(self, resolution: int) -> "NetworkSpec":
        """The same layers at another input resolution (all layers are size-agnostic)."""
        from dataclasses import replace

        return replace(self, resolution=resolution)


def is_network_spec_config(config: Mapping[str, Any]) -> bool:
    """Whether a parsed JSON object looks like :meth:`NetworkSpec.get_config` output."""
    return {"first_conv", "blocks", "num_classes", "in_channels"} <= set(config)


def _check_positive(obj: object, names: Iterable[str]) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(
                f"{type(obj).__name__}: {name} must be a positive int, got {value!r}"
            )
