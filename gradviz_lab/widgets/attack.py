"""Lesson 9, live: attack an image and watch the prediction and the saliency map move.

Knobs: the attack (FGSM, PGD in the L-infinity or the L2 ball, the fooling image), its budget
epsilon, its steps, the target class (none: an untargeted attack away from the predicted class;
a class: a targeted attack toward it), and, for the kit's galleries, the lab model (the robust
digits model resists where the standard one falls). The picture shows

    clean image | attacked image | perturbation x_adv - x, amplified | saliency before | after

each image titled with the model's prediction; the perturbation has its own symmetric colour
scale (it is a few percent of the pixel range: drawn on the image's scale it would be invisible);
each saliency map (lesson 02, the max over channels of |d y_c / d x|) explains the class the
model predicts for that image, and both share one colour scale (a map that fades has lost
gradient, not only moved). The caption gives the perturbation's size, whether the attack
succeeded, and how much the map moved: the top-k intersection and the Spearman rank correlation
of the two maps (``explanation_attacks.topk_intersection`` and ``rank_correlation``).

    from gradviz_lab.widgets.attack import attack_dashboard
    dash = attack_dashboard(gallery_name="digits")
    dash.set(attack="pgd-linf", epsilon=0.1, steps=20)
    dash.set(model="digits-robust")               # the same attack on the robust model
    dash.last_adversarial, dash.last_prediction   # the attacked image and its predicted class

Everything is cached per (model, image, target, knobs): going back to a setting is instant.
"""

from __future__ import annotations

import dataclasses
import html
import math
import warnings
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from .. import attacks, hooks, viz
from .._forward import run_model
from ..explanation_attacks import rank_correlation, topk_intersection
from .base import PREDICTED, WIDE, Dashboard
from .recipes import Explanation, explain

SLIDER = {"continuous_update": False, "style": WIDE}  # recompute on release

# attack -> (the function's name in gradviz_lab.attacks, its norm, does epsilon apply, do steps)
ATTACKS: dict[str, tuple[str, str | None, bool, bool]] = {
    "fgsm": ("fgsm", "linf", True, False),
    "pgd-linf": ("pgd", "linf", True, True),
    "pgd-l2": ("pgd", "l2", True, True),
    "fooling-image": ("fooling_image", None, False, True),
}
# The epsilon slider in each norm: (default, max, step). An L-infinity budget is a fraction of
# the pixel range; an L2 budget is the length of the whole perturbation, so it is larger: 0.15 on
# every pixel of a 28 x 28 digit is an L2 length of 0.15 * 28 = 4.2.
EPSILON_SLIDERS = {"linf": (0.1, 0.5, 0.01), "l2": (2.0, 10.0, 0.1)}
FOOLING_STEP = 0.5  # L2 length of one fooling-image step (lesson 09's value)
TOP_K_FRACTION = 0.05  # the top-k intersection counts the 5 % most salient pixels
MAX_STEPS = 100  # the steps slider: PGD of 100 steps on a 64 x 64 shapes image answers within 1 s


class AttackDashboard(Dashboard):
    """Attack one image (FGSM, PGD L-infinity / L2, fooling image) and see the attacked image,
    the perturbation amplified, the prediction and the saliency map before and after."""

    heading = "Adversarial examples: the gradient as an attack"
    main = 1  # ``last_map``: the saliency map of the attacked image

    def make_knobs(self) -> dict[str, widgets.ValueWidget]:
        self.target.options = [("none: untargeted", PREDICTED)] + list(self.target.options[1:])
        self.target.description = "attack toward"
        self.epsilons = {norm: default for norm, (default, _, _) in EPSILON_SLIDERS.items()}
        self.norm_on_show = "linf"
        self.last_adversarial: torch.Tensor | None = None
        self.last_prediction: int | None = None
        self.last_attack_note = ""
        self.last_facts: dict[str, Any] = {}
        default, maximum, step = EPSILON_SLIDERS["linf"]
        knobs: dict[str, widgets.ValueWidget] = {
            "attack": widgets.Dropdown(options=list(ATTACKS), value="pgd-linf", description="attack"),
            "epsilon": widgets.FloatSlider(
                value=default, min=0.0, max=maximum, step=step, description="epsilon ε", **SLIDER
            ),
            "steps": widgets.IntSlider(value=10, min=1, max=MAX_STEPS, description="steps", **SLIDER),
        }
        return {**knobs, **self.lab_model_knob()}

    # ---- knobs that depend on each other --------------------------------------------------------
    def on_knobs_changed(self) -> None:
        _, norm, uses_epsilon, uses_steps = ATTACKS[self.knobs["attack"].value]
        epsilon = self.knobs["epsilon"]
        with self.quietly():
            if norm is not None and norm != self.norm_on_show:  # the other ball: its own scale
                self.epsilons[self.norm_on_show] = float(epsilon.value)
                _, maximum, step = EPSILON_SLIDERS[norm]
                epsilon.max = max(maximum, epsilon.value)  # set before a value beyond the old max
                epsilon.value = self.epsilons[norm]
                epsilon.max, epsilon.step = maximum, step
                self.norm_on_show = norm
            epsilon.disabled = not uses_epsilon
            self.knobs["steps"].disabled = not uses_steps

    # ---- what to show ------------------------------------------------------------------------
    def attack_knobs(self) -> dict[str, Any]:
        """The knobs the chosen attack uses (the others do not change its result, nor the cache)."""
        attack = self.knobs["attack"].value
        _, norm, uses_epsilon, uses_steps = ATTACKS[attack]
        knobs: dict[str, Any] = {"attack": attack}
        if uses_epsilon:
            knobs["epsilon"] = float(self.knobs["epsilon"].value)
        if uses_steps:
            knobs["steps"] = int(self.knobs["steps"].value)
        return knobs

    def adversarial(self, index: int, goal: int | None, knobs: dict[str, Any]) -> tuple[torch.Tensor, str]:
        """The attacked image (1, C, H, W) and the attack's warnings (e.g. a fooling image that did
        not reach its class), cached per (model, image, target, attack knobs)."""
        key = ("attack", self.gallery_name, index, goal, tuple(sorted(knobs.items())))

        def run() -> tuple[torch.Tensor, str]:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                x_adv = self._attack(index, goal, knobs)
            return x_adv, "\n".join(dict.fromkeys(f"warning: {w.message}" for w in caught))

        return self.cache.get(key, run)

    def _attack(self, index: int, goal: int | None, knobs: dict[str, Any]) -> torch.Tensor:
        x = self.images[index : index + 1]
        function, norm, _, _ = ATTACKS[knobs["attack"]]
        if function == "fgsm":
            return attacks.fgsm(self.model, x, goal, epsilon=knobs["epsilon"])
        if function == "pgd":
            return attacks.pgd(
                self.model, x, goal, epsilon=knobs["epsilon"], steps=knobs["steps"], norm=norm
            )
        if goal is None:
            raise ValueError(
                "the fooling image climbs the score of a chosen class: pick a class in "
                "'attack toward' (none: untargeted is for FGSM and PGD)"
            )
        return attacks.fooling_image(
            self.model, x, goal, step_size=FOOLING_STEP, max_steps=knobs["steps"]
        )

    def explanations(self, index: int, target: int) -> list[Explanation]:
        goal = None if self.target.value == PREDICTED else int(self.target.value)
        if goal == target:
            raise ValueError(
                f"the model already predicts {self.class_names[goal]} for this image: attack toward "
                "another class, or choose 'none: untargeted' to push it away from its class"
            )
        knobs = self.attack_knobs()
        self.last_adversarial, self.last_attack_note = self.adversarial(index, goal, knobs)
        before = renamed(self.explained("saliency", index, None), "saliency before")
        key = ("saliency after", self.gallery_name, index, goal, tuple(sorted(knobs.items())))
        after = self.cache.get(key, lambda: self._saliency_of(self.last_adversarial[0]))
        self.last_prediction = after.target
        return [before, after]

    def _saliency_of(self, image: torch.Tensor) -> Explanation:
        explained = explain(self.model, image, "saliency", None, class_names=self.class_names)
        return renamed(explained, "saliency after")

    def target_class(self, index: int) -> int:
        return int(self.probabilities(index).argmax())  # the maps explain predictions

    # ---- drawing ------------------------------------------------------------------------------
    def make_figure(self, index: int, explanations: list[Explanation]):
        before, after = explanations
        x = self.images[index]
        x_adv = self.last_adversarial[0]
        delta = (x_adv - x).detach().cpu()
        perturbation = delta.abs().amax(dim=0) * torch.sign(delta.sum(dim=0))  # (H, W), signed
        size = float(delta.abs().max())
        maps = {"before": before.maps["saliency before"], "after": after.maps["saliency after"]}
        self.last_facts = self.facts(x, x_adv, maps)

        figure = viz.NotebookFigure(figsize=(13.0, 3.3))
        axes = figure.subplots(1, 5)
        for ax, image, title, p in (
            (axes[0], x, f"clean: {before.target_name}", self.probabilities(index)[before.target]),
            (axes[1], x_adv, f"attacked: {after.target_name}",
             self.attacked_probabilities(x_adv)[after.target]),
        ):
            ax.imshow(viz.to_rgb(image.detach().cpu()), interpolation="nearest")
            ax.set_title(f"{title} ({float(p):.0%})", fontsize=13)
        scale = size if size > 0 else 1.0
        axes[2].imshow(perturbation.numpy(), cmap=viz.colormap_for(True), vmin=-scale, vmax=scale,
                       interpolation="nearest")
        amplified = f"×{1 / size:.0f}" if size > 0 else "none"
        axes[2].set_title(f"perturbation {amplified}\nmax |δ| = {size:.3f}", fontsize=13)
        top = max(maps["before"].max(), maps["after"].max(), 1e-12)  # one scale for both maps
        for ax, (when, explanation) in zip(axes[3:], (("before", before), ("after", after))):
            ax.imshow(maps[when], cmap=viz.colormap_for(False), vmin=0.0, vmax=top,
                      interpolation="nearest")
            ax.set_title(f"saliency {when}\n({explanation.target_name})", fontsize=13)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8, wspace=0.08)
        return figure

    def attacked_probabilities(self, x_adv: torch.Tensor) -> torch.Tensor:
        """Softmax of the model's output for the attacked (C, H, W) image."""
        with hooks.preserved_state(self.model), torch.no_grad():
            return torch.softmax(run_model(self.model, x_adv[None])[0].float(), dim=0)

    def facts(self, x: torch.Tensor, x_adv: torch.Tensor, maps: dict[str, np.ndarray]) -> dict:
        """The perturbation's size, and how much the saliency map moved (in float64)."""
        delta = (x_adv - x).detach().double()
        before, after = (torch.from_numpy(np.ascontiguousarray(m)).double()[None] for m in maps.values())
        k = max(1, round(TOP_K_FRACTION * before.numel()))
        return {
            "linf": float(delta.abs().max()),
            "l2": float(delta.norm()),
            "k": k,
            "topk": float(topk_intersection(after, before, k)[0]),
            "spearman": float(rank_correlation(after, before)[0]),
        }

    def caption_html(self, index: int, explanations: list[Explanation]) -> str:
        before, after = explanations
        goal = self.target.value
        if goal == PREDICTED:
            fooled = after.target != before.target
            aim = f"away from <b>{html.escape(before.target_name)}</b>"
        else:
            fooled = after.target == goal
            aim = f"toward <b>{html.escape(self.class_names[goal])}</b>"
        f = self.last_facts
        spearman = "n/a" if math.isnan(f["spearman"]) else f"{f['spearman']:.2f}"
        lines = [
            f"<b>{html.escape(self.image_names[index])}</b> · {html.escape(self.knobs['attack'].value)} "
            f"{aim}: <b>{'fooled' if fooled else 'not fooled'}</b> "
            f"({html.escape(before.target_name)} → {html.escape(after.target_name)})",
            f"perturbation: max |δ| {f['linf']:.3f}, L2 length {f['l2']:.2f} · saliency map moved: "
            f"top-{f['k']} intersection <b>{f['topk']:.2f}</b>, Spearman rank correlation "
            f"<b>{spearman}</b> (1 = unchanged)",
        ]
        notes = [self.last_attack_note] + [e.note for e in explanations]
        lines += [html.escape(note).replace("\n", "<br>") for note in notes if note]
        return "<div style='font-size:15px'>" + "<br>".join(lines) + "</div>"


def renamed(explanation: Explanation, title: str) -> Explanation:
    """A copy of a one-map explanation with its map under ``title`` (the cached one unchanged):
    the maps before and after the attack must not share a name in ``last_maps``."""
    (only,) = explanation.maps.values()
    return dataclasses.replace(explanation, maps={title: only})


def attack_dashboard(
    model=None, images=None, class_names=None, *, image_names=None, gallery_name="digits"
) -> AttackDashboard:
    """The lesson 09 dashboard (an ipywidgets.VBox that displays itself). With no arguments: the
    digits lab model and one test digit of each class, with a model choice among the lab models;
    pass ``model``, ``images`` (N, C, H, W) in [0, 1] and ``class_names`` to attack your own."""
    return AttackDashboard(
        model, images, class_names, image_names=image_names, gallery_name=gallery_name
    )


__all__ = ["ATTACKS", "AttackDashboard", "attack_dashboard"]
