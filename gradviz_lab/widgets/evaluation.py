"""Lesson 7, live: the randomisation sanity check (Adebayo et al. 2018, "Sanity checks for
saliency maps") and deletion (Petsiuk et al. 2018, RISE) with a choice of fill.

A slider sets how many layers, counted from the top (the logits) down, are re-initialised in a
*copy* of the model (the cascading test of ``gradviz_lab.evaluate.randomised_copy``). The picture
shows the trained model's map beside the randomised model's map, for the same image and class,
and the caption gives their Spearman rank correlation. A map that explains the model should
change as its weights are destroyed; one that barely changes is mostly showing the image.

    from gradviz_lab.widgets import randomisation_dashboard
    dash = randomisation_dashboard()          # the shapes lab model, saliency
    dash.set(method="guided-backprop", layers=3)

    from gradviz_lab.widgets import deletion_dashboard
    deletion_dashboard().set(fill="impute", fraction=0.5)
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
import torch

from .. import methods, viz
from ..evaluate import (
    Curve,
    deletion_curve,
    random_map,
    randomisable_layers,
    randomised_copy,
    remove_top_pixels,
    spearman,
)
from .base import WIDE, Dashboard
from .explaining import Explanation

SLIDER = {"continuous_update": False, "style": WIDE}  # recompute on release


def method_knobs() -> dict[str, dict]:
    """{method: its light knobs} for the methods of the registry's "evaluation" view
    (``gradviz_lab.methods``): each with its dashboard's defaults, the long ones lighter."""
    return methods.light_knobs("evaluation")


class RandomisationDashboard(Dashboard):
    """Cascading model randomisation: the trained model's map beside the map of a copy whose top
    k layers are re-initialised; the caption gives their Spearman rank correlation (of |map|)."""

    heading = "Sanity check: re-initialise the top layers, does the map change?"
    seed = 0  # the random weights: fixed, so the slider moves through one cascade

    def make_knobs(self):
        self.layer_names = randomisable_layers(self.model)  # top (logits) first
        if not self.layer_names:
            raise ValueError("the model has no conv or linear layer to randomise")
        self.copies: dict[int, torch.nn.Module] = {}  # depth -> randomised copy
        self.last_similarity = float("nan")
        return {
            "method": widgets.Dropdown(
                options=list(method_knobs()), value="saliency", description="method"
            ),
            "layers": widgets.IntSlider(
                value=0,
                min=0,
                max=len(self.layer_names),
                description="randomised layers",
                **SLIDER,
            ),
        }

    def randomised_model(self, depth: int) -> torch.nn.Module:
        """The copy with the top ``depth`` layers random (built once per depth)."""
        if depth not in self.copies:
            self.copies[depth] = randomised_copy(self.model, depth, seed=self.seed)
        return self.copies[depth]

    def explanations(self, index, target):
        method, depth = self.knobs["method"].value, int(self.knobs["layers"].value)
        knobs = method_knobs()[method]
        trained = self.explained(method, index, target, **knobs)
        key = ("randomised", depth, method, index, target)
        random = self.cache.get(key, lambda: self._randomised(method, depth, index, target, knobs))
        return [trained, random]

    def _randomised(self, method, depth, index, target, knobs) -> Explanation:
        model = self.randomised_model(depth)
        result = self._explain(method, index, target, knobs, model=model)  # with a progress bar
        # New titles: the trained and the randomised panels must not share a name.
        label = "no layer random" if depth == 0 else f"top {depth} layer(s) random"
        result.maps = {f"{title}\n{label}": m for title, m in result.maps.items()}
        result.overlay = {f"{title}\n{label}" for title in result.overlay}
        return result

    def similarity(self, trained: np.ndarray, random: np.ndarray) -> float:
        """Spearman rank correlation of |trained map| and |randomised map| (nan for a flat map)."""
        a, b = (torch.from_numpy(np.ascontiguousarray(m)).unsqueeze(0) for m in (trained, random))
        return float(spearman(a, b)[0])

    def caption_html(self, index, explanations):
        text = super().caption_html(index, explanations)
        depth = int(self.knobs["layers"].value)
        trained, random = (next(iter(e.maps.values())) for e in explanations)
        self.last_similarity = self.similarity(trained, random)
        deepest = self.layer_names[depth - 1] if depth else "none"
        facts = (
            f"randomised: top {depth} of {len(self.layer_names)} layers "
            f"(deepest: <code>{html.escape(deepest)}</code>) · Spearman rank correlation of "
            f"|maps|: <b>{self.last_similarity:.2f}</b>"
        )
        return text.replace("</div>", f"<br>{facts}</div>", 1) if text.endswith("</div>") else text


# --------------------------------------------------------------------------------------------
# Deletion, live
# --------------------------------------------------------------------------------------------
FILLS = {"black": 0.0, "blur": "blur", "impute": "impute"}  # what replaces a removed pixel
DELETION_STEPS = 16  # points of the curve; the fraction slider moves over them


class DeletionDashboard(Dashboard):
    """Deletion (Petsiuk et al. 2018), live: remove the map's most salient pixels, see the image
    the model is shown and where that puts the class probability on the deletion curve, beside
    the curve of a random map. The fill decides what "removed" means: black keeps the object's
    silhouette, blur a blob of its colour, impute fills from the pixels left (lesson 07)."""

    heading = "Deletion: remove the most salient pixels first, does the class go?"
    seed = 0  # the random control map: the same noise on every redraw

    def make_knobs(self):
        return {
            "method": widgets.Dropdown(
                options=list(method_knobs()), value="gradcam", description="map"
            ),
            "fill": widgets.Dropdown(
                options=list(FILLS), value="black", description="removed pixels", style=WIDE
            ),
            "fraction": widgets.FloatSlider(
                value=0.25,
                min=0.0,
                max=1.0,
                step=1 / DELETION_STEPS,
                readout_format=".1%",
                description="fraction removed",
                **SLIDER,
            ),
        }

    def explanations(self, index, target):
        method = self.knobs["method"].value
        return [self.explained(method, index, target, **method_knobs()[method])]

    def ranking_map(self, explanation: Explanation) -> torch.Tensor:
        """(1, 1, H, W): pixels are removed in the order of |map|, as in lesson 07's table."""
        magnitude = np.abs(next(iter(explanation.maps.values())))
        return torch.from_numpy(magnitude).to(self.images.device, self.images.dtype)[None, None]

    def curves(self, index: int, target: int, ranking: torch.Tensor) -> dict[str, Curve]:
        """The deletion curves of the map and of a random map (cached per image, class, fill)."""
        x = self.images[index : index + 1]
        method, fill = self.knobs["method"].value, self.knobs["fill"].value

        def curve(saliency: torch.Tensor) -> Curve:
            baseline = FILLS[fill]
            return deletion_curve(self.model, x, saliency, target, DELETION_STEPS, baseline)

        def control() -> torch.Tensor:
            return random_map(self.model, x, seed=self.seed)

        return {
            "map": self.cache.get(("deletion", method, index, target, fill), lambda: curve(ranking)),
            "random map": self.cache.get(
                ("deletion", "random", index, target, fill), lambda: curve(control())
            ),
        }

    def make_figure(self, index, explanations):
        explanation = explanations[0]
        fraction, fill = float(self.knobs["fraction"].value), self.knobs["fill"].value
        ranking = self.ranking_map(explanation)
        self.last_curves = self.curves(index, explanation.target, ranking)
        # the slider moves over the curve's points: the image shown is the one scored there
        self.last_score = float(self.last_curves["map"].scores[0, round(fraction * DELETION_STEPS)])
        x = self.images[index : index + 1]
        self.last_removed = remove_top_pixels(x, ranking, fraction, FILLS[fill])[0]
        class_name = explanation.target_name

        figure = viz.NotebookFigure(figsize=(12.0, 3.9))
        map_ax, image_ax, curve_ax = figure.subplots(
            1, 3, gridspec_kw={"width_ratios": [1.0, 1.0, 1.5]}
        )
        map_ax.imshow(ranking[0, 0].cpu().numpy(), cmap=viz.colormap_for(False), interpolation="nearest")
        map_ax.set_title(f"|{next(iter(explanation.maps))}|", fontsize=13)
        image_ax.imshow(viz.to_rgb(self.last_removed.detach().cpu()), interpolation="nearest")
        image_ax.set_title(
            f"top {fraction:.0%} removed ({fill})\np({class_name}) = {self.last_score:.2f}",
            fontsize=13,
        )
        for ax in (map_ax, image_ax):
            ax.set_xticks([])
            ax.set_yticks([])
        for (name, curve), style in zip(self.last_curves.items(), ("-o", "--")):
            label = f"{name}: AUC {float(curve.auc[0]):.3f}"
            curve_ax.plot(curve.fractions.numpy(), curve.scores[0].numpy(), style, label=label)
        curve_ax.axvline(fraction, color="grey", linewidth=1)
        curve_ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), xlabel="fraction of pixels removed")
        curve_ax.set_ylabel(f"p({class_name})")
        curve_ax.set_title("deletion curve (lower AUC is better)", fontsize=13)
        curve_ax.legend(fontsize=11, loc="best")
        figure.subplots_adjust(left=0.02, right=0.98, bottom=0.16, top=0.82, wspace=0.25)
        return figure

    def caption_html(self, index, explanations):
        text = super().caption_html(index, explanations)
        aucs = {name: float(curve.auc[0]) for name, curve in self.last_curves.items()}
        fraction, fill = float(self.knobs["fraction"].value), html.escape(self.knobs["fill"].value)
        facts = (
            f"removed: top {fraction:.1%} of the pixels by |map|, filled <b>{fill}</b> · "
            f"p(class) <b>{self.last_score:.2f}</b> · deletion AUC: map <b>{aucs['map']:.3f}</b>, "
            f"random map {aucs['random map']:.3f}"
        )
        return text.replace("</div>", f"<br>{facts}</div>", 1) if text.endswith("</div>") else text
