"""Deploying a trained network: files, accuracies of the float / int8 / C models, bit-exact
verification against TFLite Micro (and that it catches a difference), Cortex-M figures."""
from __future__ import annotations

import json

import numpy as np
import pytest

from nas.deploy import DeployReport, deploy_model
from nas.mcu import get_profile

RESOLUTION = 32
VERIFY = 60
KEYS = ("float_test_accuracy", "int8_test_accuracy", "c_test_accuracy", "c_int8_same_predictions",
        "tflm_identical", "verified", "verify_summary", "arena_bytes", "tflm_arena_bytes",
        "tflite_bytes", "quantization")
QEMU_KEYS = ("qemu_instructions", "qemu_identical_to_tflm", "flash_bytes_linked_image",
             "flash_bytes_model_object", "ram_bytes_linked_image", "ram_bytes_model_object",
             "qemu_cpu")


@pytest.fixture(scope="module")
def trained():
    """The smallest grayscale network of a 0.2x space, trained briefly on digits."""
    from mcunet_tf import data
    from mcunet_tf.arch import SearchSpace
    from mcunet_tf.keras_builder import build_keras_model
    from mcunet_tf.tf_env import keras
    from nas.training import train_steps

    keras.utils.set_random_seed(0)
    splits = data.load_digits()
    spec = SearchSpace(width_mult=0.2, resolution=RESOLUTION, num_classes=10,
                       in_channels=1).smallest().to_network()
    model = build_keras_model(spec)
    train = data.prepare_dataset(splits.train, data.Preprocessing(RESOLUTION, 1))
    # Enough steps for the BN moving statistics to settle: accuracies are then meaningful.
    train_steps(model, train, splits.flip, 120, 32, 0, learning_rate=0.05, warmup_steps=5,
                progress=False)
    return model, splits


def _deploy(trained, tmp_path, quantization, qemu_images=2, **kwargs):
    model, splits = trained
    return deploy_model(model, splits, RESOLUTION, tmp_path, get_profile("stm32f746"),
                        qat_steps=8, batch_size=32, seed=0, quantization=quantization,
                        name="model", verify_images=VERIFY, qemu_images=qemu_images,
                        progress=False, **kwargs)


def _check(report, tmp_path, splits):
    from engine import qemu

    config = report.get_config()
    json.dumps(config)  # serialisable as it is
    assert DeployReport.from_config(config) == report
    for key in KEYS:
        assert key in config, key
    assert (tmp_path / "model_int8.tflite").stat().st_size == config["tflite_bytes"]
    assert (tmp_path / "model_float.h5").is_file()
    assert (tmp_path / "c" / "model.c").is_file() and (tmp_path / "c" / "model.h").is_file()
    assert report.verified is True
    assert config["tflm_identical"] == f"{VERIFY}/{VERIFY}"
    assert report.verify_summary.startswith(f"{VERIFY}/{VERIFY} held-out outputs identical")
    n = len(splits.test)
    assert config["test_images"] == n
    # Our C is bit-exact with TFLM (reference kernels); ai_edge_litert's default kernels round
    # a few outputs differently, so the two int8 accuracies differ by at most the images
    # where the predictions differ, and those are few.
    same = int(config["c_int8_same_predictions"].split("/")[0])
    assert same >= 0.9 * n
    assert abs(config["c_test_accuracy"] - config["int8_test_accuracy"]) <= (n - same) / n + 1e-9
    assert config["c_test_accuracy"] > 0.3  # trained, not chance (10 classes)
    assert abs(config["float_test_accuracy"] - config["int8_test_accuracy"]) < 0.15
    assert 0 < config["arena_bytes"] and 0 < config["tflm_arena_bytes"]
    if qemu.toolchain_available():
        for key in QEMU_KEYS:
            assert key in config, key
        assert config["qemu_identical_to_tflm"] == "2/2"
        assert config["qemu_instructions"] > 0 and config["qemu_cpu"] == "cortex-m7"
        assert config["flash_bytes_linked_image"] > config["flash_bytes_model_object"] > 0
        # The model object's RAM is its arena (and little else); the image adds newlib's.
        assert config["ram_bytes_model_object"] >= config["arena_bytes"]
        assert config["ram_bytes_linked_image"] > config["ram_bytes_model_object"]
    else:
        assert "qemu_skipped" in config
    return config


def test_deploy_ptq(trained, tmp_path):
    from mcunet_tf.tf_env import keras

    report = _deploy(trained, tmp_path, "ptq")
    config = _check(report, tmp_path, trained[1])
    assert config["quantization"] == "ptq" and config["qat_steps"] == 0
    assert config["qat_keras_test_accuracy"] is None
    # TFLM's smallest arena, each trial in a child process, is the in-process bisection's.
    from engine.tflm import TflmModel

    tflite = tmp_path / "model_int8.tflite"
    assert config["tflm_arena_bytes"] == TflmModel.smallest_arena(tflite.read_bytes())
    assert config["tflm_arena_bytes"] <= config["tflm_arena_recorded_bytes"] + 64
    # The float model file reloads as the same network.
    model = trained[0]
    reloaded = keras.models.load_model(str(tmp_path / "model_float.h5"), compile=False)
    x = np.random.default_rng(0).uniform(-1, 1, (2, RESOLUTION, RESOLUTION, 1)).astype(np.float32)
    np.testing.assert_allclose(reloaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_deploy_qat(trained, tmp_path):
    report = _deploy(trained, tmp_path, "qat")
    config = _check(report, tmp_path, trained[1])
    assert config["quantization"] == "qat" and config["qat_steps"] == 8
    assert 0.3 < config["qat_keras_test_accuracy"] <= 1.0


def test_deploy_without_qemu_records_why(trained, tmp_path, monkeypatch):
    from engine import qemu

    config = _deploy(trained, tmp_path, "ptq", qemu_images=0).get_config()
    assert config["qemu_skipped"] == "qemu_images=0"
    assert "qemu_instructions" not in config
    assert config["verified"] is True

    # A failed Cortex-M run is recorded with its reason; the host figures stand.
    def fails(*args, **kwargs):
        raise qemu.QemuError("QEMU timed out after 1 s running app.elf")

    monkeypatch.setattr(qemu, "toolchain_available", lambda: True)
    monkeypatch.setattr(qemu, "run_on_qemu", fails)
    config = _deploy(trained, tmp_path / "failing", "ptq", qemu_images=1).get_config()
    assert config["qemu_skipped"] == "failed on cortex-m7: QEMU timed out after 1 s running app.elf"
    assert "qemu_instructions" not in config and config["verified"] is True


def test_verification_catches_one_flipped_byte(trained, tmp_path, monkeypatch):
    from engine.host import HostModel

    original = HostModel.run_many

    def flipped(self, samples):
        results = original(self, samples)
        out = results[0][0]
        bad = out.reshape(-1).view(np.uint8).copy()
        bad[0] ^= 1  # one bit of one byte of the first sample of each call
        results[0][0] = bad.view(out.dtype).reshape(out.shape)
        return results

    monkeypatch.setattr(HostModel, "run_many", flipped)
    report = _deploy(trained, tmp_path, "ptq", qemu_images=0)
    assert report.verified is False
    assert report.get_config()["tflm_identical"] == f"{VERIFY - 1}/{VERIFY}"
    assert report.verify_summary.startswith(f"{VERIFY - 1}/{VERIFY} held-out")
    assert report.tflm_mismatches == (0,)


def test_verification_catches_a_cortex_m_difference(trained, tmp_path, monkeypatch):
    """The host build matching TFLM is not enough: the Cortex-M (DSP) outputs must too."""
    import dataclasses

    from engine import qemu

    if not qemu.toolchain_available():
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm not installed")
    original = qemu.run_on_qemu

    def flipped(*args, **kwargs):
        r = original(*args, **kwargs)
        outputs = [[o.copy() for o in sample] for sample in r.outputs]
        outputs[1][0].reshape(-1).view(np.uint8)[0] ^= 1
        return dataclasses.replace(r, outputs=outputs)

    monkeypatch.setattr(qemu, "run_on_qemu", flipped)
    report = _deploy(trained, tmp_path, "ptq", qemu_images=2)
    config = report.get_config()
    assert config["tflm_identical"] == f"{VERIFY}/{VERIFY}"  # the host build is fine
    assert config["qemu_identical_to_tflm"] == "1/2"
    assert report.verified is False
    assert "1/2 Cortex-M (cortex-m7) outputs identical" in report.verify_summary
    assert "\n" not in report.verify_summary


def test_deploy_refuses_bad_arguments(trained, tmp_path):
    with pytest.raises(ValueError, match="quantization"):
        _deploy(trained, tmp_path, "fp16")
    model, splits = trained
    with pytest.raises(ValueError, match="not 48x48"):
        deploy_model(model, splits, 48, tmp_path, get_profile("stm32f746"), quantization="ptq")


def test_a_crashing_tflm_trial_counts_as_too_small(trained, tmp_path, monkeypatch):
    """The tflite-micro wheel can SIGSEGV on some too-small arenas: a crash must neither
    kill the run nor count as a fit."""
    import nas.deploy as deploy

    report = _deploy(trained, tmp_path, "ptq", qemu_images=0)
    limit = report.tflm_arena_bytes // 2
    monkeypatch.setattr(deploy, "_PROBE", "import os, signal, sys; "
                        f"int(sys.argv[2]) < {limit} and os.kill(os.getpid(), signal.SIGSEGV)")
    found = deploy.tflm_smallest_arena(tmp_path / "model_int8.tflite")
    assert limit <= found < limit + 16
