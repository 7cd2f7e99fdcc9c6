"""Each method run with the knobs of its dashboard: one image, one model, one method, one target.

The dashboards and ``gradviz explain`` both call ``explain`` and ``explanation_figure``, so the
live picture and the one on a slide agree for the same settings:

    from gradviz_lab.widgets.recipes import explain, explanation_figure, gallery
    shapes = gallery("shapes")                                   # the lab model, shipped images
    e = explain(shapes.model, shapes.images[5], "gradcam", target="square")
    explanation_figure(shapes.images[5], e)                      # viz.show_grid underneath

``explain`` returns an ``Explanation``: titled (H, W) maps ready to draw, the class explained,
and a note (e.g. integrated gradients' completeness check). ``gallery(name)`` gives the shipped
examples a lesson starts from.

This module gathers them; each idea has its own module: the shipped examples (``gallery.py``),
running a method (``explaining.py``), the figure (``figure.py``). The methods, their knobs and
defaults are listed once, in ``gradviz_lab.methods``; ``METHODS`` here is a live view of it,
{method: {knob: default}}.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .. import methods
from ..methods import BASELINES
from .explaining import (
    BACKPROP,
    RECIPES,
    Explanation,
    baseline_image,
    class_names_of,
    conv_layers,
    default_layer,
    explain,
    guided_gradcam_map,
    occlusion_window,
    resolve_target,
    spatial_layers,
)
from .figure import explanation_figure
from .gallery import (
    GALLERY_DEFAULTS,
    GALLERY_PAIR_COUNT,
    GALLERY_PAIRS,
    GALLERY_SEED,
    IMAGENET_MODELS,
    LAB_MODELS,
    PAIR_CANVAS,
    Gallery,
    choose_gallery_pairs,
    default_knobs,
    gallery,
    gallery_defaults,
    gallery_pairs,
    pair_crop,
    reads_both_objects,
)


class _KnobDefaults(Mapping):
    """{method: {knob: default}}, read from ``gradviz_lab.methods`` at each use (a method
    registered later is in it)."""

    def __getitem__(self, name: str) -> dict[str, Any]:
        if name not in methods.REGISTRY:
            raise KeyError(name)
        return methods.REGISTRY[name].defaults

    def __iter__(self) -> Iterator[str]:
        return iter(methods.names())

    def __len__(self) -> int:
        return len(methods.REGISTRY)


METHODS: Mapping[str, dict[str, Any]] = _KnobDefaults()

__all__ = [
    "BACKPROP", "BASELINES", "GALLERY_DEFAULTS", "GALLERY_PAIR_COUNT", "GALLERY_PAIRS",
    "GALLERY_SEED", "IMAGENET_MODELS", "LAB_MODELS", "METHODS", "PAIR_CANVAS", "RECIPES",
    "Explanation", "Gallery", "baseline_image", "choose_gallery_pairs", "class_names_of",
    "conv_layers", "default_knobs", "default_layer", "explain", "explanation_figure", "gallery",
    "gallery_defaults", "gallery_pairs", "guided_gradcam_map", "occlusion_window", "pair_crop",
    "reads_both_objects", "resolve_target", "spatial_layers",
]
