"""The weight-sharing supernet: elastic layers, export, BN recalibration, training."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mcunet_tf import subnet
from mcunet_tf.arch import SearchSpace
from mcunet_tf.supernet import SupernetOptions, make_supernet
from mcunet_tf.tf_env import keras, tf
from mcunet_tf.train import SupernetTrainer, TrainConfig


def tiny_space() -> SearchSpace:
    """Two stages (3 + 1 slots): every elastic mechanism, a fraction of the trace time."""
    return SearchSpace(width_mult=0.5, resolution=16, base_widths=(16, 24), strides=(2, 2),
                       max_depths=(3, 1), kernel_choices=(3, 5, 7), expand_choices=(3, 6),
                       depth_choices=(2, 3), num_classes=10)


def configs(space: SearchSpace, n_random: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(n_random)]


@pytest.fixture(scope="module")
def supernet():
    keras.utils.set_random_seed(0)
    return make_supernet(tiny_space())


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(-1, 1, (96, 16, 16, 3)).astype(np.float32)


def _assert_close(a: np.ndarray, b: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(a).max()))
    assert float(np.abs(a - b).max()) <= 1e-4 * scale, float(np.abs(a - b).max())


def test_one_trace_serves_every_configuration(supernet, images):
    space = supernet.space
    for cfg in configs(space, 4):
        logits = subnet.predict(supernet, cfg, images[:4])
        assert logits.shape == (4, 10) and np.isfinite(logits).all()
    assert subnet._forward(supernet).trace_counts()["inference"] == 1


def test_depth_kernel_and_width_change_the_output(supernet, images):
    space = supernet.space
    big = space.largest()
    outs = {
        "largest": subnet.predict(supernet, big, images[:4]),
        "depth": subnet.predict(supernet, big.__class__(**{**_fields(big), "depths": (2, 1)}),
                                images[:4]),
        "kernel": subnet.predict(supernet, big.__class__(
            **{**_fields(big), "kernel_sizes": (3,) * 4}), images[:4]),
        "expand": subnet.predict(supernet, big.__class__(
            **{**_fields(big), "expand_ratios": (3,) * 4}), images[:4]),
    }
    for name in ("depth", "kernel", "expand"):
        assert not np.allclose(outs[name], outs["largest"]), name


def _fields(cfg):
    return {"resolution": cfg.resolution, "width_mult": cfg.width_mult,
            "kernel_sizes": cfg.kernel_sizes, "expand_ratios": cfg.expand_ratios,
            "depths": cfg.depths, "num_classes": cfg.num_classes, "space": cfg.space}


def test_export_equals_supernet_for_each_configuration(supernet, images):
    for cfg in configs(supernet.space, 3, seed=5):
        subnet.recalibrate_bn(supernet, cfg, images, batch_size=32)
        expected = subnet.predict(supernet, cfg, images[:16])
        model = subnet.export_subnet(supernet, cfg)
        assert model.count_params() < supernet.count_params()
        _assert_close(model(images[:16], training=False).numpy(), expected)


def test_shared_weight_reaches_every_subnet(supernet, images):
    space = supernet.space
    cfgs = configs(space, 2, seed=9)
    before = [subnet.predict(supernet, c, images[:4]) for c in cfgs]
    block = supernet.slot_blocks[0]
    kernel = block.dw.depthwise_kernel
    saved = kernel.numpy()
    try:
        # The centre tap of channel 0 is in every kernel size and every width.
        bumped = saved.copy()
        bumped[3, 3, 0, 0] += 5.0
        kernel.assign(bumped)
        after = [subnet.predict(supernet, c, images[:4]) for c in cfgs]
    finally:
        kernel.assign(saved)
    for b, a in zip(before, after):
        assert not np.allclose(a, b)


def test_kernel_crop_without_transform_is_the_centre():
    keras.utils.set_random_seed(2)
    from mcunet_tf.supernet import Supernet

    net = Supernet(tiny_space(), SupernetOptions(kernel_transform=False))
    net.build_all()
    dw = net.slot_blocks[1].dw
    full = dw.depthwise_kernel.numpy()
    np.testing.assert_array_equal(dw.kernel_for(3).numpy(), full[2:5, 2:5])
    np.testing.assert_array_equal(dw.kernel_for(5).numpy(), full[1:6, 1:6])
    assert not any("transform" in v.name for v in net.trainable_variables)


def test_recalibration_sets_exact_batch_statistics(supernet, images):
    cfg = supernet.space.smallest()
    subnet.recalibrate_bn(supernet, cfg, images, batch_size=32)
    stem_out = supernet.stem(tf.constant(images)).numpy()
    per_batch = [stem_out[i:i + 32].mean(axis=(0, 1, 2)) for i in range(0, 96, 32)]
    np.testing.assert_allclose(tf.convert_to_tensor(supernet.stem_bn.moving_mean).numpy(),
                               np.mean(per_batch, axis=0), rtol=1e-4, atol=1e-5)


def test_reorganize_channels_keeps_the_largest_network(images):
    keras.utils.set_random_seed(3)
    net = make_supernet(tiny_space())
    big = net.space.largest()
    subnet.recalibrate_bn(net, big, images, batch_size=32)
    before = subnet.predict(net, big, images[:8])
    net.reorganize_channels()
    _assert_close(subnet.predict(net, big, images[:8]), before)
    for block in net.slot_blocks:
        importance = np.abs(block.project.kernel.numpy()).sum(axis=(0, 1, 3))
        assert np.all(np.diff(importance) <= 1e-6)


def _small_train_config(**overrides) -> TrainConfig:
    base = dict(width_mult=0.5, resolution=16, num_classes=10, batch_size=16,
                largest_steps=2, elastic_steps=2, num_subnets=2, warmup_steps=1,
                checkpoint_every=1, augment=True, seed=0)
    base.update(overrides)
    return TrainConfig(**base)


def _TinyTrainer(config, strategy=None, checkpoint_dir=None) -> SupernetTrainer:
    """The trainer on the tiny space instead of MCUNet's backbone."""
    return SupernetTrainer(config, strategy, checkpoint_dir, space=tiny_space())


def test_training_resumes_from_checkpoint(tmp_path):
    from mcunet_tf.data import load_digits

    splits = load_digits()
    cfg = _small_train_config()
    keras.utils.set_random_seed(0)
    first = _TinyTrainer(cfg, checkpoint_dir=tmp_path)
    stopped = first.train(splits, stop_at=3, progress=False)
    assert stopped.steps_done == 3 and np.isfinite(stopped.losses).all()
    # One trace per phase, whatever sub-networks the steps sampled.
    assert first.trace_counts() == {"step(0, True)": 1, "step(2, True)": 1}
    saved = [w.numpy() for w in first.supernet.weights]
    iterations = int(first.optimizer.iterations.numpy())
    del first

    keras.utils.set_random_seed(123)  # a different init: everything must come from the file
    second = _TinyTrainer(cfg, checkpoint_dir=tmp_path)
    assert second.restore() == 3
    assert int(second.optimizer.iterations.numpy()) == iterations == 3
    for a, b in zip(saved, second.supernet.weights):
        np.testing.assert_array_equal(a, b.numpy(), err_msg=b.name)
    resumed = second.train(splits, progress=False)
    assert resumed.resumed_from == 3 and resumed.steps_done == 4
    assert len(resumed.losses) == 1 and np.isfinite(resumed.losses).all()
    assert int(second.optimizer.iterations.numpy()) == 4


def test_subnet_filter_restricts_the_sampled_subnetworks():
    cfg = _small_train_config(num_subnets=4)
    unfiltered = _TinyTrainer(cfg)
    drawn = [c for step in range(10) for c in unfiltered.subnets_for_step(step)]
    small_only = lambda c: max(c.kernel_sizes) <= 5 and c.depths[0] == 2  # noqa: E731
    assert not all(small_only(c) for c in drawn)  # the filter has something to reject
    filtered = SupernetTrainer(cfg, space=tiny_space(), subnet_filter=small_only)
    for step in range(10):
        picked = filtered.subnets_for_step(step)
        assert len(picked) == 4 and all(small_only(c) for c in picked)
        assert picked == filtered.subnets_for_step(step)  # a resumed run draws the same


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus():
    # Logical devices must be configured before TensorFlow initialises its devices, so this
    # runs in a fresh interpreter.
    script = textwrap.dedent("""
        import numpy as np
        from mcunet_tf.tf_env import tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from mcunet_tf.arch import SearchSpace
        from mcunet_tf.data import load_digits
        from mcunet_tf.train import SupernetTrainer, TrainConfig, make_strategy
        space = SearchSpace(**SPACE)
        config = TrainConfig(**CONFIG)
        strategy = make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
        trainer = SupernetTrainer(config, strategy, space=space)
        result = trainer.train(load_digits(), progress=False)
        print("REPLICAS", strategy.num_replicas_in_sync, "LOSS", result.losses)
        assert np.isfinite(result.losses).all()
    """)
    config = _small_train_config(largest_steps=1, elastic_steps=1, checkpoint_every=0)
    script = (f"SPACE = {tiny_space().get_config()!r}\n"
              f"CONFIG = {config.get_config()!r}\n") + script
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REPLICAS 2" in proc.stdout
