"""Lesson 10, live: what a vision transformer looks at, one knob at a time.

Knobs: the method (raw attention, attention rollout, gradient rollout, Grad-CAM on the tokens,
integrated gradients, saliency: their names and functions come from ``gradviz_lab.methods``), the
encoder block and the head (each head, or the mean over heads), the target class, the image, and
the overlay's alpha. The picture is the image and the map, the same map as
``gradviz explain --method NAME`` and as the package function with these settings:

    attention             attribution.attention_map(model, x, block=, head=)   block, head
    attention rollout     attribution.attention_rollout(model, x)              all blocks, heads averaged
    gradient rollout      attribution.gradient_rollout(model, x, target)       all blocks and heads
    Grad-CAM on tokens    attribution.gradcam(model, x, target, layer=)        block: its ln_1, the
                                                                               tokens its attention reads
    integrated gradients  attribution.integrated_gradients (blur baseline on the shapes models)
    saliency              attribution.saliency

A knob the method does not have is greyed out (rollout has no block: it runs through all of them).
Raw attention and rollout do not depend on the class: the caption says so, and changing the
target leaves them as they are.

    from gradviz_lab.widgets.vit import vit_dashboard
    dash = vit_dashboard()                                # shapes-vit and the shapes gallery
    dash.set(method="attention", block=0, head=2)
    dash.set(method="gradcam", block=3, target=1)
    dash.last_map                                         # the (H, W) map on show

Every map is cached per (image, target, knobs the method uses): going back is instant. A model
with no ``nn.MultiheadAttention`` is refused when the dashboard is made; a setting a method cannot
follow (e.g. a token grid it cannot lay out) gives an error in the dashboard, as the function says it.
"""

from __future__ import annotations

import dataclasses
import html

import ipywidgets as widgets
from torch import nn

from .. import attribution, methods
from ..attribution.layouts import attention_inputs
from ..threads import lab_threads
from .base import WIDE, Dashboard
from .explaining import Explanation

SLIDER = {"continuous_update": False, "style": WIDE}  # redraw on release
MEAN_OVER_HEADS = -1  # the head menu's value for "mean over heads" (attention_map's head=None)

# The lesson's methods, in the menu's order, and the knobs of this dashboard each one uses.
VIT_METHODS: dict[str, frozenset[str]] = {
    "attention": frozenset({"block", "head"}),
    "attention-rollout": frozenset(),
    "gradient-rollout": frozenset(),
    "gradcam": frozenset({"block"}),
    "integrated-gradients": frozenset(),
    "saliency": frozenset(),
}
CLASS_FREE = ("attention", "attention-rollout")  # maps that are the same for every class
OVERLAID = ("attention", "attention-rollout", "gradient-rollout", "gradcam")  # coarse: over the image


def method_label(name: str) -> str:
    """The menu's words for a method: its registry title, "on tokens" for Grad-CAM."""
    title = methods.get(name).title
    return f"{title} on tokens" if name == "gradcam" else title


def token_layers(model: nn.Module, blocks: int) -> list[str] | None:
    """For a torchvision ``VisionTransformer``: each encoder block's ``ln_1`` (the tokens its
    attention reads; the last one is ``attribution.default_cam_layer``'s choice), else None."""
    names = attention_inputs(model)
    return names if names and len(names) == blocks else None


class VitDashboard(Dashboard):
    """Lesson 10: attention per block and head, rollout, gradient rollout, Grad-CAM on tokens,
    integrated gradients and saliency, on a vision transformer."""

    heading = "What a vision transformer looks at"

    def make_knobs(self) -> dict[str, widgets.ValueWidget]:
        # one forward pass tells the blocks and their heads (and refuses a model without attention)
        with lab_threads(self.model):
            attentions = attribution.attention_per_layer(self.model, self.images[:1])
        heads = {weights.shape[1] for weights in attentions.values()}
        self.blocks = len(attentions)
        self.layers = token_layers(self.model, self.blocks)
        return {
            "method": widgets.Dropdown(
                options=[(method_label(m), m) for m in VIT_METHODS], value="attention",
                description="method", style=WIDE,
            ),
            "block": widgets.Dropdown(
                options=[(f"block {b}", b) for b in range(self.blocks)], value=self.blocks - 1,
                description="block", style=WIDE,
            ),
            "head": widgets.Dropdown(
                options=[("mean over heads", MEAN_OVER_HEADS)]
                + [(f"head {h}", h) for h in range(max(heads))],
                value=MEAN_OVER_HEADS, description="head", style=WIDE,
            ),
            "alpha": widgets.FloatSlider(
                value=0.5, min=0.0, max=1.0, step=0.05, description="overlay α", **SLIDER
            ),
        }

    def uses(self, method: str) -> frozenset[str]:
        """The knobs of this dashboard ``method`` reads (Grad-CAM picks a block's tokens only on a
        torchvision ViT, whose blocks are known; elsewhere its default layer)."""
        knobs = VIT_METHODS[method]
        return knobs - {"block"} if method == "gradcam" and self.layers is None else knobs

    def on_knobs_changed(self) -> None:
        used = self.uses(self.knobs["method"].value)
        for name in ("block", "head"):
            self.knobs[name].disabled = name not in used

    # ---- what to show ------------------------------------------------------------------------
    def method_knobs(self) -> dict:
        """The method's own keyword arguments for the knobs on show (the cache key: knobs the
        method does not use change nothing)."""
        method = self.knobs["method"].value
        used = self.uses(method)
        block, head = int(self.knobs["block"].value), int(self.knobs["head"].value)
        if method == "attention":
            return {"block": block, "head": None if head == MEAN_OVER_HEADS else head}
        if method == "gradcam" and "block" in used:
            return {"layer": self.layers[block]}
        return {}

    def explanations(self, index: int, target: int) -> list[Explanation]:
        method, knobs = self.knobs["method"].value, self.method_knobs()
        found = self.explained(method, index, target, **knobs)
        (only,) = found.maps.values()
        title = self.title(method, knobs, found)
        note = found.note
        if method in CLASS_FREE:
            note = (f"{note}\n" if note else "") + (
                f"{method_label(method)} does not depend on the class: this map is the same for "
                "every target")
        return [dataclasses.replace(found, maps={title: only},
                                    overlay={title} if method in OVERLAID else set(), note=note)]

    def title(self, method: str, knobs: dict, found: Explanation) -> str:
        if method == "attention":
            head = "mean over heads" if knobs["head"] is None else f"head {knobs['head']}"
            return f"attention, block {knobs['block']}, {head}"
        if method in ("attention-rollout", "gradient-rollout"):
            return f"{method_label(method)} ({self.blocks} blocks)"
        if method == "gradcam":  # a torchvision ViT's block, or Grad-CAM's own default layer
            return (f"Grad-CAM on tokens, {knobs['layer']}" if "layer" in knobs
                    else "Grad-CAM, its default layer")
        return next(iter(found.maps))  # the recipe's own title: "IG (blur, 32 steps)", ...

    def caption_html(self, index: int, explanations: list[Explanation]) -> str:
        method = self.knobs["method"].value
        reads = {
            "attention": "the class token's row of one block's attention (A_l[0, 1:] on the patch grid)",
            "attention-rollout": "the blocks composed with the residual identity, heads averaged",
            "gradient-rollout": "each head weighted by the gradient of the class score, positive part",
            "gradcam": "the patch tokens laid out on their grid as maps, weighted by their mean gradient",
            "integrated-gradients": "gradients along the path from the baseline, times (x - x')",
            "saliency": "|d score / d pixel|, the largest over the colour channels",
        }[method]
        line = f"<b>{html.escape(method_label(method))}</b>: {html.escape(reads)}"
        return super().caption_html(index, explanations).replace("</div>", f"<br>{line}</div>", 1)


def vit_dashboard(
    model=None, images=None, class_names=None, *, image_names=None, gallery_name="shapes-vit"
) -> VitDashboard:
    """The lesson 10 dashboard (an ipywidgets.VBox that displays itself). With no arguments: the
    shapes-vit lab model and the shapes gallery; pass ``model`` (a vision transformer: a model with
    ``nn.MultiheadAttention``), ``images`` (N, C, H, W) in [0, 1] and ``class_names`` to explain
    your own, e.g. torchvision's ViT-B/16."""
    return VitDashboard(
        model, images, class_names, image_names=image_names, gallery_name=gallery_name
    )


__all__ = ["MEAN_OVER_HEADS", "VIT_METHODS", "VitDashboard", "token_layers", "vit_dashboard"]
