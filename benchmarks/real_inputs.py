"""Real inputs for the benchmark, from the shared data sets (`<repo>/../shared/data`).

Random inputs exercise every code path; real inputs show that the outputs users care about
agree too (and, where the data has labels, how often the model is right). Each model that has
matching data is listed in `MODEL_DATA`; each data set has one loader in `LOADERS`:

- person images (`tflm_person_detection/*.bmp`, 96x96 8-bit grayscale BMP) for
  `tflm_person_detect`: the decoded pixel bytes, top row first, reinterpreted as int8 (that
  is how TFLM's own example feeds the camera bytes to the model);
- MNIST test images (`mnist/t10k-*-ubyte.gz`) for `tinymaix_mnist_resnet_q`: pixels / 255,
  quantized with the model input's scale and zero point;
- CIFAR-10 test images (`cifar10_jpeg/cifar10_jpeg_q75.tar.gz`, 32x32 RGB JPEG) for the two
  CIFAR-10 classifiers: both inputs have zero point -128, their int8 range is the pixel range
  ([0, 255] for ic_resnet, [0, 1] for tinymaix), so q = pixel - 128; taken class by class in
  turn so a few samples cover every class;
- the MLPerf Tiny anomaly-detection feature vectors (`mlperf_tiny/ad_*.bin`, 40 x 640
  float32) for the two anomaly-detection models: as they are for a float32 input, quantized
  for an int8 one.

Everything here is numpy and the standard library, plus Pillow (through mcunet_tf.data, which
imports no TensorFlow) for the JPEGs.
"""
from __future__ import annotations

import dataclasses
import enum
import gzip
import struct
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

import numpy as np


class InputSpec(Protocol):
    """What a loader needs to know about a model input (the generated model's IoTensor)."""

    # read-only members, so that frozen dataclasses (IoTensor) satisfy the protocol
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> str: ...
    @property
    def scale(self) -> Optional[float]: ...
    @property
    def zero_point(self) -> Optional[int]: ...


@dataclasses.dataclass(frozen=True)
class RealInputs:
    """Samples (one list of per-input arrays each), their names, and labels if known."""

    source: str  # data set path relative to the data dir, for the report
    samples: list[list[np.ndarray]]
    names: list[str]
    labels: Optional[list[int]] = None


class RealData(enum.Enum):
    PERSON_IMAGES = "tflm_person_detection"
    MNIST_TEST = "mnist"
    AD_FEATURES = "mlperf_tiny_ad"
    CIFAR10_TEST = "cifar10_jpeg"


# model file stem -> the data set that fits its input
MODEL_DATA: dict[str, RealData] = {
    "tflm_person_detect": RealData.PERSON_IMAGES,
    "tinymaix_mnist_resnet_q": RealData.MNIST_TEST,
    "mlperf_tiny_ad01_int8": RealData.AD_FEATURES,
    "mlperf_tiny_ad_toycar_fullint_floatio": RealData.AD_FEATURES,
    "mlperf_tiny_ic_resnet_quant": RealData.CIFAR10_TEST,
    "tinymaix_cifar10_q": RealData.CIFAR10_TEST,
}

# CIFAR-10's classes in label order (also their sorted folder names in the JPEG tarball)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


class RealInputError(ValueError):
    """The data set is present but does not fit the model (shape, dtype, file format)."""


# ---------------------------------------------------------------------------------------------
# File formats


def read_bmp(path: Path) -> np.ndarray:
    """An uncompressed 8-bit palettized BMP as (height, width) uint8 gray values, top row
    first. Only the format the shared images use; anything else is refused."""
    data = path.read_bytes()
    if len(data) < 54 or data[:2] != b"BM":
        raise RealInputError(f"{path}: not a BMP file")
    pixel_offset = struct.unpack_from("<I", data, 10)[0]
    header_size, width, height, _, bpp, compression = struct.unpack_from("<IiiHHI", data, 14)
    colours = struct.unpack_from("<I", data, 46)[0] or 256
    if bpp != 8 or compression != 0:
        raise RealInputError(f"{path}: {bpp}-bit BMP with compression {compression}; "
                             "only uncompressed 8-bit BMPs are read")
    palette = np.frombuffer(data, np.uint8, colours * 4, 14 + header_size).reshape(colours, 4)
    if not (np.array_equal(palette[:, 0], palette[:, 1]) and np.array_equal(palette[:, 1], palette[:, 2])):
        raise RealInputError(f"{path}: palette is not grayscale")
    rows = abs(height)
    stride = (width + 3) & ~3  # rows are padded to 4 bytes
    raw = np.frombuffer(data, np.uint8, stride * rows, pixel_offset).reshape(rows, stride)[:, :width]
    gray = palette[raw, 0]
    # a positive height means the rows are stored bottom-up
    return np.ascontiguousarray(gray[::-1] if height > 0 else gray)


def read_idx(path: Path) -> np.ndarray:
    """An idx file (MNIST format), gzip-compressed or not."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    zero, dtype_code, ndim = struct.unpack_from(">HBB", raw, 0)
    if zero != 0 or dtype_code != 0x08:
        raise RealInputError(f"{path}: not an unsigned-byte idx file")
    dims = struct.unpack_from(f">{ndim}I", raw, 4)
    return np.frombuffer(raw, np.uint8, int(np.prod(dims)), 4 + 4 * ndim).reshape(dims)


def quantize(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Real values -> the input's integer type, as TFLite's QUANTIZE does it (round half away
    from zero, then saturate)."""
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return x.astype(dtype)
    if spec.scale is None or spec.zero_point is None:
        raise RealInputError(f"input is {dtype} without a per-tensor scale: cannot quantize real data")
    v = np.asarray(x, np.float64) / spec.scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + spec.zero_point
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


def _single_input(specs: Sequence[InputSpec], elements: int, what: str) -> InputSpec:
    if len(specs) != 1 or int(np.prod(specs[0].shape)) != elements:
        shapes = [tuple(s.shape) for s in specs]
        raise RealInputError(f"{what} needs one input of {elements} elements, the model has {shapes}")
    return specs[0]


# ---------------------------------------------------------------------------------------------
# Loaders


def _person_images(data_dir: Path, specs: Sequence[InputSpec], limit: int) -> RealInputs:
    folder = data_dir / RealData.PERSON_IMAGES.value
    files = sorted(folder.glob("*.bmp"))[:limit]
    if not files:
        raise FileNotFoundError(f"no .bmp images in {folder}")
    samples, names, labels = [], [], []
    for f in files:
        gray = read_bmp(f)
        spec = _single_input(specs, gray.size, "a person image")
        if np.dtype(spec.dtype) != np.int8:
            raise RealInputError(f"the person images feed an int8 input, the model's is {spec.dtype}")
        # TFLM's example hands the camera's bytes to the int8 input unchanged
        samples.append([gray.view(np.int8).reshape(spec.shape)])
        names.append(f.name)
        labels.append(0 if f.stem.startswith("no_") else 1)  # outputs are [no_person, person]
    return RealInputs(f"{RealData.PERSON_IMAGES.value}/*.bmp", samples, names, labels)


def _mnist(data_dir: Path, specs: Sequence[InputSpec], limit: int) -> RealInputs:
    folder = data_dir / RealData.MNIST_TEST.value
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")[:limit]
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")[:limit]
    spec = _single_input(specs, images[0].size, "an MNIST image")
    samples = [[quantize(img.astype(np.float64) / 255.0, spec).reshape(spec.shape)] for img in images]
    return RealInputs(f"{RealData.MNIST_TEST.value}/t10k-images-idx3-ubyte.gz", samples,
                      [f"t10k[{i}]" for i in range(len(samples))], [int(v) for v in labels])


def _ad_features(data_dir: Path, specs: Sequence[InputSpec], limit: int) -> RealInputs:
    files = sorted((data_dir / "mlperf_tiny").glob("ad_*.bin"))
    if not files:
        raise FileNotFoundError(f"no ad_*.bin feature file in {data_dir / 'mlperf_tiny'}")
    if len(specs) != 1:
        raise RealInputError(f"a feature vector feeds one input, the model has {len(specs)}")
    spec = specs[0]
    width = int(np.prod(spec.shape))
    features = np.fromfile(files[0], dtype="<f4")
    if features.size % width:
        raise RealInputError(f"{files[0].name} holds {features.size} floats, not rows of "
                             f"the model's {width}-element input")
    rows = features.reshape(-1, width)[:limit]
    samples = [[quantize(row, spec).reshape(spec.shape)] for row in rows]
    return RealInputs(f"mlperf_tiny/{files[0].name}", samples, [f"row {i}" for i in range(len(rows))])


def _cifar10_test(data_dir: Path, specs: Sequence[InputSpec], limit: int) -> RealInputs:
    from mcunet_tf.data import decode_image, iter_tar_images

    tarball = data_dir / RealData.CIFAR10_TEST.value / "cifar10_jpeg_q75.tar.gz"
    if not tarball.is_file():
        raise FileNotFoundError(f"no {tarball}")
    per_class = -(-limit // len(CIFAR10_CLASSES))
    picked: dict[str, list[tuple[str, bytes]]] = {c: [] for c in CIFAR10_CLASSES}
    for name, data in iter_tar_images(tarball):
        parts = name.split("/")
        if len(parts) < 3 or parts[-3] != "test":
            if any(picked.values()):
                break  # the archive keeps the test split together: past it
            continue
        chosen = picked.get(parts[-2])
        if chosen is not None and len(chosen) < per_class:
            chosen.append((name, data))
        if all(len(v) == per_class for v in picked.values()):
            break
    samples: list[list[np.ndarray]] = []
    names: list[str] = []
    labels: list[int] = []
    for k in range(per_class):  # class by class in turn
        for label, cls in enumerate(CIFAR10_CLASSES):
            if k < len(picked[cls]) and len(samples) < limit:
                name, data = picked[cls][k]
                img = decode_image(data, None, 3)
                spec = _single_input(specs, img.size, "a CIFAR-10 image")
                if np.dtype(spec.dtype) != np.int8 or spec.zero_point != -128:
                    raise RealInputError("CIFAR-10 pixels feed an int8 input with zero point -128 "
                                         f"(the pixel range), the model's is {spec.dtype} "
                                         f"zero point {spec.zero_point}")
                # the int8 range is the pixel range: q = pixel - 128, whatever the scale
                samples.append([(img.astype(np.int16) - 128).astype(np.int8).reshape(spec.shape)])
                names.append(name)
                labels.append(label)
    if not samples:
        raise RealInputError(f"no test/<class>/ images in {tarball}")
    return RealInputs(f"{RealData.CIFAR10_TEST.value}/cifar10_jpeg_q75.tar.gz (test)", samples, names, labels)


LOADERS: dict[RealData, Callable[[Path, Sequence[InputSpec], int], RealInputs]] = {
    RealData.PERSON_IMAGES: _person_images,
    RealData.MNIST_TEST: _mnist,
    RealData.AD_FEATURES: _ad_features,
    RealData.CIFAR10_TEST: _cifar10_test,
}


def real_inputs_for(model_stem: str, specs: Sequence[InputSpec], data_dir: Optional[Path],
                    limit: int = 20) -> Optional[RealInputs]:
    """Real samples for the model named `model_stem` (its file stem), at most `limit`; None
    when no data set fits it or the data dir is absent. Raises RealInputError when the data
    is there but does not fit the model."""
    kind = MODEL_DATA.get(model_stem)
    if kind is None or data_dir is None or not data_dir.is_dir() or limit <= 0:
        return None
    return LOADERS[kind](data_dir, specs, limit)


__all__ = ["RealInputs", "RealData", "RealInputError", "MODEL_DATA", "LOADERS", "read_bmp",
           "read_idx", "quantize", "real_inputs_for"]
