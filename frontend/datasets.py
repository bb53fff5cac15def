"""Small real data sets behind the classic TF1 tutorial interface (``mnist.train.next_batch(100)``).

`load_digits` wraps scikit-learn's 8x8 handwritten digits (1,797 images shipped
inside scikit-learn, so no network is needed); `read_data_sets` reads the four
MNIST IDX files from a directory the caller filled, gzipped or not, and never
downloads. Both return `Datasets` of three `DataSet`s whose images are float32
in [0, 1], one row per example.
"""

from __future__ import annotations

import gzip
import os
from typing import NamedTuple

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataSet:
    """Images and labels with TF's mnist ``next_batch``: reshuffled each epoch, batches wrap across epochs."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int | None = None) -> None:
        if len(images) != len(labels):
            raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}")
        self._images = images
        self._labels = labels
        self._num_examples = len(images)
        self._epochs_completed = 0
        self._index_in_epoch = 0
        self._rng = np.random.RandomState(seed)

    @property
    def images(self) -> np.ndarray:
        return self._images

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    @property
    def num_examples(self) -> int:
        return self._num_examples

    @property
    def epochs_completed(self) -> int:
        return self._epochs_completed

    def _shuffle(self) -> None:
        perm = self._rng.permutation(self._num_examples)
        self._images = self._images[perm]
        self._labels = self._labels[perm]

    def next_batch(self, batch_size: int, shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The next `batch_size` examples; a batch that crosses an epoch's end takes the rest of this
        epoch and the start of the next (reshuffled when `shuffle`), as TF1's mnist DataSet does."""
        if not 0 < batch_size:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if self._num_examples == 0:
            raise ValueError("next_batch on an empty DataSet")
        start = self._index_in_epoch
        if self._epochs_completed == 0 and start == 0 and shuffle:
            self._shuffle()
        if start + batch_size <= self._num_examples:
            self._index_in_epoch = start + batch_size
            return self._images[start:start + batch_size], self._labels[start:start + batch_size]
        images, labels = [self._images[start:]], [self._labels[start:]]
        needed = batch_size - (self._num_examples - start)
        while True:  # a batch larger than the data set spans several epochs
            self._epochs_completed += 1
            if shuffle:
                self._shuffle()
            take = min(needed, self._num_examples)
            images.append(self._images[:take])
            labels.append(self._labels[:take])
            needed -= take
            if needed == 0:
                self._index_in_epoch = take
                return np.concatenate(images), np.concatenate(labels)


class Datasets(NamedTuple):
    """``train``, ``validation`` and ``test`` splits."""

    train: DataSet
    validation: DataSet
    test: DataSet


def dense_to_one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Integer class labels as float32 one-hot rows."""
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels.astype(np.int64)] = 1.0
    return out


def _split(images, labels, n_validation, n_test, one_hot, seed) -> Datasets:
    if one_hot:
        labels = dense_to_one_hot(labels)
    n_train = len(images) - n_validation - n_test
    parts = [(0, n_train), (n_train, n_train + n_validation), (n_train + n_validation, len(images))]
    sets = [DataSet(images[a:b], labels[a:b], seed=None if seed is None else seed + i)
            for i, (a, b) in enumerate(parts)]
    return Datasets(*sets)


# ----------------------------------------------------------------------------- scikit-learn's digits


def load_digits(one_hot: bool = True, test_fraction: float = 0.2, validation_fraction: float = 0.05,
                seed: int = 0) -> Datasets:
    """scikit-learn's 8x8 digits as ``(N, 64)`` float32 in [0, 1]; a seeded shuffle, then train/validation/test.

    Labels are float32 one-hot ``(N, 10)`` when `one_hot`, else int64 class indices.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:
        raise ImportError("fuseflow.datasets.load_digits needs scikit-learn (pip install scikit-learn, or "
                          "pip install 'fuseflow[test]')") from e
    if not (0 <= test_fraction < 1 and 0 <= validation_fraction < 1 and test_fraction + validation_fraction < 1):
        raise ValueError(f"test_fraction {test_fraction} and validation_fraction {validation_fraction} must be "
                         "in [0, 1) and leave some training data")
    bunch = sk_load_digits()
    images = (np.asarray(bunch.data, dtype=np.float32) / 16.0).astype(np.float32)  # pixel values are 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    perm = np.random.RandomState(seed).permutation(len(images))
    images, labels = images[perm], labels[perm]
    n_test = round(len(images) * test_fraction)
    n_validation = round(len(images) * validation_fraction)
    return _split(images, labels, n_validation, n_test, one_hot, seed)


# ----------------------------------------------------------------------------- MNIST IDX files


def _open(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _read_idx(path: str, magic: int) -> np.ndarray:
    """An IDX file's array: big-endian header (magic, then one uint32 per dim), then uint8 data."""
    with _open(path) as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    found = int(np.frombuffer(raw[:4], dtype=">u4")[0])
    if found != magic:
        raise ValueError(f"{path}: invalid magic number {found}, expected {magic}")
    ndim = found & 0xFF
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says shape {dims} ({int(np.prod(dims))} bytes) but {data.size} bytes "
                         "follow it")
    return data.reshape(dims)


def _find(train_dir: str, name: str) -> str | None:
    for candidate in (name, name + ".gz"):
        path = os.path.join(train_dir, candidate)
        if os.path.isfile(path):
            return path
    return None


def read_data_sets(train_dir, fake_data: bool = False, one_hot: bool = False, dtype=None, reshape: bool = True,
                   validation_size: int = 5000, seed: int | None = None, source_url=None) -> Datasets:
    """MNIST from the four standard IDX files in `train_dir` (each plain or ``.gz``); never downloads.

    Images are float32 in [0, 1] of shape ``(N, 784)`` (``(N, 28, 28, 1)`` when not `reshape`); the first
    `validation_size` training examples (at most all of them) form the validation set.
    """
    if fake_data:
        raise NotImplementedError("read_data_sets(fake_data=True) is not supported")
    if dtype is not None and np.dtype(getattr(dtype, "np", dtype)) != np.float32:
        raise ValueError(f"read_data_sets gives float32 images; dtype={dtype!r} is not supported")
    train_dir = os.fspath(train_dir)
    paths = {name: _find(train_dir, name) for name in MNIST_FILES}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        raise FileNotFoundError(f"MNIST files missing from {os.path.abspath(train_dir)!r}: {', '.join(missing)} "
                                "(each may also be gzipped, with a .gz suffix); fuseflow never downloads them - "
                                "put the files there first")
    sets = []
    for images_name, labels_name in ((MNIST_FILES[0], MNIST_FILES[1]), (MNIST_FILES[2], MNIST_FILES[3])):
        images = _read_idx(paths[images_name], IMAGES_MAGIC)
        labels = _read_idx(paths[labels_name], LABELS_MAGIC)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{paths[images_name]} and {paths[labels_name]}: expected images (N, rows, cols) and "
                             f"labels (N,), got {images.shape} and {labels.shape}")
        images = images.astype(np.float32) / 255.0
        images = images.reshape(len(images), -1) if reshape else images[..., None]
        sets.append((images, labels.astype(np.int64)))
    (train_images, train_labels), (test_images, test_labels) = sets
    n_validation = max(0, min(int(validation_size), len(train_images)))
    if one_hot:
        train_labels, test_labels = dense_to_one_hot(train_labels), dense_to_one_hot(test_labels)
    return Datasets(DataSet(train_images[n_validation:], train_labels[n_validation:], seed=seed),
                    DataSet(train_images[:n_validation], train_labels[:n_validation], seed=seed),
                    DataSet(test_images, test_labels, seed=seed))
