"""The model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps").

An explanation of a *trained* model should change when the model's weights are replaced by
random ones. Adebayo et al. re-initialise the layers one after another from the top (the logits)
down and compare each map with the trained model's map:

- cascading:   layers 1..k from the top randomised (the damage accumulates),
- independent: only layer k randomised, every other layer trained.

Guided backpropagation famously barely changes: it mostly recovers image edges, not the model.

The caller's model is never touched: the work happens on a deep copy. Each layer is re-drawn with
its own initialiser (``reset_parameters``, as at the start of training) from a seed fixed by
(seed, the layer's position from the top), so the cascade at depth k and at depth k + 1 share the
same random weights for layers 1..k, and a slider over k moves through one consistent cascade.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .. import _checks
from .._boundary import boundary
from .._checks import (
    check_finite,
    check_flag,
    check_model,
    resolve_layer,
)
from ..targets import Target, target_score
from .similarity import SSIM_WINDOW, spearman, ssim
from .table import Table

MapMethod = Callable[[nn.Module, torch.Tensor, object], torch.Tensor]


def _has_filters(module: nn.Module) -> bool:
    """A layer with its own learned filters: a weight of 2+ dimensions (conv, linear) and an
    initialiser to draw new ones. Normalisation layers (1-D weights) are left alone."""
    weight = module._parameters.get("weight")  # the module's own weight, not a child's
    return weight is not None and weight.dim() >= 2 and hasattr(module, "reset_parameters")


def randomisable_layers(model: nn.Module) -> list[str]:
    """Names of the layers with learned filters, from the top (the logits) down.

    "Top" follows the order in which the model defines its layers, which is the forward order of
    ``nn.Sequential``-style CNNs (features, then classifier). For a model defined otherwise, pass
    the order you want as ``layers=[...]`` to the functions below.
    """
    check_model(model)
    names = [name for name, module in model.named_modules() if name and _has_filters(module)][::-1]
    if not names:
        raise ValueError("the model has no layer with learned filters (conv or linear) to randomise")
    return names


def _layer_names(model: nn.Module, layers: Sequence[str] | None) -> list[str]:
    if layers is None:
        return randomisable_layers(model)
    if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
        raise TypeError("layers must be a list of layer names, top (logits) first")
    names = []
    for name in layers:
        name, module = resolve_layer(model, name)  # unknown names: an error listing valid ones
        if not hasattr(module, "reset_parameters"):
            raise ValueError(f"layer {name!r} ({type(module).__name__}) has no reset_parameters() to re-draw it")
        names.append(name)
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"layers must be distinct and not empty, got {list(layers)}")
    return names


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return seed


def _layer_seed(seed: int, position: int) -> int:
    """The seed of the layer at ``position`` (0 = top): the position-th number drawn from a
    generator seeded with ``seed`` (not seed + position, which would redraw the very weights of
    a model that was itself initialised with torch.manual_seed(seed))."""
    generator = torch.Generator().manual_seed(_check_seed(seed))
    return int(torch.randint(2**62, (position + 1,), generator=generator)[position])


def reinitialise(layer: nn.Module, seed: int) -> None:
    """Replace the layer's parameters (in place) by fresh ones from its own initialiser, seeded.

    The new values are drawn in float32 on the CPU, then copied into the layer's own dtype and
    device: the same numbers on every device and in every precision (a float64 copy of a model
    gets the float32 draw, exactly). They come from a forked random generator, so the global
    random state is left as it was.
    """
    check_model(layer)
    if not hasattr(layer, "reset_parameters"):
        raise ValueError(f"layer {type(layer).__name__} has no reset_parameters() to re-draw it")
    fresh = copy.deepcopy(layer).cpu().float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_check_seed(seed))
        fresh.reset_parameters()
    layer.load_state_dict(fresh.state_dict())  # copies into the layer's own tensors


def _check_depth(n_layers: object, total: int, cascading: bool) -> int:
    if isinstance(n_layers, bool) or not isinstance(n_layers, int):
        raise TypeError(f"n_layers must be an int, got {type(n_layers).__name__}")
    low = 0 if cascading else 1
    if not low <= n_layers <= total:
        raise ValueError(f"n_layers must be in {low}..{total} (the model has {total} randomisable layers), got {n_layers}")
    return n_layers


def randomised_copy(
    model: nn.Module,
    n_layers: int,
    cascading: bool = True,
    seed: int = 0,
    layers: Sequence[str] | None = None,
) -> nn.Module:
    """A deep copy of the model with layers re-initialised from the top down; the model is untouched.

    cascading=True:  the top ``n_layers`` layers are random (0 = an exact copy).
    cascading=False: only the ``n_layers``-th layer from the top is random (1 = the logits layer).
    layers: the candidate layers, top first (default ``randomisable_layers(model)``). Cheap enough
    for a slider: one deep copy and a few re-drawn layers.
    """
    check_model(model)
    check_flag(cascading, "cascading")
    names = _layer_names(model, layers)
    n_layers = _check_depth(n_layers, len(names), cascading)
    _check_seed(seed)
    chosen = range(n_layers) if cascading else [n_layers - 1]
    randomised = copy.deepcopy(model)
    modules = dict(randomised.named_modules())
    for position in chosen:
        reinitialise(modules[names[position]], _layer_seed(seed, position))
    return randomised


def _nanmean(values: torch.Tensor) -> float:
    """Mean over images where the measure is defined (a constant map has no rank correlation)."""
    return float(values.nanmean()) if bool(values.isfinite().any()) else float("nan")


def _similarity_row(layer: str, depth: int, original: torch.Tensor, maps: torch.Tensor, absolute: bool) -> dict:
    big_enough = original.dim() in (3, 4) and min(original.shape[-2:]) >= SSIM_WINDOW
    structure = ssim(original, maps, absolute) if big_enough else torch.full((1,), float("nan"))
    return {
        "layer": layer,
        "randomised": depth,
        "spearman": _nanmean(spearman(original, maps, absolute)),
        "ssim": _nanmean(structure),
    }


def randomisation_test(
    model: nn.Module,
    x: torch.Tensor,
    method: MapMethod,
    target: Target = None,
    cascading: bool = True,
    seed: int = 0,
    layers: Sequence[str] | None = None,
    absolute: bool = True,
    return_maps: bool = False,
) -> Table | tuple[Table, list[torch.Tensor]]:
    """Adebayo et al.'s sanity check: how similar is the map of a model with random layers to the
    map of the trained model?

    method(model, x, target) -> maps, e.g. ``gradviz_lab.attribution.guided_backprop``. The target
    is fixed once on the trained model (None = its predicted classes) and the same classes are
    explained on every randomised copy. One row per depth: ``randomised`` layers random (cascading)
    or the layer named in ``layer`` alone (independent); row 0 compares the trained model with an
    unchanged copy (1.0 for a deterministic method). Columns: the mean over images of the Spearman
    rank correlation and of the SSIM of the maps (of absolute values unless absolute=False; see
    ``similarity``). Low similarity = the map depends on the weights, as an explanation should.
    return_maps=True also returns the maps, row by row.
    """
    _checks.check_images(model, x)
    if not callable(method):
        raise TypeError(f"method must be a function (model, x, target) -> maps, got {type(method).__name__}")
    for flag, name in ((cascading, "cascading"), (absolute, "absolute"), (return_maps, "return_maps")):
        check_flag(flag, name)
    names = _layer_names(model, layers)
    _check_seed(seed)

    def maps_of(net: nn.Module) -> torch.Tensor:
        return _checked_maps(method(net, x, target), len(x), _name(method))

    with boundary(model):  # the trained model, saved and restored once, before it is copied
        target = target_score(model, x, target).fixed(model, x).target  # its classes, for every copy
        original = maps_of(model)
    working = copy.deepcopy(model)
    modules = dict(working.named_modules())
    maps = [maps_of(working)]
    rows = [_similarity_row("(none)", 0, original, maps[0], absolute)]
    for position, name in enumerate(names):
        layer = modules[name]
        trained = copy.deepcopy(layer.state_dict())
        reinitialise(layer, _layer_seed(seed, position))
        maps.append(maps_of(working))
        rows.append(_similarity_row(name, position + 1 if cascading else 1, original, maps[-1], absolute))
        if not cascading:
            layer.load_state_dict(trained)  # independent: put the trained layer back
    kind = "cascading" if cascading else "independent"
    table = Table(rows, title=f"{_name(method)}: {kind} randomisation, similarity to the trained model's map")
    return (table, maps) if return_maps else table


def _checked_maps(maps: object, batch: int, name: str) -> torch.Tensor:
    """The method's maps, detached, if they are a tensor (B, ...) of one finite map per image."""
    if not isinstance(maps, torch.Tensor) or maps.dim() < 2 or len(maps) != batch:
        got = f"shape {tuple(maps.shape)}" if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise TypeError(
            f"method {name!r} must return one map per image, a tensor (B, ...) with B = {batch} "
            f"rows and at least one value per image, got {got}"
        )
    check_finite(maps, f"the maps of method {name!r}")
    return maps.detach()


def _name(method: object) -> str:
    return getattr(method, "__name__", None) or getattr(getattr(method, "func", None), "__name__", "method")
