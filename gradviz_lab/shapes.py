"""Shapes: a procedural dataset with ground truth (``gradviz_lab.data`` re-exports it).

Coloured shapes on noisy, gradient or textured backgrounds, with one ground-truth mask per object,
so a saliency map can be *scored* against where the object is. Two-object images (``objects=2``)
test class discrimination; the tagged variant (``tag_prob > 0``) paints a small spurious mark on
one class, for the shortcut-learning lesson. Images are float32 in [0, 1], channels first.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ._checks import check_number, check_positive_int
from .shipped import shipped_file

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star")
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
        with Image.open(shipped_file("data", "textures", f"{name}.png")) as image:
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
