"""Lesson 11, live: layer-wise relevance propagation, one knob at a time.

Knobs: the composite (which rule for which layer: ``attribution.lrp.COMPOSITES``), or "per layer
group" and a rule for each group (the first layer, the other convolutions, the dense layers:
how ``composites.py`` describes every composite); LRP-epsilon's stabiliser epsilon and
LRP-gamma's boost gamma (they act wherever their rule is used); max pooling ("winner": each
window's relevance to its largest input; "average": shared as by an average pool); the target
class; and, for the kit's galleries, the lab model. The picture is the image and its relevance
map |R| summed over channels (``viz.to_2d``), the same map as ``gradviz explain --method lrp``.

    from gradviz_lab.widgets.lrp import lrp_dashboard
    dash = lrp_dashboard()                                # the shapes model and images
    dash.set(composite="epsilon-gamma-box", gamma=0.5)
    dash.set(composite="per layer group", first="z-box", conv="gamma", dense="epsilon")
    dash.last_map                                         # the (H, W) map on show

Every map is cached per (model, image, target, knobs the rules use): going back is instant.
A model LRP does not cover (a skip connection, attention: the shapes-vit model) gives an error
in the dashboard that names the layer, as ``attribution.lrp`` does.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from .. import viz
from ..attribution.lrp import COMPOSITES, RULES, Composite, rule
from ..attribution.lrp import lrp as lrp_relevance
from .base import WIDE, Dashboard
from .explaining import Explanation

SLIDER = {"continuous_update": False, "style": WIDE}  # recompute on release
PER_GROUP = "per layer group"  # the composite choice that hands the rules to the three group knobs
GROUPS = ("first", "conv", "dense")  # a Composite's fields: first layer, convolutions, dense layers
EPSILON_EXPONENTS = (-6, 0)  # the epsilon slider runs from 1e-6 to 1 on a log scale


class LrpDashboard(Dashboard):
    """Lesson 11: relevance propagation with a composite or a rule per layer group, epsilon,
    gamma and the max-pooling choice."""

    heading = "Layer-wise relevance propagation: the score shared out layer by layer"

    def make_knobs(self) -> dict[str, widgets.ValueWidget]:
        first, conv, dense = COMPOSITES["epsilon-plus"]
        knobs: dict[str, widgets.ValueWidget] = {
            "composite": widgets.Dropdown(
                options=list(COMPOSITES) + [PER_GROUP], value="epsilon-plus",
                description="composite", style=WIDE,
            ),
            "first": widgets.Dropdown(options=list(RULES), value=first, description="first layer",
                                      style=WIDE),
            "conv": widgets.Dropdown(options=list(RULES), value=conv, description="convolutions",
                                     style=WIDE),
            "dense": widgets.Dropdown(options=list(RULES), value=dense, description="dense layers",
                                      style=WIDE),
            "epsilon": widgets.FloatLogSlider(
                value=1e-6, base=10, min=EPSILON_EXPONENTS[0], max=EPSILON_EXPONENTS[1], step=0.5,
                description="epsilon ε", readout_format=".0e", **SLIDER,
            ),
            "gamma": widgets.FloatSlider(value=0.25, min=0.0, max=2.0, step=0.05,
                                         description="gamma γ", **SLIDER),
            "maxpool": widgets.ToggleButtons(options=["winner", "average"], value="winner",
                                             description="max pool"),
        }
        return {**knobs, **self.lab_model_knob()}

    def on_knobs_changed(self) -> None:
        """A named composite shows its rules in the group knobs (greyed out); "per layer group"
        makes them choosable."""
        name = self.knobs["composite"].value
        with self.quietly():
            for group, rule_name in zip(GROUPS, COMPOSITES.get(name, ())):
                self.knobs[group].value = rule_name
            for group in GROUPS:
                self.knobs[group].disabled = name != PER_GROUP

    # ---- what to show ------------------------------------------------------------------------
    def rule_names(self) -> tuple[str, str, str]:
        """The rules of the first layer, the convolutions and the dense layers on show."""
        name = self.knobs["composite"].value
        if name in COMPOSITES:
            return COMPOSITES[name]
        return tuple(self.knobs[group].value for group in GROUPS)

    def lrp_knobs(self) -> dict:
        """The knobs the rules on show use (others do not change the map, nor the cache key)."""
        names = self.rule_names()
        knobs = {"maxpool": self.knobs["maxpool"].value}
        if "epsilon" in names:
            knobs["epsilon"] = float(self.knobs["epsilon"].value)
        if "gamma" in names:
            knobs["gamma"] = float(self.knobs["gamma"].value)
        return knobs

    def explanations(self, index: int, target: int) -> list[Explanation]:
        names, knobs = self.rule_names(), self.lrp_knobs()
        key = ("lrp", self.gallery_name, index, target, names, tuple(sorted(knobs.items())))
        return [self.cache.get(key, lambda: self._relevance(index, target, names, knobs))]

    def _relevance(self, index: int, target: int, names: tuple[str, str, str],
                   knobs: dict) -> Explanation:
        params = {k: v for k, v in knobs.items() if k != "maxpool"}
        composite = Composite(*(rule(n, **params) for n in names))
        x = self.images[index : index + 1]
        relevance = lrp_relevance(self.model, x, target, composite=composite,
                                  maxpool=knobs["maxpool"])
        title = "LRP: " + " / ".join(names)
        return Explanation("lrp", target, self.class_names[target],
                           {title: viz.to_2d(relevance.detach().cpu())[0]})

    def caption_html(self, index: int, explanations: list[Explanation]) -> str:
        first, conv, dense = self.rule_names()
        rules = (f"rules: first layer <b>{html.escape(first)}</b>, convolutions "
                 f"<b>{html.escape(conv)}</b>, dense layers <b>{html.escape(dense)}</b>")
        return super().caption_html(index, explanations).replace("</div>", f"<br>{rules}</div>")


def lrp_dashboard(
    model=None, images=None, class_names=None, *, image_names=None, gallery_name="shapes"
) -> LrpDashboard:
    """The lesson 11 dashboard (an ipywidgets.VBox that displays itself). With no arguments: the
    shapes lab model and its shipped images, with a model choice among the lab models; pass
    ``model``, ``images`` (N, C, H, W) in [0, 1] and ``class_names`` to explain your own."""
    return LrpDashboard(
        model, images, class_names, image_names=image_names, gallery_name=gallery_name
    )


__all__ = ["GROUPS", "PER_GROUP", "LrpDashboard", "lrp_dashboard"]
