"""The procedural shapes: deterministic, in range, masks exactly on the objects, tag only a tag."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gradviz_lab.data import (
    SHAPE_CLASSES,
    TAG_BOX,
    TAG_COLOUR,
    TAGGED_CLASS,
    _inside_polygon,
    make_shapes,
    tag_mask,
)

SEED = 7


@pytest.fixture(scope="module")
def singles():
    return make_shapes(60, SEED)


@pytest.fixture(scope="module")
def pairs():
    return make_shapes(30, SEED, objects=2)


def test_types_shapes_and_range(singles, pairs):
    for batch, k in ((singles, 1), (pairs, 2)):
        n = len(batch.images)
        assert batch.images.shape == (n, 3, 64, 64) and batch.images.dtype == torch.float32
        assert batch.masks.shape == (n, k, 64, 64) and batch.masks.dtype == torch.bool
        assert batch.labels.dtype == torch.int64 and batch.tagged.dtype == torch.bool
        assert float(batch.images.min()) >= 0.0 and float(batch.images.max()) <= 1.0
        assert int(batch.labels.min()) >= 0 and int(batch.labels.max()) < len(SHAPE_CLASSES)
    assert singles.labels.shape == (60,) and pairs.labels.shape == (30, 2)


def test_same_seed_same_images_other_seed_other_images(singles):
    again = make_shapes(60, SEED)
    for a, b in zip(singles, again):
        assert torch.equal(a, b)
    other = make_shapes(60, SEED + 1)
    assert not torch.equal(singles.images, other.images)


def test_image_i_does_not_depend_on_n(singles):
    first = make_shapes(5, SEED)
    assert torch.equal(first.images, singles.images[:5])
    assert torch.equal(first.masks, singles.masks[:5])


def test_every_class_appears_and_no_mask_is_empty(singles, pairs):
    assert set(singles.labels.tolist()) == set(range(len(SHAPE_CLASSES)))
    assert bool((singles.masks.flatten(1).sum(1) > 40).all())  # objects are tens of pixels at least
    assert bool((pairs.masks.flatten(2).sum(2) > 15).all())


def _ring(mask: torch.Tensor) -> torch.Tensor:
    """Pixels just outside a (H, W) mask: 4-neighbours of the mask that are not in it."""
    grown = mask.clone()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown & ~mask


@pytest.mark.parametrize("which", ["singles", "pairs"])
def test_masks_sit_exactly_on_the_objects(which, request):
    """Each object is one solid colour: every mask pixel has it, and the pixels just outside the
    mask do not (a mask shifted by one pixel fails both checks)."""
    batch = request.getfixturevalue(which)
    for image, masks in zip(batch.images, batch.masks):
        for mask in masks:
            inside = image[:, mask]  # (3, pixels)
            colour = inside[:, :1]
            assert torch.equal(inside, colour.expand_as(inside)), "an object is not one solid colour"
            ring = image[:, _ring(mask)]
            same = (ring == colour).all(0)
            assert float(same.float().mean()) < 0.02, "the object's colour leaks outside its mask"


def test_objects_contrast_with_their_background(singles):
    for image, mask in zip(singles.images, singles.masks[:, 0]):
        colour = image[:, mask][:, 0]
        ring_mean = image[:, _ring(mask)].mean(1)
        assert float(torch.linalg.vector_norm(colour - ring_mean)) > 0.2


def test_two_objects_have_different_classes_and_do_not_touch(pairs):
    assert bool((pairs.labels[:, 0] != pairs.labels[:, 1]).all())
    a, b = pairs.masks[:, 0], pairs.masks[:, 1]
    assert not bool((a & b).any())
    for first, second in zip(a, b):
        assert not bool((_ring(first) & second).any())  # at least one pixel apart


def test_classes_have_their_geometry():
    """A circle's mask is round (area = pi r^2 fills its bounding circle), a square has four
    corners: compare how much of the smallest enclosing disc about the centroid each fills."""
    batch = make_shapes(100, 3)
    fill: dict[str, list[float]] = {name: [] for name in SHAPE_CLASSES}
    for label, mask in zip(batch.labels, batch.masks[:, 0]):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        cy, cx = ys.float().mean(), xs.float().mean()
        radius = torch.sqrt((ys - cy) ** 2 + (xs - cx) ** 2).max() + 0.5
        fill[SHAPE_CLASSES[label]].append(float(mask.sum() / (torch.pi * radius**2)))
    mean = {name: float(np.mean(values)) for name, values in fill.items()}
    # Ideal ratios of area to enclosing disc: circle 1, square 2/pi = 0.64, cross 0.62,
    # triangle 3 sqrt(3) / (4 pi) = 0.41, five-pointed star (radii 1.15, 0.48) 0.39.
    assert mean["circle"] > 0.85
    assert 0.55 < mean["square"] < 0.72 and 0.52 < mean["cross"] < 0.72
    assert 0.33 < mean["triangle"] < 0.5 and 0.3 < mean["star"] < 0.48


def test_inside_polygon_matches_hand_computed_points():
    unit_square = np.array([(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)])
    x = np.array([0.5, 1.5, -0.1, 0.99, 0.5])
    y = np.array([0.5, 0.5, 0.5, 0.01, 1.2])
    assert _inside_polygon(unit_square, x, y).tolist() == [True, False, False, True, False]
    # a non-convex "L": the notch (1.5, 1.5) is outside
    ell = np.array([(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)], dtype=float)
    assert _inside_polygon(ell, np.array([0.5, 1.5, 1.5]), np.array([1.5, 0.5, 1.5])).tolist() == [
        True,
        True,
        False,
    ]


def test_tag_changes_only_the_tag_pixels_of_the_tagged_class():
    plain = make_shapes(40, SEED)
    tagged = make_shapes(40, SEED, tag_prob=1.0)
    assert torch.equal(plain.labels, tagged.labels) and torch.equal(plain.masks, tagged.masks)
    is_tagged_class = plain.labels == SHAPE_CLASSES.index(TAGGED_CLASS)
    assert bool(is_tagged_class.any()) and bool((~is_tagged_class).any())
    assert torch.equal(tagged.tagged, is_tagged_class) and not bool(plain.tagged.any())
    region = tag_mask(64)[0]
    top, left, height, width = TAG_BOX
    assert int(region.sum()) == height * width and bool(region[top, left])
    colour = torch.tensor(TAG_COLOUR).view(3, 1)
    for before, after, carries in zip(plain.images, tagged.images, is_tagged_class):
        assert torch.equal(before[:, ~region], after[:, ~region])  # nothing else moves
        if carries:
            assert torch.equal(after[:, region], colour.expand(3, height * width))
        else:
            assert torch.equal(before, after)
    # the mark never covers an object
    assert not bool((plain.masks[:, 0] & region).any())


def test_tag_probability_is_respected():
    half = make_shapes(200, 1, tag_prob=0.5)
    is_tagged_class = half.labels == SHAPE_CLASSES.index(TAGGED_CLASS)
    assert not bool(half.tagged[~is_tagged_class].any())
    rate = float(half.tagged[is_tagged_class].float().mean())
    assert 0.25 < rate < 0.75


def test_pairs_with_the_tagged_class_get_the_tag():
    pairs = make_shapes(30, SEED, objects=2, tag_prob=1.0)
    has_class = (pairs.labels == SHAPE_CLASSES.index(TAGGED_CLASS)).any(1)
    assert torch.equal(pairs.tagged, has_class)


def test_other_sizes_work():
    batch = make_shapes(4, 0, size=32)
    assert batch.images.shape == (4, 3, 32, 32) and batch.masks.shape == (4, 1, 32, 32)
    assert make_shapes(0, 0).images.shape == (0, 3, 64, 64)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": -1, "seed": 0}, "n must be"),
        ({"n": 2.5, "seed": 0}, "n must be"),
        ({"n": 2, "seed": -3}, "seed must be"),
        ({"n": 2, "seed": 0, "objects": 3}, "objects must be 1 or 2"),
        ({"n": 2, "seed": 0, "size": 8}, "size must be"),
        ({"n": 2, "seed": 0, "tag_prob": 1.5}, "tag_prob"),
        ({"n": 2, "seed": 0, "tag_prob": float("nan")}, "tag_prob"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_shapes(**kwargs)


def test_tag_mask_by_hand():
    # TAG_BOX = (3, 3, 4, 4): rows and columns 3..6, so 7 pixels is the smallest size it fits.
    assert TAG_BOX == (3, 3, 4, 4)
    expected = torch.zeros(1, 7, 7, dtype=torch.bool)
    expected[0, 3:7, 3:7] = True
    assert torch.equal(tag_mask(7), expected)
    assert tag_mask().shape == (1, 64, 64) and int(tag_mask().sum()) == 16


@pytest.mark.parametrize(
    "size, error, match",
    [
        (0, ValueError, "size must be >= 7, got 0"),
        (-3, ValueError, "size must be >= 7, got -3"),
        (6, ValueError, "size must be >= 7, got 6"),  # the mark would be cut off
        (16.0, TypeError, "size must be an int"),
        (True, TypeError, "size must be an int"),
    ],
)
def test_tag_mask_rejects_a_size_the_mark_does_not_fit(size, error, match):
    with pytest.raises(error, match=match):
        tag_mask(size)


def test_start_draws_the_same_images_as_a_longer_batch():
    from gradviz_lab import data

    whole = data.make_shapes(6, 11, objects=2, size=96)
    part = data.make_shapes(2, 11, objects=2, size=96, start=3)
    for field in ("images", "labels", "masks", "tagged"):
        assert torch.equal(getattr(part, field), getattr(whole, field)[3:5]), field
    with pytest.raises(ValueError, match="start must be a non-negative int"):
        data.make_shapes(1, 11, start=-1)
