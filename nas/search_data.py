"""The search's data: loaded once, checked, with one-line explanations of bad input."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from nas.settings import SearchInputError

# Data sets addressable by --dataset (mcunet_tf.data.DatasetKind), without importing
# TensorFlow to list them.
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "image_folder")


def check_data_location(dataset: str, data_dir: Optional[str]) -> None:
    """Fails fast, before TensorFlow is imported, on what can be told from names alone."""
    if dataset not in DATASETS:
        raise SearchInputError(f"unknown data set {dataset!r}: known are {', '.join(DATASETS)}")
    if dataset == "digits":
        return
    if not data_dir:
        raise SearchInputError(f"data set {dataset!r} needs --data_dir")
    path = Path(data_dir)
    if not path.exists():
        raise SearchInputError(f"data folder {data_dir} does not exist")
    if path.is_dir() and not any(path.iterdir()):
        raise SearchInputError(f"data folder {data_dir} is empty")


def load_splits(dataset: str, data_dir: Optional[str], seed: int):
    """The train / holdout / test splits, or a SearchInputError saying what is wrong."""
    from mcunet_tf.data import load_dataset

    check_data_location(dataset, data_dir)
    try:
        splits = load_dataset(dataset, data_dir, seed=seed)
    except (OSError, ValueError, KeyError, EOFError) as e:
        where = f" in {data_dir}" if data_dir else ""
        raise SearchInputError(f"cannot read data set {dataset!r}{where}: {e}") from None
    if splits.num_classes < 2 or len(set(splits.train.labels.tolist())) < 2:
        raise SearchInputError(
            f"data set {dataset!r}{' in ' + data_dir if data_dir else ''} has only one class "
            f"({', '.join(splits.class_names) or 'none'}): a classifier needs at least two")
    for name in ("train", "holdout", "test"):
        if len(getattr(splits, name)) == 0:
            raise SearchInputError(f"data set {dataset!r}: its {name} split is empty")
    return splits
