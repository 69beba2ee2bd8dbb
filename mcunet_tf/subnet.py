"""From supernet to sub-network: BN recalibration, evaluation and export.

* :func:`recalibrate_bn` re-estimates the BatchNorm statistics of one configuration on a few
  hundred training images (exact average of the batch statistics, as Once-for-All does). It
  writes them into the supernet's moving statistics (the first ``mid`` channels of each BN
  the configuration uses), so evaluate or export right after it.
* :func:`evaluate_subnet` = recalibrate + accuracy of the supernet running that configuration.
* :func:`export_subnet` builds the static tf_keras Functional model of a configuration with
  :func:`mcunet_tf.keras_builder.build_keras_model` and copies the weights it inherits:
  cropped (and transformed) depthwise kernels, the selected hidden channels, the BN
  parameters and statistics. Its predictions equal the supernet's for that configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from mcunet_tf.arch import ArchConfig
from mcunet_tf.keras_builder import build_keras_model
from mcunet_tf.network import LayerRole, conv_layer_name
from mcunet_tf.supernet import ElasticBatchNorm, ElasticMBConv, Supernet, SupernetForward
from mcunet_tf.tf_env import keras, tf

DEFAULT_CALIBRATION_IMAGES = 500


def _forward(supernet: Supernet) -> SupernetForward:
    """The supernet's traced forward functions, created once per supernet."""
    cached = getattr(supernet, "_mcunet_forward", None)
    if cached is None:
        cached = SupernetForward(supernet)
        # Not a Keras-tracked attribute: bypass Layer.__setattr__ tracking.
        object.__setattr__(supernet, "_mcunet_forward", cached)
    return cached


def _batches(images: np.ndarray, batch_size: int) -> Iterable[np.ndarray]:
    for start in range(0, len(images), batch_size):
        yield images[start:start + batch_size]


def recalibrate_bn(supernet: Supernet, config: ArchConfig, images: np.ndarray,
                   batch_size: int = 100) -> None:
    """Set the BN statistics ``config`` uses to the average batch statistics on ``images``.

    ``images`` are float network input (``[N, R, R, C]``); every batch has ``batch_size``
    images except possibly the last, which is dropped when smaller than half a batch so that
    all batches weigh about the same.
    """
    if len(images) == 0:
        raise ValueError("recalibrate_bn: no calibration images")
    forward = _forward(supernet)
    arch = supernet.encode(config)
    step = 0
    for batch in _batches(images, batch_size):
        if step > 0 and len(batch) * 2 < batch_size:
            break
        forward.calibrate(tf.constant(batch, tf.float32), arch, step)
        step += 1


def predict(supernet: Supernet, config: ArchConfig, images: np.ndarray,
            batch_size: int = 256) -> np.ndarray:
    """Logits of the supernet running ``config`` (inference-mode BN), as NumPy."""
    forward = _forward(supernet)
    arch = supernet.encode(config)
    outs = [forward.logits(tf.constant(b, tf.float32), arch).numpy()
            for b in _batches(images, batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0, supernet.space.num_classes))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels)))


@dataclass(frozen=True)
class SubnetEvaluation:
    """Accuracy of one configuration, read off the supernet."""

    config: ArchConfig
    accuracy: float
    num_images: int


def evaluate_subnet(supernet: Supernet, config: ArchConfig, calibration_images: np.ndarray,
                    images: np.ndarray, labels: np.ndarray,
                    batch_size: int = 256) -> SubnetEvaluation:
    """Recalibrate BN for ``config`` then measure its accuracy on ``images``."""
    recalibrate_bn(supernet, config, calibration_images)
    logits = predict(supernet, config, images, batch_size)
    return SubnetEvaluation(config, accuracy(logits, labels), len(labels))


# ------------------------------------------------------------------------ export
def _copy_bn(target: keras.layers.BatchNormalization, source: ElasticBatchNorm,
             channels: int) -> None:
    target.set_weights([
        source.gamma.numpy()[:channels], source.beta.numpy()[:channels],
        _read(source.moving_mean)[:channels], _read(source.moving_variance)[:channels],
    ])


def _read(variable: Any) -> np.ndarray:
    """Value of a variable; on-read (replica-averaged) ones are read in cross-replica mode."""
    return np.asarray(tf.convert_to_tensor(variable))


def _copy_block(model: keras.Model, index: int, block: ElasticMBConv, kernel_size: int,
                mid: int) -> None:
    expand = conv_layer_name(LayerRole.EXPAND, index)
    dw = conv_layer_name(LayerRole.DEPTHWISE, index)
    project = conv_layer_name(LayerRole.PROJECT, index)
    if block.has_expansion:
        model.get_layer(expand).set_weights([block.expand.kernel.numpy()[:, :, :, :mid]])
        _copy_bn(model.get_layer(f"{expand}_bn"), block.expand_bn, mid)
    kernel = block.dw.kernel_for(kernel_size).numpy()[:, :, :mid, :]
    model.get_layer(dw).set_weights([kernel])
    _copy_bn(model.get_layer(f"{dw}_bn"), block.dw_bn, mid)
    model.get_layer(project).set_weights([block.project.kernel.numpy()[:, :, :mid, :]])
    _copy_bn(model.get_layer(f"{project}_bn"), block.project_bn, block.out_channels)


def export_subnet(supernet: Supernet, config: ArchConfig,
                  calibration_images: np.ndarray | None = None,
                  name: str | None = None) -> keras.Model:
    """The static Functional model of ``config`` with the weights it inherits.

    With ``calibration_images`` the BN statistics are recalibrated first; otherwise the
    supernet's current statistics are copied (call :func:`recalibrate_bn` for ``config``
    before, or the statistics are those of whatever ran last).
    """
    if calibration_images is not None:
        recalibrate_bn(supernet, config, calibration_images)
    spec = config.to_network(name=name or "subnet")
    model = build_keras_model(spec, name=name or "subnet")
    stem = conv_layer_name(LayerRole.FIRST_CONV)
    model.get_layer(stem).set_weights([supernet.stem.kernel.numpy()])
    _copy_bn(model.get_layer(f"{stem}_bn"), supernet.stem_bn, spec.first_conv.out_channels)
    for index, block in supernet.active_blocks(config):
        block_spec = spec.blocks[index]
        if (block_spec.in_channels, block_spec.out_channels) != (
                block.in_channels, block.out_channels):
            raise ValueError(f"export_subnet: block {index} of the configuration is "
                             f"{block_spec.in_channels}->{block_spec.out_channels} channels, "
                             f"its supernet block {block.name} is {block.in_channels}->"
                             f"{block.out_channels}")
        if block_spec.mid_channels > block.max_mid:
            raise ValueError(f"export_subnet: block {index} needs {block_spec.mid_channels} "
                             f"hidden channels, the supernet has {block.max_mid}")
        _copy_block(model, index, block, block_spec.kernel_size, block_spec.mid_channels)
    model.get_layer(conv_layer_name(LayerRole.CLASSIFIER)).set_weights(
        [supernet.classifier.kernel.numpy(), supernet.classifier.bias.numpy()])
    return model
