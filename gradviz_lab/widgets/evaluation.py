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

from .. import viz
from ..evaluate import Curve, deletion_curve, random_map, randomisable_layers, randomised_copy, remove_top_pixels, spearman
from .base import WIDE, Dashboard
from .recipes import Explanation

SLIDER = {"continuous_update": False, "style": WIDE}  # recompute on release
# The methods worth comparing (each with its dashboard's default knobs; the long ones lighter).
METHOD_KNOBS: dict[str, dict] = {
    "saliency": {},
    "gradient": {},
    "guided-backprop": {},
    "deconvnet": {},
    "gradcam": {},
    "integrated-gradients": {"steps": 16},
    "smoothgrad": {"n_samples": 10},
}


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
                options=list(METHOD_KNOBS), value="saliency", description="method"
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
        knobs = METHOD_KNOBS[method]
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
            "method": widgets.Dropdown(options=list(METHOD_KNOBS), value="gradcam", description="map"),
            "fill": widgets.Dropdown(options=list(FILLS), value="black", description="removed pixels"),
            "fraction": widgets.FloatSlider(
                value=0.25, min=0.0, max=1.0, step=1 / DELETION_STEPS, readout_format=".1%",
                description="fraction removed", **SLIDER,
            ),
        }

    def explanations(self, index, target):
        method = self.knobs["method"].value
        return [self.explained(method, index, target, **METHOD_KNOBS[method])]

    def ranking_map(self, explanation: Explanation) -> torch.Tensor:
        """(1, 1, H, W): the pixels are removed in the order of |map|, as in lesson 07's table."""
        map2d = next(iter(explanation.maps.values()))
        image = self.images[:1]
        return torch.from_numpy(np.abs(np.ascontiguousarray(map2d))).to(image.device, image.dtype)[None, None]

    def curves(self, index: int, explanation: Explanation) -> dict[str, Curve]:
        """The deletion curve of the map and of a random map (cached per image, class and fill)."""
        x, target, fill = self.images[index : index + 1], explanation.target, self.knobs["fill"].value
        method = self.knobs["method"].value

        def curve(saliency: torch.Tensor) -> Curve:
            return deletion_curve(self.model, x, saliency, target, steps=DELETION_STEPS, baseline=FILLS[fill])

        return {
            "map": self.cache.get(("deletion", method, index, target, fill), lambda: curve(self.ranking_map(explanation))),
            "random map": self.cache.get(
                ("deletion", "random", index, target, fill), lambda: curve(random_map(self.model, x, seed=self.seed))
            ),
        }

    def make_figure(self, index, explanations):
        explanation = explanations[0]
        fraction, fill = float(self.knobs["fraction"].value), self.knobs["fill"].value
        curves = self.curves(index, explanation)
        step = round(fraction * DELETION_STEPS)
        self.last_curves = curves
        self.last_score = float(curves["map"].scores[0, step])
        shown = remove_top_pixels(self.images[index : index + 1], self.ranking_map(explanation), fraction, FILLS[fill])
        self.last_removed = shown[0]
        figure = viz.NotebookFigure(figsize=(12.0, 3.9))
        axes = figure.subplots(1, 3, gridspec_kw={"width_ratios": [1.0, 1.0, 1.5]})
        title, map2d = next(iter(explanation.maps.items()))
        axes[0].imshow(np.abs(map2d), cmap=viz.colormap_for(False), interpolation="nearest")
        axes[0].set_title(f"|{title}|", fontsize=13)
        axes[1].imshow(viz.to_rgb(shown[0].detach().cpu()), interpolation="nearest")
        axes[1].set_title(
            f"top {fraction:.0%} removed ({fill})\np({explanation.target_name}) = {self.last_score:.2f}", fontsize=13
        )
        for ax in axes[:2]:
            ax.set_xticks([])
            ax.set_yticks([])
        for (name, curve), style in zip(curves.items(), ("-o", "--")):
            auc = float(curve.auc[0])
            axes[2].plot(curve.fractions.numpy(), curve.scores[0].numpy(), style, label=f"{name}: AUC {auc:.3f}")
        axes[2].axvline(fraction, color="grey", linewidth=1)
        axes[2].set(xlim=(0, 1), ylim=(-0.02, 1.02), xlabel="fraction of pixels removed",
                    ylabel=f"p({explanation.target_name})")
        axes[2].set_title("deletion curve (lower AUC is better)", fontsize=13)
        axes[2].legend(fontsize=11, loc="best")
        figure.subplots_adjust(left=0.02, right=0.98, bottom=0.16, top=0.82, wspace=0.25)
        return figure

    def caption_html(self, index, explanations):
        text = super().caption_html(index, explanations)
        aucs = {name: float(curve.auc[0]) for name, curve in self.last_curves.items()}
        facts = (
            f"removed: top {float(self.knobs['fraction'].value):.1%} of the pixels by |map|, filled "
            f"<b>{html.escape(self.knobs['fill'].value)}</b> · p(class) <b>{self.last_score:.2f}</b> · "
            f"deletion AUC: map <b>{aucs['map']:.3f}</b>, random map {aucs['random map']:.3f}"
        )
        return text.replace("</div>", f"<br>{facts}</div>", 1) if text.endswith("</div>") else text
