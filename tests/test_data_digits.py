"""The shipped MNIST digits: format, split, balance, and what the file really holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradviz_lab.data import DIGIT_CLASSES, load_digits
from gradviz_lab.shipped import shipped_file


@pytest.mark.parametrize("split, n", [("train", 4000), ("test", 1000)])
def test_shapes_dtypes_range_and_balance(split, n):
    images, labels = load_digits(split)
    assert images.shape == (n, 1, 28, 28) and images.dtype == torch.float32
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert torch.bincount(labels, minlength=10).tolist() == [n // 10] * 10
    assert len(DIGIT_CLASSES) == 10 and DIGIT_CLASSES[3] == "3"


def test_pixels_are_the_stored_bytes_divided_by_255():
    with np.load(shipped_file("data", "digits.npz")) as archive:
        raw = archive["test_images"]
    assert raw.dtype == np.uint8 and raw.shape == (1000, 28, 28)
    images, _ = load_digits("test")
    expected = torch.from_numpy(raw.astype(np.float32) / 255.0).unsqueeze(1)
    assert torch.equal(images, expected)


def test_train_and_test_share_no_image():
    train, _ = load_digits("train")
    test, _ = load_digits("test")
    train_keys = {bytes((img * 255).round().to(torch.uint8).numpy()) for img in train}
    assert not any(bytes((img * 255).round().to(torch.uint8).numpy()) in train_keys for img in test)


def test_digits_look_like_mnist():
    """MNIST digits are centred by their centre of mass in a 28x28 frame with a blank border."""
    images, _ = load_digits("test")
    frame = torch.ones(28, 28, dtype=torch.bool)
    frame[2:-2, 2:-2] = False  # the outer two rows and columns
    assert float(images[..., frame].mean()) < 0.01 < 0.3 < float(images[..., 12:16, 12:16].mean())
    ys = torch.arange(28, dtype=torch.float32).view(1, 1, 28, 1)
    centre_y = (images * ys).sum((1, 2, 3)) / images.sum((1, 2, 3))
    assert abs(float(centre_y.mean()) - 13.5) < 1.5


def test_returned_tensors_are_fresh_copies():
    images, labels = load_digits("test")
    images.zero_()
    labels.zero_()
    again, labels_again = load_digits("test")
    assert float(again.max()) == 1.0 and int(labels_again.max()) == 9


def test_unknown_split_is_a_clear_error():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_digits("validation")
