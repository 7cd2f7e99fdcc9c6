"""What a training step of ``gradviz train`` sees: the training images of a lab model, and each
batch as its recipe transforms it (random affine warps, noise, mixup toward the baseline, PGD
attacks), drawn from one seeded generator so that a run is reproducible.
``gradviz_lab.train`` re-exports these names."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from . import attacks, hooks
from .attribution.integrated import make_baseline
from .data import load_digits, make_shapes

if TYPE_CHECKING:  # train imports this module: only the type, to avoid the import cycle
    from .train import Recipe

SHAPES_TRAIN_SEED = 0


def training_data(name: str, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
    if name.startswith("digits"):
        images, labels = load_digits("train")
        if recipe.n_train > len(images):
            raise ValueError(f"n_train={recipe.n_train} but only {len(images)} training digits are shipped")
        # The shipped split is sorted by digit: take evenly spaced images so any n is balanced.
        index = torch.arange(recipe.n_train) * len(images) // recipe.n_train
        return images[index], labels[index]
    shapes = make_shapes(recipe.n_train, SHAPES_TRAIN_SEED + recipe.seed, tag_prob=recipe.tag_prob)
    return shapes.images, shapes.labels


def random_affine(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Small random rotations (+-10 deg), scalings (0.9-1.1) and shifts (+-2 px) of a batch.

    Digits written by hand vary in exactly these ways; seeing them teaches invariance that 4,000
    examples alone do not.
    """
    n, _, height, width = images.shape
    uniform = lambda low, high: low + (high - low) * torch.rand(n, generator=generator)  # noqa: E731
    angle = uniform(-10, 10) * math.pi / 180
    scale = uniform(0.9, 1.1)
    shift_x, shift_y = uniform(-2, 2) * 2 / width, uniform(-2, 2) * 2 / height  # in [-1, 1] units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )  # (n, 2, 3): output pixel -> where to sample in the input
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def add_noise(images: torch.Tensor, max_sigma: float, generator: torch.Generator) -> torch.Tensor:
    """x + sigma * N(0, 1) per pixel, with one sigma per image drawn uniformly in [0, max_sigma].

    A model that has seen noisy copies keeps its class on SmoothGrad's noisy samples.
    """
    sigma = max_sigma * torch.rand(len(images), 1, 1, 1, generator=generator)
    return images + sigma * torch.randn(images.shape, generator=generator)


def toward_baseline(
    images: torch.Tensor, targets: torch.Tensor, prob: float, baseline: str, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each image, with probability ``prob``, to a random point of the straight path from its
    baseline x' to it, and its target toward uniform in the same proportion (mixup, Zhang et al.
    2018, with the baseline as the partner image):

        x~ = x' + a (x - x'),   t~ = a t + (1 - a) / C,   a ~ U(0, 1)  (a = 1: left as it was)

    These are the images integrated gradients and insertion feed the model; a model trained on them
    changes more evenly along the path (measured: about 2-4x less quadrature error at 64 steps).
    targets: (B, C) class probabilities. Returns the new images and targets.
    """
    moved = (torch.rand(len(images), generator=generator) < prob).to(images.dtype)
    a = 1 - moved * torch.rand(len(images), generator=generator)
    start = make_baseline(images, baseline)
    mixed = start + a.view(-1, 1, 1, 1) * (images - start)
    return mixed, a.view(-1, 1) * targets + (1 - a.view(-1, 1)) / targets.shape[1]


def batches(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(len(images), generator=generator)
    for start in range(0, len(images), batch_size):
        index = order[start : start + batch_size]
        yield images[index], labels[index]


def recipe_batches(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe: Recipe,
    generator: torch.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (images, targets) batches in a seeded order, each transformed as the recipe
    says, in this order: affine warp, mixup toward the baseline (the targets become class
    probabilities), noise, PGD attack. Lazy: an attack is made on the model as it is when its
    batch is asked for."""
    for x, y in batches(images, labels, recipe.batch_size, generator):
        if recipe.augment == "affine":
            x = random_affine(x, generator)
        target = y  # class indices, or class probabilities once mixed
        if recipe.baseline_mixup > 0:
            probabilities = F.one_hot(y, len(model.classes)).to(x.dtype)
            x, target = toward_baseline(x, probabilities, recipe.baseline_mixup, recipe.mixup_baseline, generator)
        if recipe.noise > 0:
            x = add_noise(x, recipe.noise, generator)
        if recipe.adversarial_epsilon > 0:
            x = adversarial_batch(model, x, y, recipe, generator)
        yield x, target


def adversarial_batch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: Recipe, generator: torch.Generator
) -> torch.Tensor:
    """The batch's L-infinity PGD attack at the recipe's epsilon, made on the model as it is now
    (in eval mode; the random start drawn from a seed the training generator gives, so the run
    stays deterministic). Training on it minimises the loss at the worst point of each ball:
    min_theta E max_{||delta|| <= eps} L(x + delta, y) (Madry et al. 2018)."""
    seed = int(torch.randint(2**31, (1,), generator=generator))
    with hooks.preserved_state(model):  # the attack runs the model in eval mode; training resumes
        model.eval()
        return attacks.pgd(model, x.clamp(0, 1), epsilon=recipe.adversarial_epsilon,
                           steps=recipe.adversarial_steps, labels=y, seed=seed)
