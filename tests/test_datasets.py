"""Data sets: MNIST IDX files read from disk (plain and gzipped), scikit-learn's digits, and `next_batch`."""

import gzip
import struct

import numpy as np
import pytest

import fuseflow as tf
from fuseflow.datasets import DataSet, load_digits, read_data_sets

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: magic (0, 0, type 0x08 = ubyte, ndim) and big-endian uint32 dims, then the bytes."""
    magic = 0x0800 | array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(directory, n_train=12, n_test=5, rows=28, cols=28, gz=False, seed=0):
    rng = np.random.RandomState(seed)
    data = {
        MNIST_NAMES[0]: rng.randint(0, 256, size=(n_train, rows, cols)),
        MNIST_NAMES[1]: rng.randint(0, 10, size=n_train),
        MNIST_NAMES[2]: rng.randint(0, 256, size=(n_test, rows, cols)),
        MNIST_NAMES[3]: rng.randint(0, 10, size=n_test),
    }
    for name, array in data.items():
        raw = idx_bytes(array)
        if gz:
            with gzip.open(directory / (name + ".gz"), "wb") as f:
                f.write(raw)
        else:
            (directory / name).write_bytes(raw)
    return data


# ----------------------------------------------------------------------------- IDX files


def test_idx_header_magic_numbers_are_the_standard_ones():
    assert struct.unpack(">I", idx_bytes(np.zeros((2, 3, 4)))[:4])[0] == 2051
    assert struct.unpack(">I", idx_bytes(np.zeros(2))[:4])[0] == 2049


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_read_data_sets_shapes_scaling_and_labels(tmp_path, gz):
    data = write_mnist(tmp_path, n_train=12, n_test=5, gz=gz)
    mnist = read_data_sets(tmp_path, validation_size=4)
    assert mnist.train.images.shape == (8, 784) and mnist.validation.images.shape == (4, 784)
    assert mnist.test.images.shape == (5, 784)
    assert mnist.train.images.dtype == np.float32
    assert mnist.train.images.min() >= 0.0 and mnist.train.images.max() <= 1.0
    train_images = data[MNIST_NAMES[0]].reshape(12, 784)
    np.testing.assert_allclose(mnist.validation.images, train_images[:4] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(mnist.train.images, train_images[4:] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(mnist.train.labels, data[MNIST_NAMES[1]][4:])
    np.testing.assert_array_equal(mnist.test.labels, data[MNIST_NAMES[3]])
    assert mnist.train.num_examples == 8 and mnist.test.num_examples == 5


def test_read_data_sets_one_hot(tmp_path):
    data = write_mnist(tmp_path, n_train=6, n_test=3)
    mnist = read_data_sets(str(tmp_path), one_hot=True, validation_size=0)
    assert mnist.train.labels.shape == (6, 10) and mnist.train.labels.dtype == np.float32
    np.testing.assert_array_equal(mnist.train.labels.argmax(1), data[MNIST_NAMES[1]])
    np.testing.assert_array_equal(mnist.train.labels.sum(1), np.ones(6))
    assert mnist.validation.num_examples == 0


def test_validation_size_is_clipped_to_small_files(tmp_path):
    write_mnist(tmp_path, n_train=7, n_test=2)
    mnist = read_data_sets(tmp_path)  # the default validation_size=5000 exceeds the 7 training images
    assert mnist.validation.num_examples == 7 and mnist.train.num_examples == 0


def test_read_data_sets_without_reshape_keeps_the_image_axes(tmp_path):
    write_mnist(tmp_path, n_train=3, n_test=2, rows=4, cols=5)
    mnist = read_data_sets(tmp_path, reshape=False, validation_size=1)
    assert mnist.train.images.shape == (2, 4, 5, 1) and mnist.test.images.shape == (2, 4, 5, 1)


def test_missing_files_give_one_error_naming_them_and_the_directory(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError) as info:
        read_data_sets(tmp_path)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "train-images-idx3-ubyte" not in message
    assert str(tmp_path) in message


def test_empty_directory_names_all_four_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        read_data_sets(tmp_path / "nowhere")
    assert all(name in str(info.value) for name in MNIST_NAMES)


def test_bad_magic_number_is_reported(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / MNIST_NAMES[1]).write_bytes(idx_bytes(np.zeros((12, 28, 28))))  # an image file as labels
    with pytest.raises(ValueError, match="magic number 2051, expected 2049"):
        read_data_sets(tmp_path)


# ----------------------------------------------------------------------------- next_batch


def test_next_batch_walks_epochs_and_wraps_around():
    images = np.arange(10, dtype=np.float32).reshape(10, 1)
    ds = DataSet(images, np.arange(10), seed=0)
    seen = []
    for _ in range(5):  # 4 * 3 = 12 examples: the first epoch, then 2 of the second
        xs, ys = ds.next_batch(3)
        assert xs.shape == (3, 1) and ys.shape == (3,)
        np.testing.assert_array_equal(xs[:, 0], ys)  # images and labels stay paired through shuffles
        seen.append(ys)
    first_epoch = np.concatenate(seen)[:10]
    assert sorted(first_epoch) == list(range(10))
    assert ds.epochs_completed == 1
    assert not np.array_equal(first_epoch, np.arange(10))  # shuffled


def test_next_batch_without_shuffle_is_in_order_and_wraps():
    ds = DataSet(np.arange(5, dtype=np.float32)[:, None], np.arange(5))
    got = [ds.next_batch(2, shuffle=False)[1].tolist() for _ in range(4)]
    assert got == [[0, 1], [2, 3], [4, 0], [1, 2]]


def test_next_batch_larger_than_the_data_set_spans_epochs():
    ds = DataSet(np.arange(3, dtype=np.float32)[:, None], np.arange(3))
    _, ys = ds.next_batch(7, shuffle=False)
    assert ys.tolist() == [0, 1, 2, 0, 1, 2, 0] and ds.epochs_completed == 2


# ----------------------------------------------------------------------------- scikit-learn's digits


def test_load_digits_shapes_and_scaling():
    digits = load_digits(one_hot=True)
    total = digits.train.num_examples + digits.validation.num_examples + digits.test.num_examples
    assert total == 1797
    assert digits.validation.num_examples > 0
    for part in digits:
        assert part.images.dtype == np.float32 and part.images.shape[1] == 64
        assert part.labels.dtype == np.float32 and part.labels.shape == (part.num_examples, 10)
        assert part.images.min() >= 0.0 and part.images.max() <= 1.0
    assert digits.train.images.max() == 1.0
    np.testing.assert_array_equal(digits.train.labels.sum(1), 1.0)


def test_load_digits_integer_labels_and_fractions():
    digits = load_digits(one_hot=False, test_fraction=0.5, seed=3)
    assert digits.test.num_examples == round(1797 * 0.5)
    assert digits.train.labels.dtype.kind == "i" and set(np.unique(digits.train.labels)) == set(range(10))


def test_load_digits_is_reproducible_by_seed():
    a, b = load_digits(seed=1), load_digits(seed=1)
    np.testing.assert_array_equal(a.test.images, b.test.images)
    np.testing.assert_array_equal(a.train.next_batch(50)[0], b.train.next_batch(50)[0])


def test_load_digits_batches_cover_the_training_set():
    train = load_digits(one_hot=True).train
    n = train.num_examples
    rows = [train.next_batch(100)[0] for _ in range(-(-n // 100))]
    covered = np.concatenate(rows)[:n]
    assert {r.tobytes() for r in covered} == {r.tobytes() for r in train.images}


def test_facade_exposes_datasets():
    assert tf.datasets.load_digits is load_digits and tf.datasets.read_data_sets is read_data_sets
