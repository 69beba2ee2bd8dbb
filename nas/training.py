"""Training a static tf_keras network for a fixed number of steps (the searched network's
fine-tuning, the baseline's training from scratch): SGD with Nesterov momentum, linear
warm-up then cosine decay, label smoothing, the data set's augmentation, seeded."""
from __future__ import annotations

from typing import Any


def train_steps(model: Any, train: Any, flip: bool, steps: int, batch_size: int, seed: int,
                learning_rate: float = 0.05, warmup_steps: int = 20, momentum: float = 0.9,
                label_smoothing: float = 0.1, progress: bool = True,
                desc: str = "training") -> list[float]:
    """Train ``model`` (outputs logits) on the prepared ``train`` images for ``steps`` steps;
    the per-step losses."""
    from tqdm import tqdm

    from mcunet_tf.data import Augmentation, make_pipeline
    from mcunet_tf.tf_env import keras, tf

    if steps <= 0:
        return []
    num_classes = int(model.output_shape[-1])
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else learning_rate,
        decay_steps=max(1, steps - warmup_steps),
        warmup_target=learning_rate if warmup_steps else None, warmup_steps=warmup_steps)
    optimizer = keras.optimizers.SGD(schedule, momentum=momentum, nesterov=True)
    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing)
    pipeline = make_pipeline(train, batch_size, training=True, seed=seed,
                             augmentation=Augmentation(flip=flip))

    @tf.function
    def step(images: Any, labels: Any) -> Any:
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = loss_fn(tf.one_hot(labels, num_classes), logits)
            if model.losses:
                loss += tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    losses = []
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not progress, dynamic_ncols=True)
    for images, labels in pipeline.take(steps):
        losses.append(float(step(images, labels)))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        bar.update(1)
    bar.close()
    return losses
