"""Lesson 7: the randomisation sanity check, live (Adebayo et al. 2018, "Sanity checks for
saliency maps").

A slider sets how many layers, counted from the top (the logits) down, are re-initialised in a
*copy* of the model (the cascading test of ``gradviz_lab.evaluate.randomised_copy``). The picture
shows the trained model's map beside the randomised model's map, for the same image and class,
and the caption gives their Spearman rank correlation. A map that explains the model should
change as its weights are destroyed; one that barely changes is mostly showing the image.

    from gradviz_lab.widgets import randomisation_dashboard
    dash = randomisation_dashboard()          # the shapes lab model, saliency
    dash.set(method="guided-backprop", layers=3)
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
import torch

from ..evaluate import randomisable_layers, randomised_copy, spearman
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
