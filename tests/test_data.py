"""Data sets and tf.data pipelines of mcunet_tf.data."""
from __future__ import annotations

import gzip
import io
import pathlib
import pickle
import struct
import tarfile

import numpy as np
import pytest

from mcunet_tf import data

SHARED = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _write_idx(path: pathlib.Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


def test_digits_embedded_default_is_deterministic_and_disjoint():
    a = data.load_digits(seed=3)
    b = data.load_digits(seed=3)
    c = data.load_digits(seed=4)
    assert len(a.train) + len(a.holdout) + len(a.test) == 1797
    assert a.num_classes == 10 and a.train.image_shape == (8, 8, 1)
    assert a.train.images.dtype == np.uint8 and a.train.images.max() == 255
    np.testing.assert_array_equal(a.holdout.images, b.holdout.images)
    assert not np.array_equal(a.test.labels, c.test.labels)
    assert a.flip is False  # mirrored digits are not digits


def test_split_holdout_partitions_the_training_set():
    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)
    ds = data.ImageDataset(images, np.zeros(100), ("x",))
    train, hold = data.split_holdout(ds, 0.2, seed=1)
    values = sorted(train.images.ravel().tolist() + hold.images.ravel().tolist())
    assert len(hold) == 20 and values == list(range(100))
    with pytest.raises(ValueError, match="holdout size"):
        data.split_holdout(ds, 100, seed=1)


def test_idx_directory_keeps_official_split(tmp_path):
    rng = np.random.default_rng(0)
    tr_x = rng.integers(0, 256, (30, 28, 28))
    te_x = rng.integers(0, 256, (7, 28, 28))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", tr_x, True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", rng.integers(0, 10, 30), False)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", te_x, True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 7), True)
    splits = data.load_idx_dir(tmp_path, name="fashion_mnist", holdout=5)
    assert (len(splits.train), len(splits.holdout), len(splits.test)) == (25, 5, 7)
    np.testing.assert_array_equal(splits.test.images[..., 0], te_x)
    assert splits.flip and splits.class_names == data.FASHION_MNIST_CLASSES
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an idx file"):
        data.read_idx(tmp_path / "bad")


def test_fashion_mnist_official_files():
    directory = SHARED / "fashion_mnist"
    if not directory.is_dir():
        pytest.skip(f"{directory} not found: ../shared data sets unavailable")
    splits = data.load_dataset("fashion_mnist", str(directory))
    assert (len(splits.train), len(splits.holdout), len(splits.test)) == (55000, 5000, 10000)
    assert splits.train.image_shape == (28, 28, 1)
    assert np.bincount(splits.test.labels).tolist() == [1000] * 10


def test_cifar10_python_batches(tmp_path):
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", 4) for i in range(1, 6)] + [("test_batch", 3)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist()}
        (tmp_path / name).write_bytes(pickle.dumps(batch))
    splits = data.load_cifar10_batches(tmp_path, holdout=2)
    assert (len(splits.train), len(splits.holdout), len(splits.test)) == (18, 2, 3)
    assert splits.test.image_shape == (32, 32, 3)
    # Channel-planar rows become HWC images.
    raw = pickle.loads((tmp_path / "test_batch").read_bytes())[b"data"][0]
    np.testing.assert_array_equal(splits.test.images[0, :, :, 1].ravel(), raw[1024:2048])


def _png(color: int, size: int = 6) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (color, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def test_image_folder_and_tarball_layouts(tmp_path):
    root = tmp_path / "imgs"
    for split in ("train", "test"):
        for klass, color in (("cat", 10), ("dog", 200)):
            folder = root / split / klass
            folder.mkdir(parents=True)
            for i in range(4):
                (folder / f"{i}.png").write_bytes(_png(color))
    splits = data.load_image_folder(root, holdout=2)
    assert splits.class_names == ("cat", "dog")
    assert (len(splits.train), len(splits.holdout), len(splits.test)) == (6, 2, 8)
    assert set(splits.test.images[splits.test.labels == 1][..., 0].ravel()) == {200}
    tarball = tmp_path / "imgs.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root, arcname="prefix")
    from_tar = data.load_image_folder(tarball, holdout=2)
    np.testing.assert_array_equal(from_tar.test.images, splits.test.images)
    flat = tmp_path / "flat"
    for klass in ("a", "b", "c"):
        (flat / klass).mkdir(parents=True)
        for i in range(5):
            (flat / klass / f"{i}.png").write_bytes(_png(i * 40, size=5 + i))
    with pytest.raises(ValueError, match="several sizes"):
        data.load_image_folder(flat)
    resized = data.load_image_folder(flat, image_size=8, holdout=1, test_fraction=0.2)
    assert resized.train.image_shape == (8, 8, 3) and len(resized.test) == 3


def test_cifar10_jpeg_tarball():
    tarball = SHARED / "cifar10_jpeg" / "cifar10_jpeg_q75.tar.gz"
    if not tarball.is_file():
        pytest.skip(f"{tarball} not found: ../shared data sets unavailable")
    splits = data.load_image_folder(tarball, max_per_class=3, holdout=5)
    assert splits.class_names == data.CIFAR10_CLASSES
    assert len(splits.test) == 30 and splits.test.image_shape == (32, 32, 3)


def test_tfrecords_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    ds = data.ImageDataset(rng.integers(0, 256, (6, 5, 5, 3)).astype(np.uint8),
                           np.arange(6) % 2, ("a", "b"))
    data.write_tfrecords(ds, tmp_path / "train.tfrecord")
    data.write_tfrecords(ds.take(2), tmp_path / "test.tfrecord")
    splits = data.load_tfrecords(str(tmp_path / "train*"), str(tmp_path / "test*"),
                                 ("a", "b"), holdout=2)
    np.testing.assert_array_equal(splits.test.images, ds.images[:2])  # PNG is lossless
    assert len(splits.train) == 4


def test_prepare_and_pipelines_are_deterministic():
    splits = data.load_digits()
    prep = data.Preprocessing(resolution=16, channels=3)
    train = data.prepare_dataset(splits.train, prep)
    assert train.image_shape == (16, 16, 3)
    np.testing.assert_array_equal(train.images[..., 0], train.images[..., 2])
    aug = data.Augmentation(flip=True)

    def first_batches(seed: int, skip: int = 0, count: int = 2):
        ds = data.make_pipeline(train, 32, training=True, seed=seed, augmentation=aug,
                                skip_batches=skip)
        return [(x.numpy(), y.numpy()) for x, y in ds.take(count)]

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])
    assert a[0][0].shape == (32, 16, 16, 3) and -1.0 <= a[0][0].min() <= a[0][0].max() <= 1.0
    # Resuming with skip_batches continues the very same stream.
    resumed = first_batches(7, skip=1, count=1)
    np.testing.assert_array_equal(resumed[0][0], a[1][0])
    # Evaluation: in order, every image once, no augmentation.
    test = data.prepare_dataset(splits.test, prep)
    xs = np.concatenate([x.numpy() for x, _ in data.make_pipeline(test, 100, training=False)])
    np.testing.assert_allclose(xs, data.to_float(test.images))
