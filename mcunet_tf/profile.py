"""Analytic profile of a network: MACs, parameters and peak activation, as MCUNet counts them.

The convention is MCUNet's model-zoo counting (``../shared/MCUNET_FIGURES.md``), which
reproduces every published figure from the released configurations:

MACs
    For every convolution, output elements x (C_in / groups) x k^2; plus the classifier,
    in_features x out_features. BatchNorm, activations, residual adds and the global pooling
    are not counted.

Parameters
    Convolution weights (no bias), plus 2 x C for each BatchNorm (scale and offset; the
    running statistics are buffers, not parameters), plus the classifier's weights and bias.
    This equals the *trainable* parameter count of the Keras model.

Peak activation (bytes)
    Activations stored at ``activation_bits`` (8: one byte per element). The peak is the
    maximum over layers of the bytes live while that layer runs:

    * first conv, feature-mix conv, classifier: input + output;
    * in a block: the expansion conv input + output; the depthwise conv input + output, plus
      the block input when the block has an identity shortcut (it must be held until the
      add); the projection conv input + output;
    * the pooling is not counted.

    This is MCUNet's analytic figure, not an arena size: no in-place depthwise, no scratch,
    no alignment.

Spatial sizes: every convolution pads k//2 on each side, so its output is ceil(H / stride).
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mcunet_tf.network import BlockSpec, LayerRole, NetworkSpec, conv_layer_name, conv_output_size


class LayerKind(str, enum.Enum):
    CONV = "conv"
    DEPTHWISE = "depthwise"
    DENSE = "dense"


@dataclass(frozen=True)
class LayerProfile:
    """One weight layer. Shapes are (H, W, C); ``live_elements`` is what the peak counts."""

    name: str
    kind: LayerKind
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]
    kernel: int
    stride: int
    macs: int
    params: int
    live_elements: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        out["input_shape"] = list(self.input_shape)
        out["output_shape"] = list(self.output_shape)
        return out


@dataclass(frozen=True)
class Profile:
    macs: int
    params: int
    peak_activation_bytes: int
    per_layer: list[LayerProfile] = field(default_factory=list)
    activation_bits: int = 8

    @property
    def peak_layer(self) -> str:
        """Name of the (first) layer where the activation peak occurs."""
        peak = max(self.per_layer, key=lambda layer: layer.live_elements)
        return peak.name

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "macs": self.macs,
            "params": self.params,
            "peak_activation_bytes": self.peak_activation_bytes,
            "peak_activation_kib": self.peak_activation_bytes / 1024,
            "peak_layer": self.peak_layer,
            "activation_bits": self.activation_bits,
        }
        if per_layer:
            out["per_layer"] = [layer.to_dict() for layer in self.per_layer]
        return out


def _elements(shape: tuple[int, int, int]) -> int:
    return shape[0] * shape[1] * shape[2]


def _conv(name: str, in_shape: tuple[int, int, int], out_channels: int, kernel: int,
          stride: int, depthwise: bool = False, held: int = 0) -> LayerProfile:
    h, w, c_in = in_shape
    out_shape = (conv_output_size(h, stride), conv_output_size(w, stride), out_channels)
    c_per_group = 1 if depthwise else c_in
    weights = out_channels * c_per_group * kernel * kernel
    return LayerProfile(
        name=name,
        kind=LayerKind.DEPTHWISE if depthwise else LayerKind.CONV,
        input_shape=in_shape,
        output_shape=out_shape,
        kernel=kernel,
        stride=stride,
        macs=_elements(out_shape) * c_per_group * kernel * kernel,
        params=weights + 2 * out_channels,  # + BatchNorm scale and offset
        live_elements=_elements(in_shape) + _elements(out_shape) + held,
    )


def _block_layers(index: int, block: BlockSpec,
                  in_shape: tuple[int, int, int]) -> list[LayerProfile]:
    layers = []
    shape = in_shape
    if block.has_expansion:
        layers.append(_conv(conv_layer_name(LayerRole.EXPAND, index), shape,
                            block.mid_channels, 1, 1))
        shape = layers[-1].output_shape
    # The residual input stays alive across the depthwise conv (MCUNet's rule); across the
    # projection it is not counted (the add can run in place on the projection output).
    held = _elements(in_shape) if block.residual else 0
    layers.append(_conv(conv_layer_name(LayerRole.DEPTHWISE, index), shape,
                        block.mid_channels, block.kernel_size, block.stride,
                        depthwise=True, held=held))
    shape = layers[-1].output_shape
    layers.append(_conv(conv_layer_name(LayerRole.PROJECT, index), shape,
                        block.out_channels, 1, 1))
    return layers


def profile(spec: NetworkSpec, activation_bits: int = 8) -> Profile:
    """MACs, parameters and peak activation of ``spec`` (see the module docstring)."""
    if activation_bits <= 0:
        raise ValueError(f"activation_bits must be positive, got {activation_bits}")
    layers: list[LayerProfile] = []
    shape = (spec.resolution, spec.resolution, spec.in_channels)
    first = spec.first_conv
    layers.append(_conv(conv_layer_name(LayerRole.FIRST_CONV), shape, first.out_channels,
                        first.kernel, first.stride))
    shape = layers[-1].output_shape
    for index, block in enumerate(spec.blocks):
        block_layers = _block_layers(index, block, shape)
        layers.extend(block_layers)
        shape = block_layers[-1].output_shape
    if spec.feature_mix is not None:
        fmix = spec.feature_mix
        layers.append(_conv(conv_layer_name(LayerRole.FEATURE_MIX), shape, fmix.out_channels,
                            fmix.kernel, fmix.stride))
        shape = layers[-1].output_shape
    features = shape[2]
    layers.append(LayerProfile(
        name=conv_layer_name(LayerRole.CLASSIFIER),
        kind=LayerKind.DENSE,
        input_shape=(1, 1, features),
        output_shape=(1, 1, spec.num_classes),
        kernel=1,
        stride=1,
        macs=features * spec.num_classes,
        params=features * spec.num_classes + spec.num_classes,
        live_elements=features + spec.num_classes,
    ))
    peak_elements = max(layer.live_elements for layer in layers)
    return Profile(
        macs=sum(layer.macs for layer in layers),
        params=sum(layer.params for layer in layers),
        peak_activation_bytes=math.ceil(peak_elements * activation_bits / 8),
        per_layer=layers,
        activation_bits=activation_bits,
    )
