"""Composites: which rule applies to which layer (Montavon et al. 2019, section 10.3).

No single rule suits every layer. Near the output, few units compete and LRP-0 or LRP-epsilon
keep the explanation faithful to the function; in the middle of a convolutional network
LRP-gamma or LRP-z+ favour positive evidence and give less noisy maps; the first layer sees
pixels, not ReLU outputs, so it needs a rule made for its inputs (z^B for pixels in a known box,
or flat / w^2, which ignore the pixel values). A composite names a rule for the first affine
layer, one for the other convolutions and one for the dense (``nn.Linear``) layers; ``layers``
overrides any layer by name.

    name                   first layer   convolutions   dense layers
    lrp-0                  LRP-0         LRP-0          LRP-0
    epsilon                epsilon       epsilon        epsilon
    gamma                  gamma         gamma          gamma
    z-plus                 z+            z+             z+
    alpha1-beta0           alpha1-beta0  alpha1-beta0   alpha1-beta0
    alpha2-beta1           alpha2-beta1  alpha2-beta1   alpha2-beta1
    epsilon-plus           z+            z+             epsilon
    epsilon-plus-flat      flat          z+             epsilon
    epsilon-gamma-box      z^B           gamma          epsilon    (Montavon et al. 2019)
    epsilon-alpha2-beta1   alpha2-beta1  alpha2-beta1   epsilon

The knobs epsilon, gamma, low and high set the rules' parameters wherever the rules appear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import nn

from .rules import AlphaBeta, Epsilon, Flat, Gamma, Rule, WSquare, ZBox, Zero, ZPlus

# rule name -> how to make it from the knobs
RULES = {
    "lrp-0": lambda k: Zero(),
    "epsilon": lambda k: Epsilon(k["epsilon"]),
    "gamma": lambda k: Gamma(k["gamma"]),
    "z-plus": lambda k: ZPlus(),
    "alpha1-beta0": lambda k: AlphaBeta(1.0, 0.0),
    "alpha2-beta1": lambda k: AlphaBeta(2.0, 1.0),
    "z-box": lambda k: ZBox(k["low"], k["high"]),
    "flat": lambda k: Flat(),
    "w-square": lambda k: WSquare(),
}

# composite name -> (first layer, convolutions, dense layers)
COMPOSITES = {
    "lrp-0": ("lrp-0", "lrp-0", "lrp-0"),
    "epsilon": ("epsilon", "epsilon", "epsilon"),
    "gamma": ("gamma", "gamma", "gamma"),
    "z-plus": ("z-plus", "z-plus", "z-plus"),
    "alpha1-beta0": ("alpha1-beta0", "alpha1-beta0", "alpha1-beta0"),
    "alpha2-beta1": ("alpha2-beta1", "alpha2-beta1", "alpha2-beta1"),
    "epsilon-plus": ("z-plus", "z-plus", "epsilon"),
    "epsilon-plus-flat": ("flat", "z-plus", "epsilon"),
    "epsilon-gamma-box": ("z-box", "gamma", "epsilon"),
    "epsilon-alpha2-beta1": ("alpha2-beta1", "alpha2-beta1", "epsilon"),
}


@dataclass(frozen=True)
class Composite:
    """A rule for the first affine layer, the convolutions and the dense layers; ``layers``
    maps layer names (``model.named_modules()``) to rules that override those."""

    first: Rule
    conv: Rule
    dense: Rule
    layers: Mapping[str, Rule] = field(default_factory=dict)

    def rule_for(self, name: str, module: nn.Module, first: bool) -> Rule:
        if name in self.layers:
            return self.layers[name]
        if first:
            return self.first
        return self.dense if isinstance(module, nn.Linear) else self.conv


def rule(name: str, epsilon: float = 1e-6, gamma: float = 0.25, low: float = 0.0,
         high: float = 1.0) -> Rule:
    """The rule called ``name`` (one of ``RULES``) with these parameters."""
    if name not in RULES:
        raise ValueError(f"unknown LRP rule {name!r}; choose one of {', '.join(RULES)}")
    return RULES[name](dict(epsilon=epsilon, gamma=gamma, low=low, high=high))


def composite(name: str, layers: Mapping[str, str | Rule] | None = None, **knobs) -> Composite:
    """The composite called ``name`` (one of ``COMPOSITES``), its rules made with ``knobs``
    (epsilon, gamma, low, high); ``layers`` overrides named layers with a rule or a rule name."""
    if not isinstance(name, str) or name not in COMPOSITES:
        raise ValueError(f"unknown LRP composite {name!r}; choose one of {', '.join(COMPOSITES)}")
    Epsilon(knobs.get("epsilon", 1e-6)), Gamma(knobs.get("gamma", 0.25))  # bad knobs fail here,
    ZBox(knobs.get("low", 0.0), knobs.get("high", 1.0))  # even for rules the composite lacks
    first, conv, dense = (rule(n, **knobs) for n in COMPOSITES[name])
    overrides = {layer: r if isinstance(r, Rule) else rule(r, **knobs)
                 for layer, r in (layers or {}).items()}
    return Composite(first, conv, dense, overrides)
