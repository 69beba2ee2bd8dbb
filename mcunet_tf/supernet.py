"""The weight-sharing supernet of an MCUNet :class:`SearchSpace`, in tf_keras.

One model holds the *largest* network of the space (kernel 7, expand 6, depth 4 in every
slot) and runs any :class:`ArchConfig` of it:

* **elastic kernel** -- a smaller depthwise kernel is the centre of the larger one, optionally
  passed through a learned per-layer kernel-transform matrix (as Once-for-All does: 7x7 ->
  centre 5x5 -> ``T_5`` -> centre 3x3 -> ``T_3``; the matrices start as the identity and act on
  the flattened k*k window, shared by all channels of the layer);
* **elastic expand ratio** -- a block uses the first ``mid`` channels of its expand conv, its
  depthwise conv and their BatchNorms (and the first ``mid`` input channels of its
  projection); :meth:`Supernet.reorganize_channels` sorts hidden channels by importance (L1
  norm of their projection weights) so the most important ones are shared by everyone;
* **elastic depth** -- a stage runs its first ``d`` blocks (the skipped ones are identity
  blocks in the largest network, so skipping them keeps every shape).

Efficiency in graph mode: the active configuration enters the model as *tensors*
(:class:`ArchTensors`: per-slot kernel index and hidden width, per-stage depth), not as
Python values. Channel counts are sliced with tensor bounds (the ops see dynamic channel
dimensions), the kernel size is chosen with ``tf.switch_case`` and optional blocks run under
``tf.cond``. So one ``tf.function`` trace serves every sub-network, and the compute of a step
is that of the sub-network that runs, not of the largest one.

BatchNorm: statistics mixed over many sub-networks mean nothing for any one of them, so
:class:`ElasticBatchNorm` can be *recalibrated* for the active sub-network (calibration mode:
normalise with batch statistics and store the exact running average of the batch means and
variances into the first ``mid`` entries of the moving statistics). See
:func:`mcunet_tf.subnet.recalibrate_bn`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from mcunet_tf.arch import ArchConfig, SearchSpace, make_divisible
from mcunet_tf.keras_builder import BN_EPSILON
from mcunet_tf.network import NetworkSpec
from mcunet_tf.tf_env import keras, tf


@dataclass(frozen=True)
class SupernetOptions:
    """Construction options of a :class:`Supernet`.

    ``bn_epsilon`` must match the Keras builder's for exported models to compute the same
    function. There is no BN momentum: training never updates the moving statistics (see
    :class:`BNMode`), recalibration sets them.
    """

    kernel_transform: bool = True
    bn_epsilon: float = BN_EPSILON

    def get_config(self) -> dict[str, Any]:
        return {"kernel_transform": self.kernel_transform, "bn_epsilon": self.bn_epsilon}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SupernetOptions":
        return cls(**dict(config))


class BNMode(enum.Enum):
    """How an :class:`ElasticBatchNorm` normalises and what it does to its statistics."""

    INFERENCE = "inference"   # moving statistics, no update
    # Batch statistics, no update: statistics mixed over many sub-networks fit none of them
    # (they are recalibrated per sub-network), and leaving the stateful updates out keeps
    # the traced training graph smaller.
    TRAIN = "train"
    CALIBRATE = "calibrate"   # batch statistics, exact running average over batches


# ------------------------------------------------------------------------ elastic layers
class ElasticBatchNorm(keras.layers.Layer):
    """BatchNorm over the first ``C`` channels of its parameters, ``C`` = input channels.

    The moving statistics are on-read variables averaged across replicas, so under a
    ``tf.distribute`` strategy each replica updates its own copy and reads see the mean.
    """

    def __init__(self, channels: int, epsilon: float = BN_EPSILON, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.epsilon = float(epsilon)

    def build(self, input_shape: Any) -> None:
        c = (self.channels,)
        self.gamma = self.add_weight(name="gamma", shape=c, initializer="ones")
        self.beta = self.add_weight(name="beta", shape=c, initializer="zeros")
        stat = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                    aggregation=tf.VariableAggregation.MEAN)
        self.moving_mean = self.add_weight(name="moving_mean", shape=c,
                                           initializer="zeros", **stat)
        self.moving_variance = self.add_weight(name="moving_variance", shape=c,
                                               initializer="ones", **stat)
        super().build(input_shape)

    def call(self, x: Any, mode: BNMode = BNMode.INFERENCE,
             calibration_step: Any = None) -> Any:
        c = tf.shape(x)[-1]
        gamma, beta = self.gamma[:c], self.beta[:c]
        if mode is BNMode.INFERENCE:
            mean, var = self.moving_mean[:c], self.moving_variance[:c]
        else:
            mean, var = tf.nn.moments(x, axes=[0, 1, 2])
        if mode is BNMode.CALIBRATE:
            # Step n of calibration keeps n/(n+1) of the running value: after N batches the
            # statistics are the plain mean over the N batches (step 0 overwrites).
            step = tf.cast(calibration_step, tf.float32)
            keep = step / (step + 1.0)
            self._update(self.moving_mean, tf.stop_gradient(mean), keep, c)
            self._update(self.moving_variance, tf.stop_gradient(var), keep, c)
        return tf.nn.batch_normalization(x, mean, var, beta, gamma, self.epsilon)

    @staticmethod
    def _update(variable: Any, value: Any, keep: Any, c: Any) -> None:
        head = variable[:c] * keep + value * (1.0 - keep)
        variable.assign(tf.concat([head, variable[c:]], axis=0))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "channels": self.channels, "epsilon": self.epsilon}


class ElasticPointwiseConv(keras.layers.Layer):
    """1x1 convolution over the first input channels, producing the first ``out`` channels."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)

    def build(self, input_shape: Any) -> None:
        self.kernel = self.add_weight(
            name="kernel", shape=(1, 1, self.in_channels, self.out_channels),
            initializer=keras.initializers.HeNormal())
        super().build(input_shape)

    def call(self, x: Any, out_channels: Any = None) -> Any:
        kernel = self.kernel[:, :, :tf.shape(x)[-1], :]
        if out_channels is not None:
            kernel = kernel[:, :, :, :out_channels]
        return tf.nn.conv2d(x, kernel, strides=1, padding="SAME")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "in_channels": self.in_channels,
                "out_channels": self.out_channels}


class ElasticDepthwiseConv(keras.layers.Layer):
    """Depthwise convolution whose kernel size is one of ``kernel_choices``.

    'same' padding makes the centre crop exact: TensorFlow pads (k-1)//2 + extra before, and
    the difference in padding between kernel sizes k and K is exactly (K-k)/2 on each side,
    the offset of the centre crop -- so a k x k window sees the same pixels as the centre of
    the K x K window at any stride and input size.
    """

    def __init__(self, channels: int, kernel_choices: Sequence[int], stride: int,
                 kernel_transform: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.channels = int(channels)
        self.kernel_choices = tuple(sorted(int(k) for k in kernel_choices))
        self.stride = int(stride)
        self.kernel_transform = bool(kernel_transform)

    @property
    def max_kernel(self) -> int:
        return self.kernel_choices[-1]

    def build(self, input_shape: Any) -> None:
        k = self.max_kernel
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel", shape=(k, k, self.channels, 1),
            initializer=keras.initializers.HeNormal())
        # String keys: checkpoints can only track dicts keyed by strings.
        self.transforms: dict[str, Any] = {}
        if self.kernel_transform:
            for small in self.kernel_choices[:-1]:
                self.transforms[str(small)] = self.add_weight(
                    name=f"transform_{small}x{small}", shape=(small * small, small * small),
                    initializer=keras.initializers.Identity())
        super().build(input_shape)

    def kernel_for(self, kernel_size: int) -> Any:
        """The effective ``[k, k, channels, 1]`` kernel of a (Python int) kernel size."""
        if kernel_size not in self.kernel_choices:
            raise ValueError(f"{self.name}: kernel size {kernel_size} not in "
                             f"{self.kernel_choices}")
        kernel = self.depthwise_kernel
        size = self.max_kernel
        for small in reversed(self.kernel_choices[:-1]):
            if small < kernel_size:
                break
            start = (size - small) // 2
            kernel = kernel[start:start + small, start:start + small]
            if self.kernel_transform:
                # [k, k, C, 1] -> [C, k*k] @ T -> back: one k*k linear map for all channels.
                flat = tf.reshape(tf.transpose(kernel, [2, 3, 0, 1]), [-1, small * small])
                flat = tf.matmul(flat, self.transforms[str(small)])
                kernel = tf.transpose(tf.reshape(flat, [self.channels, 1, small, small]),
                                      [2, 3, 0, 1])
            size = small
        return kernel

    def call(self, x: Any, kernel_index: Any = None) -> Any:
        """``kernel_index`` indexes ``kernel_choices`` (a scalar tensor or int; None: largest)."""
        if kernel_index is None or len(self.kernel_choices) == 1:
            kernel = self.kernel_for(self.max_kernel)
        elif isinstance(kernel_index, (int, np.integer)):
            kernel = self.kernel_for(self.kernel_choices[int(kernel_index)])
        else:
            kernel = tf.switch_case(
                kernel_index,
                [lambda k=k: self.kernel_for(k) for k in self.kernel_choices])
        kernel = kernel[:, :, :tf.shape(x)[-1], :]
        return tf.nn.depthwise_conv2d(x, kernel, [1, self.stride, self.stride, 1], "SAME")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "channels": self.channels,
                "kernel_choices": list(self.kernel_choices), "stride": self.stride,
                "kernel_transform": self.kernel_transform}


class ElasticMBConv(keras.layers.Layer):
    """An MBConv block at its largest size; runs with any kernel index and hidden width."""

    def __init__(self, in_channels: int, out_channels: int, max_mid: int,
                 kernel_choices: Sequence[int], stride: int, has_expansion: bool,
                 residual: bool, options: SupernetOptions, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.max_mid, self.stride = int(max_mid), int(stride)
        self.has_expansion, self.residual = bool(has_expansion), bool(residual)
        bn = dict(epsilon=options.bn_epsilon)
        if self.has_expansion:
            self.expand = ElasticPointwiseConv(in_channels, max_mid, name="expand")
            self.expand_bn = ElasticBatchNorm(max_mid, name="expand_bn", **bn)
        self.dw = ElasticDepthwiseConv(max_mid, kernel_choices, stride,
                                       options.kernel_transform, name="dw")
        self.dw_bn = ElasticBatchNorm(max_mid, name="dw_bn", **bn)
        self.project = ElasticPointwiseConv(max_mid, out_channels, name="project")
        self.project_bn = ElasticBatchNorm(out_channels, name="project_bn", **bn)

    def call(self, x: Any, kernel_index: Any = None, mid: Any = None,
             mode: BNMode = BNMode.INFERENCE, calibration_step: Any = None) -> Any:
        bn = dict(mode=mode, calibration_step=calibration_step)
        h = x
        if self.has_expansion:
            h = tf.nn.relu6(self.expand_bn(self.expand(h, mid), **bn))
        h = tf.nn.relu6(self.dw_bn(self.dw(h, kernel_index), **bn))
        h = self.project_bn(self.project(h), **bn)
        return x + h if self.residual else h

    def bn_layers(self) -> list[ElasticBatchNorm]:
        layers = [self.expand_bn] if self.has_expansion else []
        return layers + [self.dw_bn, self.project_bn]


# ------------------------------------------------------------------------ configurations
@dataclass(frozen=True)
class ArchTensors:
    """An :class:`ArchConfig` as the supernet consumes it: fixed-shape int32 arrays.

    ``kernel_index[slot]`` indexes ``space.kernel_choices`` (sorted), ``mid[slot]`` is the
    slot's hidden width, ``depth[stage]`` the number of blocks the stage runs. Fixed shapes
    mean one traced function serves every configuration.
    """

    kernel_index: np.ndarray
    mid: np.ndarray
    depth: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"kernel_index": self.kernel_index, "mid": self.mid, "depth": self.depth}

    @staticmethod
    def stack(items: Sequence["ArchTensors"]) -> dict[str, np.ndarray]:
        """Several configurations as ``[n, ...]`` arrays (one training step's subnets)."""
        return {key: np.stack([getattr(a, key) for a in items])
                for key in ("kernel_index", "mid", "depth")}


def arch_signature(space: SearchSpace, batch: int | None = None) -> dict[str, Any]:
    """``tf.TensorSpec`` s of :meth:`ArchTensors.as_dict` (stacked when ``batch`` is given)."""
    lead = () if batch is None else (batch,)
    return {
        "kernel_index": tf.TensorSpec(lead + (space.num_block_slots,), tf.int32),
        "mid": tf.TensorSpec(lead + (space.num_block_slots,), tf.int32),
        "depth": tf.TensorSpec(lead + (space.num_stages,), tf.int32),
    }


# ------------------------------------------------------------------------ the supernet
class Supernet(keras.Model):
    """The largest network of ``space`` with elastic kernel, width and depth.

    ``call(images, arch=None, training=False, calibration_step=None)``: ``arch`` is a dict of
    :class:`ArchTensors` arrays/tensors (None runs the largest network); ``training`` uses
    batch statistics (without updating the moving statistics); ``calibration_step`` (a scalar, the
    index of the calibration batch) switches BN to calibration mode instead.
    """

    def __init__(self, space: SearchSpace, options: SupernetOptions | None = None,
                 name: str = "supernet", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.space = space
        self.options = options or SupernetOptions()
        self.largest_config = space.largest()
        largest: NetworkSpec = self.largest_config.to_network()
        if largest.feature_mix is not None:
            raise ValueError("Supernet: search spaces with a feature-mix layer are not "
                             "supported (MCUNet's space has none)")
        self.largest_spec = largest
        self.kernel_choices = tuple(sorted(space.kernel_choices))
        opts = self.options
        bn = dict(epsilon=opts.bn_epsilon)
        first = largest.first_conv
        self.stem = keras.layers.Conv2D(first.out_channels, first.kernel, strides=first.stride,
                                        padding="same", use_bias=False, name="stem",
                                        kernel_initializer="he_normal")
        self.stem_bn = ElasticBatchNorm(first.out_channels, name="stem_bn", **bn)
        b0 = largest.blocks[0]
        # The fixed first MBConv (expand 1, kernel 3) is not searched.
        self.first_block = ElasticMBConv(b0.in_channels, b0.out_channels, b0.mid_channels,
                                         (b0.kernel_size,), b0.stride, b0.has_expansion,
                                         b0.residual, opts, name="block0")
        # Slot geometry: in/out channels and stride do not depend on the configuration
        # (a stage's first block always runs), only the hidden width and kernel do.
        self.slot_blocks: list[ElasticMBConv] = []
        self.slot_in_channels: list[int] = []
        for slot, block in enumerate(largest.blocks[1:]):
            self.slot_in_channels.append(block.in_channels)
            self.slot_blocks.append(ElasticMBConv(
                block.in_channels, block.out_channels, block.mid_channels,
                self.kernel_choices, block.stride, block.has_expansion, block.residual, opts,
                name=f"slot{slot}"))
        self.classifier = keras.layers.Dense(largest.num_classes, name="classifier")
        self._stage_of_slot = [s for s, d in enumerate(space.max_depths) for _ in range(d)]
        self._pos_in_stage = [i for d in space.max_depths for i in range(d)]
        self._always_on = [min(space.allowed_depths(s)) for s in range(space.num_stages)]

    # -------------------------------------------------------------- configurations
    def encode(self, config: ArchConfig) -> ArchTensors:
        """The tensors that select ``config`` (checked to be a point of this space)."""
        if not self.space.contains(config):
            raise ValueError(f"Supernet: configuration is not in its search space "
                             f"({self.space.get_config()}): {config.to_json()}")
        kernel_index = [self.kernel_choices.index(k) for k in config.kernel_sizes]
        mid = [make_divisible(round(c * e))
               for c, e in zip(self.slot_in_channels, config.expand_ratios)]
        return ArchTensors(np.asarray(kernel_index, np.int32), np.asarray(mid, np.int32),
                           np.asarray(config.depths, np.int32))

    def build_all(self) -> None:
        """Create every variable (one forward pass of the largest network)."""
        r, c = self.space.resolution, self.space.in_channels
        self(tf.zeros((1, r, r, c)), training=False)

    # -------------------------------------------------------------- forward
    def call(self, inputs: Any, arch: Mapping[str, Any] | None = None,
             training: bool | None = False, calibration_step: Any = None) -> Any:
        if calibration_step is not None:
            mode = BNMode.CALIBRATE
        else:
            mode = BNMode.TRAIN if training else BNMode.INFERENCE
        bn = dict(mode=mode, calibration_step=calibration_step)
        x = tf.nn.relu6(self.stem_bn(self.stem(inputs), **bn))
        x = self.first_block(x, **bn)
        for slot, block in enumerate(self.slot_blocks):
            if arch is None:
                x = block(x, **bn)
                continue
            stage, pos = self._stage_of_slot[slot], self._pos_in_stage[slot]
            kernel_index, mid = arch["kernel_index"][slot], arch["mid"][slot]
            if pos < self._always_on[stage]:
                x = block(x, kernel_index, mid, **bn)
            else:
                # Only stride-1 same-width blocks can be skipped, so both branches agree on
                # the shape. The default argument binds this iteration's block.
                x = tf.cond(arch["depth"][stage] > pos,
                            lambda x=x, b=block, k=kernel_index, m=mid: b(x, k, m, **bn),
                            lambda x=x: tf.identity(x))
        x = tf.reduce_mean(x, axis=[1, 2])
        return self.classifier(x)

    # -------------------------------------------------------------- structure helpers
    def active_blocks(self, config: ArchConfig) -> list[tuple[int, ElasticMBConv]]:
        """(index in ``config.to_network().blocks``, supernet block) for every block run."""
        pairs = [(0, self.first_block)]
        for index, slot in enumerate(config.active_slots, start=1):
            pairs.append((index, self.slot_blocks[slot]))
        return pairs

    def bn_layers(self) -> list[ElasticBatchNorm]:
        layers = [self.stem_bn] + self.first_block.bn_layers()
        for block in self.slot_blocks:
            layers += block.bn_layers()
        return layers

    # -------------------------------------------------------------- channel sorting
    def reorganize_channels(self, optimizer: Any = None) -> None:
        """Sort every elastic block's hidden channels by importance, most important first.

        Importance of hidden channel ``c`` = L1 norm of the projection weights reading it.
        The permutation is applied consistently to the expand conv's output channels, its
        BN, the depthwise kernel and its BN, and the projection's input channels, so the
        largest network computes exactly the same function. ``optimizer`` (tf_keras SGD with
        momentum) gets its momentum buffers permuted the same way.
        """
        for block in self.slot_blocks:
            if not block.has_expansion:
                continue
            project = block.project.kernel.numpy()
            importance = np.abs(project).sum(axis=(0, 1, 3))
            order = np.argsort(-importance, kind="stable")
            perms = [
                (block.expand.kernel, 3), (block.dw.depthwise_kernel, 2),
                (block.project.kernel, 2),
            ] + [(v, 0) for bn in (block.expand_bn, block.dw_bn)
                 for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)]
            for variable, axis in perms:
                variable.assign(np.take(variable.numpy(), order, axis=axis))
                slot = _momentum_slot(optimizer, variable)
                if slot is not None:
                    slot.assign(np.take(slot.numpy(), order, axis=axis))

    def get_config(self) -> dict[str, Any]:
        return {"space": self.space.get_config(), "options": self.options.get_config(),
                "name": self.name}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], custom_objects: Any = None) -> "Supernet":
        return cls(SearchSpace.from_config(config["space"]),
                   SupernetOptions.from_config(config["options"]), name=config["name"])


def _momentum_slot(optimizer: Any, variable: Any) -> Any:
    """The momentum buffer of ``variable`` in a tf_keras SGD optimizer, if it has one.

    tf_keras keeps them in ``optimizer.momentums`` indexed through its private
    ``_index_dict``; anything else (no optimizer, not built yet, no momentum) gives None.
    """
    if optimizer is None or not getattr(optimizer, "momentums", None):
        return None
    index = getattr(optimizer, "_index_dict", {}).get(optimizer._var_key(variable))
    return None if index is None else optimizer.momentums[index]


def make_supernet(space: SearchSpace, options: SupernetOptions | None = None) -> Supernet:
    """A built supernet (all variables created)."""
    model = Supernet(space, options)
    model.build_all()
    return model


@dataclass
class SupernetForward:
    """Traced forward functions of a supernet: one trace per mode for every configuration."""

    model: Supernet
    _fns: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        space = self.model.space
        image = tf.TensorSpec((None, space.resolution, space.resolution, space.in_channels),
                              tf.float32)
        arch = arch_signature(space)
        model = self.model
        self._fns["inference"] = tf.function(
            lambda x, a: model(x, arch=a, training=False), input_signature=[image, arch])
        self._fns["calibrate"] = tf.function(
            lambda x, a, step: model(x, arch=a, calibration_step=step),
            input_signature=[image, arch, tf.TensorSpec((), tf.int32)])

    def logits(self, images: Any, arch: ArchTensors) -> Any:
        return self._fns["inference"](images, _as_tensors(arch))

    def calibrate(self, images: Any, arch: ArchTensors, step: int) -> Any:
        return self._fns["calibrate"](images, _as_tensors(arch), tf.constant(step, tf.int32))

    def trace_counts(self) -> dict[str, int]:
        return {k: int(f.experimental_get_tracing_count()) for k, f in self._fns.items()}


def _as_tensors(arch: ArchTensors) -> dict[str, Any]:
    return {k: tf.constant(v, tf.int32) for k, v in arch.as_dict().items()}
