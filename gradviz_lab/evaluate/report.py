"""Every method measured the same way on the same images: the table of lesson 07, and the
shortcut ("Clever Hans") report.

``evaluate_methods`` runs each attribution method on N images with ground-truth masks and scores
its maps on localisation (pointing game, energy inside the object), faithfulness (deletion and
insertion AUC) and the sanity check (similarity to the map of a fully randomised model).
Two controls that never look at the model (a random map and an edge detector) show what a
score means: a method that does no better than they do is not explaining the model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import attribution, hooks, methods
from .._checks import check_flag, check_image_batch, check_images, check_number, check_positive_int
from ..targets import class_indices
from .._forward import run_model
from ..data import SHAPE_CLASSES, TAG_COLOUR, TAGGED_CLASS, tag_mask
from ._maps import boolean_masks
from .faithfulness import deletion_curve, insertion_curve
from .localisation import dilated, energy_pointing_game, pointing_game
from .randomisation import randomisable_layers, randomised_copy
from .similarity import SSIM_WINDOW, spearman, ssim
from .table import Table

MapMethod = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


# --- two controls that ignore the model --------------------------------------------------------


def random_map(model: nn.Module, x: torch.Tensor, target: object = None, seed: int = 0) -> torch.Tensor:
    """Uniform noise, (B, 1, H, W), from a seeded generator: the map of a method that knows nothing."""
    check_image_batch(x)
    generator = torch.Generator().manual_seed(check_positive_int(seed, "seed", minimum=0))
    return torch.rand((len(x), 1, *x.shape[-2:]), generator=generator).to(x.device, x.dtype)


def edge_map(model: nn.Module, x: torch.Tensor, target: object = None) -> torch.Tensor:
    """Image edges (Sobel gradient magnitude, summed over colour channels), (B, 1, H, W).
    Adebayo et al.'s point: an edge detector looks like a saliency map but ignores the model.

    Sobel = a central difference along one axis, smoothed by [1, 2, 1] along the other. It is
    written as single additions and products in a fixed order, not as a convolution, because each
    of those is rounded the same way on every CPU while a convolution's sums are not: the map is
    the same to the last bit everywhere, and flat regions are exactly 0, so the deletion curves
    that rank its pixels are reproducible."""
    check_image_batch(x)
    padded = F.pad(x.detach(), (1, 1, 1, 1), mode="replicate")  # (B, C, H + 2, W + 2)
    across = padded[..., :, 2:] - padded[..., :, :-2]  # d/dx, (B, C, H + 2, W)
    down = padded[..., 2:, :] - padded[..., :-2, :]  # d/dy, (B, C, H, W + 2)
    gx = across[..., :-2, :] + 2 * across[..., 1:-1, :] + across[..., 2:, :]
    gy = down[..., :, :-2] + 2 * down[..., :, 1:-1] + down[..., :, 2:]
    # numpy's sqrt is the processor's own, correctly rounded instruction on every CPU; torch's
    # vectorised sqrt is not (it rounds differently under AVX-512 and without it)
    squared = (gx * gx + gy * gy).cpu().numpy()
    magnitude = torch.from_numpy(np.sqrt(squared)).to(x.device)  # (B, C, H, W)
    total = magnitude[:, 0]
    for channel in range(1, magnitude.shape[1]):  # a fixed order of summation
        total = total + magnitude[:, channel]
    return total.unsqueeze(1)


def quarter_window_occlusion(model: nn.Module, x: torch.Tensor, target: object = None) -> torch.Tensor:
    """Occlusion with windows of 1/4 of the image side, stride 1/8 (7 x 7 windows per image)."""
    side = min(x.shape[-2:])
    return attribution.occlusion(model, x, target, window=max(1, side // 4), stride=max(1, side // 8))


def default_methods(seed: int = 0) -> dict[str, MapMethod]:
    """The kit's methods with settings cheap enough for a notebook cell on a CPU, plus controls.

    The methods are those of the registry's table (``gradviz_lab.methods``, each named by its
    title, called with its ``table`` settings: smoothgrad 10 samples, sigma 0.15; integrated
    gradients 16 Gauss-Legendre steps from black; occlusion windows of 1/4 of the image side,
    stride 1/8; Grad-CAM and its family (but CAM and Eigen-CAM) the last spatial layer; LRP the
    epsilon-plus composite; DeepLIFT from black), after the two controls.
    """
    table: dict[str, MapMethod] = {"random": functools.partial(random_map, seed=seed), "edges": edge_map}
    for name in methods.names("table"):
        method = methods.get(name)
        settings = {k: (seed if k == "seed" and v is None else v) for k, v in method.table.items()}
        function = method.load(for_table=True)
        table[method.title] = functools.partial(function, **settings) if settings else function
    return table


def as_pixel_map(maps: torch.Tensor) -> torch.Tensor:
    """One value per pixel, (B, 1, H, W): kept as is for one channel; for an input-space
    attribution (B, C, H, W), |a| summed over channels (the lecture's ``grad.abs().sum(1)``)."""
    if not isinstance(maps, torch.Tensor) or maps.dim() != 4:
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise ValueError(f"a method must return maps of shape (B, C, H, W), got {shape}")
    return maps.detach() if maps.shape[1] == 1 else maps.detach().abs().sum(dim=1, keepdim=True)


def _labels(labels: torch.Tensor, n: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or len(labels) != n:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a tensor of {n} class indices, shape ({n},), got {shape}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must hold integers, got dtype {labels.dtype}")
    return labels.long()


def _check_classes(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Every label must be a class of the model (checked on one forward pass of one image)."""
    with torch.no_grad():
        n_classes = run_model(model, images[:1]).shape[-1]
    class_indices(torch.zeros(len(labels), n_classes, device=labels.device), labels)


def _methods(methods: Mapping[str, MapMethod] | None, seed: int) -> dict[str, MapMethod]:
    methods = default_methods(seed) if methods is None else dict(methods)
    if not methods or not all(isinstance(k, str) and callable(f) for k, f in methods.items()):
        raise TypeError("methods must be a non-empty dict {name: function(model, x, target) -> maps}")
    return methods


def _mean(values: torch.Tensor) -> float:
    finite = values[values.isfinite()]  # a constant map has no rank correlation (nan)
    return float(finite.double().mean()) if len(finite) else float("nan")


# --- the table ---------------------------------------------------------------------------------


def evaluate_methods(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    methods: Mapping[str, MapMethod] | None = None,
    *,
    steps: int = 10,
    deletion_baseline: str | float | torch.Tensor = 0.0,
    insertion_baseline: str | float | torch.Tensor = "blur",
    tolerance: float = 0.0,
    randomisation: bool = True,
    seed: int = 0,
    batch_size: int | None = None,
    precision: int = 3,
    return_maps: bool = False,
) -> Table | tuple[Table, dict[str, torch.Tensor]]:
    """Score every method on N images whose object masks are known; one table row per method.

    methods: {name: f(model, x, target) -> maps} (default ``default_methods(seed)``). Each method
    explains the *labelled* class of each image; a map with C > 1 channels is reduced to
    |map| summed over channels (``as_pixel_map``). masks: (N, 1, H, W) or (N, H, W), the object of
    the labelled class. Columns (mean over the N images):

    - pointing       hit rate of the pointing game (``pointing_game``, ``tolerance`` in px)   higher is better
    - energy         share of the map's energy on the object (``energy_pointing_game``)       higher is better
    - deletion_auc   AUC of the class probability as pixels are removed (``deletion_curve``)   lower is better
    - insertion_auc  AUC as pixels are restored into a blurred image (``insertion_curve``)     higher is better
    - rand_spearman, rand_ssim: similarity of |map| with the map of the same model with *all*
      its layers re-initialised (``randomised_copy``, Adebayo et al. 2018)                   lower is better

    A mean leaves out the images where a measure is undefined (the rank correlation of a constant
    map, e.g. an all-zero Grad-CAM). The curves use ``steps`` steps, batch_size images per forward
    pass (None: ``deletion_curve``'s choice, sized for a CPU's cache); ``deletion_baseline`` is
    what replaces a removed pixel (black by default, as in RISE; "impute" fills it from the
    remaining pixels, see ``imputation.py``). Cost per method: the
    method twice (trained and randomised model) plus 2 N (steps + 1) forward passes for the
    curves. Deterministic for a given seed (random control
    map, SmoothGrad noise, randomised weights). return_maps=True also returns
    {name: (N, 1, H, W) maps}. The model is left exactly as it was.
    """
    check_images(model, images, "images")
    check_flag(randomisation, "randomisation")
    check_flag(return_maps, "return_maps")
    labels = _labels(labels, len(images)).to(images.device)
    height, width = images.shape[-2:]
    masks = boolean_masks(masks, height, width, len(images)).to(images.device)
    methods = _methods(methods, seed)
    rows, all_maps = [], {}
    with hooks.preserved_state(model):
        _check_classes(model, images, labels)
        # One fully randomised copy (Adebayo et al.'s last step of the cascade) for every method.
        depth = len(randomisable_layers(model))
        random_model = randomised_copy(model, depth, seed=seed) if randomisation else None
        for name, method in methods.items():
            maps = as_pixel_map(method(model, images, labels))
            deletion = deletion_curve(model, images, maps, labels, steps, deletion_baseline, batch_size=batch_size)
            insertion = insertion_curve(model, images, maps, labels, steps, insertion_baseline, batch_size=batch_size)
            row = {
                "method": name,
                "pointing": _mean(pointing_game(maps, masks, tolerance)),
                "energy": _mean(energy_pointing_game(maps, masks)),
                "deletion_auc": _mean(deletion.auc),
                "insertion_auc": _mean(insertion.auc),
            }
            if random_model is not None:
                random_maps = as_pixel_map(method(random_model, images, labels))
                row["rand_spearman"] = _mean(spearman(maps, random_maps))
                big_enough = min(height, width) >= SSIM_WINDOW
                row["rand_ssim"] = _mean(ssim(maps, random_maps)) if big_enough else float("nan")
            rows.append(row)
            all_maps[name] = maps
    title = (
        f"{len(images)} images; higher is better: pointing, energy, insertion_auc; "
        "lower is better: deletion_auc" + (", rand_spearman, rand_ssim" if randomisation else "")
    )
    table = Table(rows, title=title, precision=precision)
    return (table, all_maps) if return_maps else table


# --- the shortcut ("Clever Hans") report ------------------------------------------------------


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Fraction of images whose predicted class (the largest logit) is the label: (number right) / N.

    The kit's one accuracy (training, diagnostics and this report use it). The model runs in eval
    mode, as a trained model is used (batch-norm running statistics, no dropout: an image's
    prediction does not depend on the others in its batch), and is left exactly as it was, mode
    included.
    """
    with hooks.preserved_state(model):
        model.eval()
        logits = _logits(model, images, batch_size)
    labels = _labels(labels, len(images)).to(images.device)
    class_indices(logits, labels)  # every label must be a class of the model: a clear error, not 0.0
    return int((logits.argmax(dim=1) == labels).sum()) / len(images)


def predictions(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The predicted class of each image, (N,), batch_size images per forward pass."""
    return _logits(model, images, batch_size).argmax(dim=1)


def _logits(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The model's output for all images, (N, num_classes), batch_size images per forward pass."""
    check_images(model, images, "images")
    check_positive_int(batch_size, "batch_size")
    with hooks.preserved_state(model), torch.no_grad():
        return torch.cat([run_model(model, images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def with_tag(images: torch.Tensor, region: torch.Tensor, colour: tuple[float, ...] = TAG_COLOUR) -> torch.Tensor:
    """A copy of the images with the pixels of ``region`` ((H, W) or (1, H, W) bool) painted ``colour``
    (one value per channel)."""
    check_image_batch(images, "images")
    channels, height, width = images.shape[1:]
    if not isinstance(region, torch.Tensor) or region.dtype != torch.bool:
        got = f"dtype {region.dtype}" if isinstance(region, torch.Tensor) else type(region).__name__
        raise TypeError(f"region must be a bool tensor (e.g. data.tag_mask(size)), got {got}")
    if tuple(region.shape) not in ((height, width), (1, height, width)):
        raise ValueError(f"region must have shape ({height}, {width}) or (1, {height}, {width}), got {tuple(region.shape)}")
    if not isinstance(colour, (tuple, list)) or len(colour) != channels:
        raise ValueError(f"colour must have one value per channel ({channels}), got {colour!r}")
    colour = tuple(check_number(c, "colour value") for c in colour)
    painted = images.clone()
    region = region.reshape(height, width).to(images.device)
    painted[:, :, region] = torch.tensor(colour, dtype=images.dtype, device=images.device).view(-1, 1)
    return painted


@dataclass
class ShortcutReport:
    """What a shortcut model does with and without its spurious tag, and which maps show the tag.

    accuracy_clean:   accuracy on images without any tag
    accuracy_tagged:  accuracy when every image of the tagged class carries the tag (as in training)
    fooled:           share of images of *other* classes predicted as the tagged class once the
                      tag is painted on them
    table:            per method, on the tagged images of the tagged class: the share of the
                      map's energy on the tag and on the object, and how often its maximum is on each
                      (the tag region grown by ``tolerance`` px, see ``shortcut_report``)
    images, maps:     those tagged images (n, C, H, W) and each method's maps {name: (n, 1, H, W)},
                      to show next to the table
    """

    tagged_class: str
    accuracy_clean: float
    accuracy_tagged: float
    fooled: float
    table: Table
    images: torch.Tensor
    maps: dict[str, torch.Tensor]

    def __str__(self) -> str:
        lines = [
            ("accuracy without the tag", self.accuracy_clean),
            (f"accuracy with the tag on every {self.tagged_class}", self.accuracy_tagged),
            (f"other images called {self.tagged_class} once tagged", self.fooled),
        ]
        width = max(len(text) for text, _ in lines) + 1
        summary = "\n".join(f"{text + ':':<{width}}  {value:.3f}" for text, value in lines)
        return f"{summary}\n\n{self.table}"

    __repr__ = __str__


def _class_name(model: nn.Module, index: int) -> str:
    names = getattr(model, "classes", None)  # the lab models carry their class names
    return str(names[index]) if names is not None and 0 <= index < len(names) else f"class {index}"


def shortcut_report(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    masks: torch.Tensor,
    methods: Mapping[str, MapMethod] | None = None,
    *,
    tagged_class: int = SHAPE_CLASSES.index(TAGGED_CLASS),
    region: torch.Tensor | None = None,
    colour: tuple[float, ...] = TAG_COLOUR,
    seed: int = 0,
    tolerance: float = 0.0,
    precision: int = 3,
) -> ShortcutReport:
    """The "Clever Hans" test (Lapuschkin et al. 2019, "Unmasking Clever Hans predictors").

    images, labels, masks: shapes *without* the tag (``make_shapes(n, seed)``) and their object
    masks. The tag (``region``, default ``data.tag_mask(size)``, painted ``colour``) is added to the
    images of ``tagged_class`` as in the tagged training set, and separately to all other images
    to see whether it alone turns them into the tagged class. The methods (default
    ``default_methods(seed)``) explain the tagged class on its tagged images: a model that learned
    the tag should get maps whose energy sits on those few pixels.

    tolerance: the tag region is grown by every pixel within this Euclidean distance (as the
    ``tolerance`` of ``pointing_game``) for the two tag columns, ``tag_energy`` and
    ``points_at_tag``; the object columns are unchanged. The default 0 scores the exact tag. A
    map computed on a coarse grid (Grad-CAM from a 16x16 layer: cells of 4 px on 64 px images)
    can light up the tag's corner and still put little energy, and not its maximum, on the 4x4 tag
    itself; a tolerance of about one cell lets the tag columns see it. The table's title gives
    the area the tag region covers, the chance level of ``tag_energy``.

    Read the tag columns against controls: the model-blind ``random`` and ``edges`` rows, and the
    same report for a model trained *without* the tag (``shortcut_report(clean_model, ...)``,
    same images): a method whose maps point at a bright patch whatever the model learned scores
    on the tag there too, so the evidence of a shortcut is the change between the two models.
    """
    check_images(model, images, "images")
    labels = _labels(labels, len(images)).to(images.device)
    height, width = images.shape[-2:]
    masks = boolean_masks(masks, height, width, len(images)).to(images.device)
    region = tag_mask(height).to(images.device) if region is None else region.to(images.device).bool()
    if region.numel() != height * width:
        raise ValueError(f"region must be an (H, W) = ({height}, {width}) mask, got {tuple(region.shape)}")
    region = region.reshape(height, width)
    tolerance = check_number(tolerance, "tolerance", minimum=0.0)
    own = labels == tagged_class
    if not bool(own.any()) or bool(own.all()):
        raise ValueError(f"images must include class {tagged_class} (the tagged one) and at least one other class")
    tagged_own = with_tag(images[own], region, colour)
    tagged_all = torch.where(own.view(-1, 1, 1, 1), with_tag(images, region, colour), images)
    others_tagged = with_tag(images[~own], region, colour)
    rows, all_maps = [], {}
    n_own = int(own.sum())
    tag_area = dilated(region[None], tolerance)[0]  # the tag, grown by the tolerance
    tag_masks = tag_area.expand(n_own, height, width)
    with hooks.preserved_state(model):
        for name, method in _methods(methods, seed).items():
            maps = all_maps[name] = as_pixel_map(method(model, tagged_own, labels[own]))
            rows.append({
                "method": name,
                "tag_energy": _mean(energy_pointing_game(maps, tag_masks)),
                "object_energy": _mean(energy_pointing_game(maps, masks[own])),
                "points_at_tag": _mean(pointing_game(maps, tag_masks)),
                "points_at_object": _mean(pointing_game(maps, masks[own])),
            })
    area = float(tag_area.double().mean())
    grown = f", grown by {tolerance:g} px," if tolerance > 0 else ""
    title = f"{n_own} tagged images; the tag{grown} covers {100 * area:.1f}% of the image"
    table = Table(rows, title=title, precision=precision)
    return ShortcutReport(
        tagged_class=_class_name(model, tagged_class),
        accuracy_clean=accuracy(model, images, labels),
        accuracy_tagged=accuracy(model, tagged_all, labels),
        fooled=float((predictions(model, others_tagged) == tagged_class).double().mean()),
        table=table,
        images=tagged_own,
        maps=all_maps,
    )
