"""Image classification data sets for the supernet, the search and quantization.

Two layers:

* **Loaders** turn what users have into in-memory :class:`ImageDataset` splits (uint8 images
  ``[N, H, W, C]`` and int32 labels): scikit-learn's bundled handwritten digits (the embedded
  default: no download, no files), MNIST / Fashion-MNIST idx files (optionally gzipped),
  CIFAR-10 python batches, image folders or a tarball of them (one sub-folder per class,
  optionally under ``train/`` and ``test/``), and TFRecords of encoded images. MCU-sized data
  sets fit in memory, which keeps every split exactly reproducible.
* **Pipelines** (:func:`make_pipeline`) build ``tf.data`` input for training and evaluation:
  grayscale -> 3 channels when the network wants 3, resize to the search resolution,
  scale to [-1, 1], and for training a random crop after padding plus an optional horizontal
  flip. Every random decision comes from stateless ops seeded by ``seed`` and the element's
  position, so a pipeline is the same from run to run and from worker to worker.

Every loader returns :class:`DataSplits` with ``train``, ``holdout`` and ``test``. The holdout
split is carved out of the *training* data (seeded) and is what the architecture search
evaluates on; the test split is the data set's official test set and is only for reporting.
"""

from __future__ import annotations

import enum
import gzip
import io
import pathlib
import pickle
import struct
import tarfile
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping

import numpy as np

# Scale from uint8 pixels to the network's float input range [-1, 1]. Symmetric around 0 so
# that the int8 input quantization of the exported model is close to ``pixel - 128``.
PIXEL_SCALE = 1.0 / 127.5
PIXEL_OFFSET = -1.0


@dataclass(frozen=True)
class ImageDataset:
    """Images (uint8, ``[N, H, W, C]``) with integer labels in ``[0, num_classes)``."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        labels = np.asarray(self.labels).astype(np.int32).reshape(-1)
        if images.ndim == 3:  # grayscale without a channel axis
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"ImageDataset: images must be [N, H, W, C], got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"ImageDataset: images must be uint8, got {images.dtype}")
        if len(images) != len(labels):
            raise ValueError(
                f"ImageDataset: {len(images)} images but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(
                f"ImageDataset: labels must lie in [0, {len(self.class_names)}), got "
                f"[{labels.min()}, {labels.max()}]")
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", tuple(self.class_names))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        h, w, c = self.images.shape[1:]
        return int(h), int(w), int(c)

    def subset(self, indices: np.ndarray | slice) -> "ImageDataset":
        return ImageDataset(self.images[indices], self.labels[indices], self.class_names)

    def take(self, count: int) -> "ImageDataset":
        return self.subset(slice(0, count))


@dataclass(frozen=True)
class DataSplits:
    """A data set's three splits, and whether horizontal flips keep labels valid."""

    name: str
    train: ImageDataset
    holdout: ImageDataset
    test: ImageDataset
    flip: bool = True

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "image_shape": list(self.train.image_shape),
            "train": len(self.train),
            "holdout": len(self.holdout),
            "test": len(self.test),
        }


def split_holdout(train: ImageDataset, holdout: int | float, seed: int) -> tuple[
        ImageDataset, ImageDataset]:
    """Split ``train`` into (train, holdout) with a seeded permutation.

    ``holdout`` is a count (int) or a fraction of the training set (float in (0, 1)).
    """
    n = len(train)
    count = int(round(holdout * n)) if isinstance(holdout, float) else int(holdout)
    if not 0 < count < n:
        raise ValueError(f"split_holdout: holdout size {count} must be in (0, {n})")
    order = np.random.default_rng(seed).permutation(n)
    return train.subset(np.sort(order[count:])), train.subset(np.sort(order[:count]))


# ------------------------------------------------------------------------------ loaders
DIGITS_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal",
                         "shirt", "sneaker", "bag", "ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def load_digits(holdout: int | float = 0.1, test_fraction: float = 0.2,
                seed: int = 0) -> DataSplits:
    """scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes).

    The embedded default: it ships inside the scikit-learn wheel, so it needs no download and
    no files. Pixel values 0..16 are scaled to 0..255. The data set has no official test
    split: a seeded ``test_fraction`` becomes the test set, then ``holdout`` of the rest.
    """
    from sklearn.datasets import load_digits as _sk_digits

    bunch = _sk_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    everything = ImageDataset(images, bunch.target, DIGITS_CLASSES)
    rest, test = split_holdout(everything, test_fraction, seed)
    train, hold = split_holdout(rest, holdout, seed + 1)
    # Mirrored digits are other symbols (or other digits): no flips.
    return DataSplits("digits", train, hold, test, flip=False)


def _open_maybe_gz(path: pathlib.Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def read_idx(path: pathlib.Path) -> np.ndarray:
    """Read one idx file (the MNIST format), gzipped or not, as a uint8 array."""
    data = _open_maybe_gz(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an idx file (bad magic)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: idx element type 0x{data[2]:02x} is not uint8 (0x08)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {payload.size} bytes of data for dims {dims}")
    return payload.reshape(dims)


def _find_file(directory: pathlib.Path, stems: Iterable[str]) -> pathlib.Path:
    for stem in stems:
        for candidate in (directory / stem, directory / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"none of {list(stems)} (optionally .gz) in {directory}")


def load_idx_dir(directory: str | pathlib.Path, name: str = "fashion_mnist",
                 class_names: tuple[str, ...] | None = None,
                 holdout: int | float = 5000, seed: int = 0,
                 flip: bool | None = None) -> DataSplits:
    """MNIST or Fashion-MNIST from the four official idx files (``.gz`` or not).

    The official train/test split is kept; ``holdout`` images of train become the holdout.
    Flips default to on for Fashion-MNIST (clothes stay clothes) and off otherwise.
    """
    directory = pathlib.Path(directory)
    stems = {
        "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
        "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
        "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
        "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
    }
    arrays = {key: read_idx(_find_file(directory, names)) for key, names in stems.items()}
    if class_names is None:
        class_names = FASHION_MNIST_CLASSES if "fashion" in name else DIGITS_CLASSES
    full = ImageDataset(arrays["train_images"], arrays["train_labels"], class_names)
    test = ImageDataset(arrays["test_images"], arrays["test_labels"], class_names)
    train, hold = split_holdout(full, holdout, seed)
    return DataSplits(name, train, hold, test,
                      flip=("fashion" in name) if flip is None else flip)


def load_cifar10_batches(directory: str | pathlib.Path, holdout: int | float = 5000,
                         seed: int = 0) -> DataSplits:
    """CIFAR-10 from its python batches (``data_batch_1..5``, ``test_batch``)."""
    directory = pathlib.Path(directory)
    if not (directory / "data_batch_1").is_file() and (
            directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"

    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        path = directory / name
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR-10 batch {path} not found")
        with path.open("rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return data.transpose(0, 2, 3, 1), np.asarray(batch[b"labels"])

    parts = [read(f"data_batch_{i}") for i in range(1, 6)]
    full = ImageDataset(np.concatenate([p[0] for p in parts]),
                        np.concatenate([p[1] for p in parts]), CIFAR10_CLASSES)
    test_images, test_labels = read("test_batch")
    train, hold = split_holdout(full, holdout, seed)
    return DataSplits("cifar10", train, hold,
                      ImageDataset(test_images, test_labels, CIFAR10_CLASSES), flip=True)


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".webp")


def decode_image(data: bytes, image_size: int | None, channels: int | None) -> np.ndarray:
    """Encoded image bytes (any format Pillow reads) as uint8 [H, W, C], converted to
    `channels` (1 or 3) and resized to `image_size` square when given."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        if channels == 1:
            img = img.convert("L")
        elif channels == 3 or img.mode not in ("L", "RGB"):
            img = img.convert("RGB")
        if image_size is not None and img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _iter_folder(root: pathlib.Path) -> Iterable[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES:
            yield path.relative_to(root).as_posix(), path.read_bytes()


def iter_tar_images(path: pathlib.Path) -> Iterable[tuple[str, bytes]]:
    """(member name, bytes) of every image file of a tarball, in archive order, streamed."""
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile() and pathlib.PurePosixPath(member.name).suffix.lower() in \
                    _IMAGE_SUFFIXES:
                fh = tar.extractfile(member)
                if fh is not None:
                    yield member.name, fh.read()


def load_image_folder(path: str | pathlib.Path, name: str | None = None,
                      image_size: int | None = None, channels: int | None = None,
                      holdout: int | float = 0.1, test_fraction: float = 0.2,
                      max_per_class: int | None = None, seed: int = 0,
                      flip: bool = True) -> DataSplits:
    """Images laid out one sub-folder per class, in a directory or a tarball of one.

    Layouts: ``[prefix/]{train,test}/<class>/<file>`` keeps the given train/test split (as in
    ``cifar10_jpeg``); ``[prefix/]<class>/<file>`` gets a seeded ``test_fraction`` test split
    (as Visual Wake Words is usually laid out). Classes are the sorted sub-folder names.
    ``image_size`` resizes on load (needed when image sizes differ); ``max_per_class`` keeps
    the first files (sorted by name) of every class per split, for quick experiments.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        entries: Iterable[tuple[str, bytes]] = _iter_folder(path)
    elif path.is_file() and tarfile.is_tarfile(path):
        entries = iter_tar_images(path)
    else:
        raise FileNotFoundError(f"{path}: neither a directory nor a tar archive of images")

    # (split or "", class) -> sorted list of (name, bytes)
    groups: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    for rel, data in entries:
        parts = pathlib.PurePosixPath(rel).parts
        if len(parts) < 2:
            continue  # a file at the top level belongs to no class
        split = ""
        for i, part in enumerate(parts[:-2]):
            if part in ("train", "test"):
                split = part
                parts = parts[i:]
                break
        klass = parts[-2]
        groups.setdefault((split, klass), []).append((rel, data))
    if not groups:
        raise ValueError(f"{path}: no images found in class sub-folders")
    splits_present = {s for s, _ in groups}
    if splits_present not in ({""}, {"train", "test"}):
        raise ValueError(f"{path}: mixed layout, found split folders {sorted(splits_present)}")
    classes = tuple(sorted({c for _, c in groups}))
    class_index = {c: i for i, c in enumerate(classes)}

    def build(split: str) -> ImageDataset:
        images, labels = [], []
        for klass in classes:
            files = sorted(groups.get((split, klass), []))
            if max_per_class is not None:
                files = files[:max_per_class]
            for _, data in files:
                images.append(decode_image(data, image_size, channels))
                labels.append(class_index[klass])
        shapes = {im.shape for im in images}
        if len(shapes) > 1:
            raise ValueError(f"{path}: images of several sizes {sorted(shapes)[:4]}...; "
                             "pass image_size to resize them on load")
        return ImageDataset(np.stack(images), np.asarray(labels), classes)

    name = name or path.name.split(".")[0]
    if splits_present == {"train", "test"}:
        full, test = build("train"), build("test")
    else:
        full, test = split_holdout(build(""), test_fraction, seed + 1)
    train, hold = split_holdout(full, holdout, seed)
    return DataSplits(name, train, hold, test, flip=flip)


def load_tfrecords(train_files: str | list[str], test_files: str | list[str],
                   class_names: tuple[str, ...], image_key: str = "image/encoded",
                   label_key: str = "image/class/label", image_size: int | None = None,
                   channels: int | None = None, holdout: int | float = 0.1, seed: int = 0,
                   name: str = "tfrecords", flip: bool = True) -> DataSplits:
    """TFRecords of ``tf.train.Example``: an encoded image (JPEG/PNG/...) and an int label.

    ``train_files`` / ``test_files`` are file names or glob patterns.
    """
    from mcunet_tf.tf_env import tf

    def read(files: str | list[str]) -> ImageDataset:
        patterns = [files] if isinstance(files, str) else list(files)
        paths = sorted(p for pattern in patterns for p in tf.io.gfile.glob(pattern))
        if not paths:
            raise FileNotFoundError(f"no TFRecord files match {patterns}")
        spec = {image_key: tf.io.FixedLenFeature([], tf.string),
                label_key: tf.io.FixedLenFeature([], tf.int64)}
        images, labels = [], []
        for record in tf.data.TFRecordDataset(paths):
            example = tf.io.parse_single_example(record, spec)
            images.append(decode_image(example[image_key].numpy(), image_size, channels))
            labels.append(int(example[label_key].numpy()))
        return ImageDataset(np.stack(images), np.asarray(labels), class_names)

    train, hold = split_holdout(read(train_files), holdout, seed)
    return DataSplits(name, train, hold, read(test_files), flip=flip)


def write_tfrecords(dataset: ImageDataset, path: str | pathlib.Path,
                    image_key: str = "image/encoded",
                    label_key: str = "image/class/label") -> None:
    """Write ``dataset`` as PNG-encoded ``tf.train.Example`` records (the reader's format)."""
    from mcunet_tf.tf_env import tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label in zip(dataset.images, dataset.labels):
            encoded = tf.io.encode_png(image).numpy()
            example = tf.train.Example(features=tf.train.Features(feature={
                image_key: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                label_key: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }))
            writer.write(example.SerializeToString())


class DatasetKind(str, enum.Enum):
    """Data sets addressable by name (command-line ``--dataset``)."""

    DIGITS = "digits"
    MNIST = "mnist"
    FASHION_MNIST = "fashion_mnist"
    CIFAR10 = "cifar10"
    IMAGE_FOLDER = "image_folder"


def _need_path(kind: DatasetKind, path: str | None) -> pathlib.Path:
    if not path:
        raise ValueError(f"data set {kind.value!r} needs a path (--data_dir)")
    return pathlib.Path(path)


def _load_cifar10(path: pathlib.Path, seed: int, **kwargs: Any) -> DataSplits:
    """CIFAR-10 as python batches, as an image tree or tarball, or as a folder holding one
    such tarball (``cifar10_jpeg/cifar10_jpeg_q75.tar.gz``)."""
    if path.is_dir():
        if (path / "data_batch_1").is_file() or (path / "cifar-10-batches-py").is_dir():
            return load_cifar10_batches(path, seed=seed, **kwargs)
        tars = sorted(p for p in path.iterdir() if p.is_file() and tarfile.is_tarfile(p))
        if len(tars) == 1 and not any(p.is_dir() for p in path.iterdir()):
            path = tars[0]
    return load_image_folder(path, name="cifar10", seed=seed, **kwargs)


_LOADERS: Mapping[DatasetKind, Callable[..., DataSplits]] = {
    DatasetKind.DIGITS: lambda path, seed, **kw: load_digits(seed=seed, **kw),
    DatasetKind.MNIST: lambda path, seed, **kw: load_idx_dir(
        _need_path(DatasetKind.MNIST, path), name="mnist", seed=seed, **kw),
    DatasetKind.FASHION_MNIST: lambda path, seed, **kw: load_idx_dir(
        _need_path(DatasetKind.FASHION_MNIST, path), name="fashion_mnist", seed=seed, **kw),
    DatasetKind.CIFAR10: lambda path, seed, **kw: _load_cifar10(
        _need_path(DatasetKind.CIFAR10, path), seed=seed, **kw),
    DatasetKind.IMAGE_FOLDER: lambda path, seed, **kw: load_image_folder(
        _need_path(DatasetKind.IMAGE_FOLDER, path), seed=seed, **kw),
}


def load_dataset(kind: str | DatasetKind, path: str | None = None, seed: int = 0,
                 **kwargs: Any) -> DataSplits:
    """Load a data set by name; extra keyword arguments go to its loader."""
    try:
        kind = DatasetKind(kind)
    except ValueError:
        names = ", ".join(k.value for k in DatasetKind)
        raise ValueError(f"unknown data set {kind!r} (known: {names})") from None
    return _LOADERS[kind](path, seed, **kwargs)


# ---------------------------------------------------------------------------- pipelines
@dataclass(frozen=True)
class Preprocessing:
    """How uint8 images become network input: size, channels, value range."""

    resolution: int
    channels: int = 3

    def get_config(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "channels": self.channels}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Preprocessing":
        return cls(**dict(config))


def prepare_images(images: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """uint8 ``[N, H, W, C]`` -> uint8 ``[N, R, R, channels]`` (bilinear resize, gray->RGB).

    Done once per data set, so that training pipelines only crop, flip and scale.
    """
    from mcunet_tf.tf_env import tf

    if images.shape[-1] not in (1, 3):
        raise ValueError(f"images have {images.shape[-1]} channels; 1 or 3 supported")
    if prep.channels not in (1, 3):
        raise ValueError(f"network input channels {prep.channels}: 1 or 3 supported")
    if images.shape[-1] == 1 and prep.channels == 3:
        images = np.repeat(images, 3, axis=-1)
    elif images.shape[-1] == 3 and prep.channels == 1:
        images = np.round(images.astype(np.float32) @ np.array(
            [0.299, 0.587, 0.114], np.float32))[..., None].clip(0, 255).astype(np.uint8)
    if images.shape[1:3] == (prep.resolution, prep.resolution):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), prep.resolution, prep.resolution, prep.channels), np.uint8)
    chunk = 4096  # bounded memory for the float intermediate
    for start in range(0, len(images), chunk):
        resized = tf.image.resize(images[start:start + chunk],
                                  (prep.resolution, prep.resolution), method="bilinear")
        out[start:start + chunk] = np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)
    return out


def prepare_dataset(dataset: ImageDataset, prep: Preprocessing) -> ImageDataset:
    return replace(dataset, images=prepare_images(dataset.images, prep))


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 prepared images -> float32 network input in [-1, 1]."""
    return images.astype(np.float32) * PIXEL_SCALE + PIXEL_OFFSET


@dataclass(frozen=True)
class Augmentation:
    """Augmentation for small images: pad-and-random-crop, optional horizontal flip."""

    pad_fraction: float = 0.125  # 4 pixels at 32x32, as the CIFAR recipe
    flip: bool = True

    def get_config(self) -> dict[str, Any]:
        return {"pad_fraction": self.pad_fraction, "flip": self.flip}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Augmentation":
        return cls(**dict(config))


def make_pipeline(dataset: ImageDataset, batch_size: int, *, training: bool,
                  seed: int = 0, augmentation: Augmentation | None = None,
                  skip_batches: int = 0, drop_remainder: bool | None = None) -> Any:
    """A ``tf.data.Dataset`` of ``(float32 images in [-1, 1], int32 labels)`` batches.

    ``dataset`` must already be prepared (:func:`prepare_dataset`) at the network's
    resolution and channel count. Training pipelines shuffle (seeded, reshuffled every epoch),
    repeat forever, and augment when ``augmentation`` is given; ``skip_batches`` resumes an
    interrupted run at the same position of the same stream. Evaluation pipelines run once
    in order.
    """
    from mcunet_tf.tf_env import tf

    images = tf.constant(dataset.images)
    labels = tf.constant(dataset.labels)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if not training:
        ds = ds.batch(batch_size, drop_remainder=bool(drop_remainder))
        return ds.map(lambda x, y: (tf.cast(x, tf.float32) * PIXEL_SCALE + PIXEL_OFFSET, y),
                      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    ds = ds.shuffle(len(dataset), seed=seed, reshuffle_each_iteration=True).repeat()
    # One stateless seed pair per element, from an independent seeded stream: augmentation is
    # then a pure function of (seed, element position) whatever the parallelism.
    element_seeds = tf.data.Dataset.random(seed=seed + 1).batch(2)
    ds = tf.data.Dataset.zip((ds, element_seeds))
    if skip_batches:
        ds = ds.skip(skip_batches * batch_size)
    height, width, channels = dataset.image_shape
    aug = augmentation

    def augment(example: tuple[Any, Any], pair: Any) -> tuple[Any, Any]:
        image, label = example
        image = tf.cast(image, tf.float32) * PIXEL_SCALE + PIXEL_OFFSET
        if aug is not None:
            pair = tf.cast(pair % (2 ** 31 - 1), tf.int32)
            pad = max(1, int(round(height * aug.pad_fraction)))
            # Pad with the value of black pixels, as zero-padding of raw images would.
            padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]],
                            constant_values=PIXEL_OFFSET)
            image = tf.image.stateless_random_crop(padded, [height, width, channels],
                                                   seed=pair)
            if aug.flip:
                image = tf.image.stateless_random_flip_left_right(image, seed=pair[::-1])
        return image, label

    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=True if drop_remainder is None else drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)


def representative_images(dataset: ImageDataset, count: int = 200) -> np.ndarray:
    """The first ``count`` prepared images as float network input (for int8 calibration)."""
    return to_float(dataset.images[:count])
