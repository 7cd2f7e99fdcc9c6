"""Full MNIST and CIFAR-10 through torchvision, tested offline on tiny files written here in each
dataset's own on-disk format (nothing is downloaded)."""

from __future__ import annotations

import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision

from gradviz_lab.data import CIFAR10_CLASSES, DatasetUnavailableError, load_cifar10, load_mnist_full


def _write_idx(path, array: np.ndarray) -> None:
    """The idx format of LeCun's MNIST files: magic (0, 0, type 0x08 = ubyte, ndim), big-endian
    int32 sizes, then the raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    raw = tmp_path / "MNIST" / "raw"  # where torchvision.datasets.MNIST looks
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sets = {}
    for prefix, n in (("train", 5), ("t10k", 3)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        sets[prefix] = (images, labels)
    return tmp_path, sets


@pytest.mark.parametrize("train, prefix", [(True, "train"), (False, "t10k")])
def test_mnist_idx_files_are_read(tiny_mnist, train, prefix):
    root, sets = tiny_mnist
    images, labels = load_mnist_full(root, train=train)
    expected_images, expected_labels = sets[prefix]
    assert images.shape == (len(expected_labels), 1, 28, 28) and images.dtype == torch.float32
    assert torch.equal(images[:, 0], torch.from_numpy(expected_images).float() / 255)
    assert labels.dtype == torch.int64 and labels.tolist() == expected_labels.tolist()


def test_mnist_missing_is_a_clear_error_without_download(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="download=True"):
        load_mnist_full(tmp_path / "nothing here")


def _write_cifar(root, rng):
    """Five training batches, a test batch and batches.meta, pickled as in the official release:
    dicts with 'data' (N, 3072) uint8 in R, G, B planes of 32x32 and 'labels' (list of ints)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, 2).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels}, f)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES), "num_vis": 3072}, f)
    return folder, written


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def tiny_cifar(tmp_path, monkeypatch):
    """torchvision checks each CIFAR file's md5 against the official release before loading it.
    Our tiny files have other checksums, so for this test we register theirs in the class's own
    lists (monkeypatch restores them): the real integrity check still runs, on our files."""
    folder, written = _write_cifar(tmp_path, np.random.default_rng(1))
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, _md5(folder / n)] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, _md5(folder / n)] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / "batches.meta")})
    return tmp_path, written


def test_cifar10_train_batches_are_read_in_order(tiny_cifar):
    root, written = tiny_cifar
    images, labels = load_cifar10(root, train=True)
    assert images.shape == (10, 3, 32, 32) and images.dtype == torch.float32
    rows = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    # each row is 1024 red, then 1024 green, then 1024 blue values, row-major 32x32
    assert torch.equal(images, torch.from_numpy(rows.reshape(10, 3, 32, 32)).float() / 255)
    expected = sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert labels.dtype == torch.int64 and labels.tolist() == expected


def test_cifar10_test_batch(tiny_cifar):
    root, written = tiny_cifar
    images, labels = load_cifar10(root, train=False)
    data, expected = written["test_batch"]
    assert torch.equal(images, torch.from_numpy(data.reshape(2, 3, 32, 32)).float() / 255)
    assert labels.tolist() == expected


def test_cifar10_with_wrong_checksums_is_a_clear_error(tmp_path):
    """Without registering our files' checksums, torchvision's integrity check rejects them."""
    _write_cifar(tmp_path, np.random.default_rng(2))
    with pytest.raises(DatasetUnavailableError, match="CIFAR10.*download=True"):
        load_cifar10(tmp_path)
