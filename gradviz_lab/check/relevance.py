"""Checkers for lesson 11: one LRP rule at one layer, and the textbook loop over a network's layers.

The student writes (exercise 11)::

    layer_relevance(layer, a, R, rule, epsilon=1e-6, gamma=0.25, low=0.0, high=1.0) -> R_in
        rule "epsilon", "gamma" or "z-box" at one nn.Linear or nn.Conv2d, input a, relevance R
        of its outputs; R_in is shaped like a
    textbook_lrp(layers, x, c) -> (1, C, H, W)
        the relevance of one image for class c through a plain stack of layers: epsilon-gamma-box
        (z-box first, gamma in the convolutions, epsilon in the dense layers), max pooling shared
        as an average pool would

The references are the kit's own rules (``attribution.lrp.rule``) and ``attribution.lrp``. The
typical mistakes are written as LRP rules too (each a ``Rule`` doing one thing wrong), so the same
wrong rule is replayed at one layer or inside a whole pass: a mistake in ``layer_relevance`` is
named by ``check_textbook_lrp`` as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import attribution
from ..attribution.lrp import Composite, Epsilon, Gamma, Rule, ZBox
from ..attribution.lrp import rule as lrp_rule
from ..attribution.lrp.layers import affine_of
from ..attribution.lrp.rules import divide, input_times_share
from .harness import Case, CheckReport, Method, _not_a_function, run_checks, seeded

# ----------------------------------------------------------------------------------------------
# Typical mistakes, each written as a (wrong) rule on purpose.


@dataclass(frozen=True)
class _EpsilonWithoutSign(Rule):
    """R_j = sum_k a_j w_jk / (z_k + eps) R_k: eps pushes a negative z_k towards 0, not away."""

    epsilon: float = 1e-6

    def __call__(self, layer, a, r):
        return input_times_share(layer, a, r, lambda r, z: divide(r, z + self.epsilon))


@dataclass(frozen=True)
class _GammaOnEveryWeight(Rule):
    """LRP-gamma with every weight grown: (1 + gamma) w, or w + gamma |w| ("absolute")."""

    gamma: float = 0.25
    absolute: bool = False

    def __call__(self, layer, a, r):
        def grown(t):
            return t + self.gamma * (t.abs() if self.absolute else t)

        return input_times_share(layer.with_weights(grown, grown), a, r)


@dataclass(frozen=True)
class _BiasDropped(Rule):
    """``rule`` computed with z_k = sum_j a_j w_jk, the bias left out of the denominator."""

    rule: Rule = Epsilon()

    def __call__(self, layer, a, r):
        return self.rule(layer.with_weights(lambda w: w, None), a, r)


def _knobs_rule(name: str, knobs: dict) -> Rule:
    """The kit's rule ``name`` with the case's epsilon, gamma, low and high."""
    return lrp_rule(name, **{k: knobs[k] for k in ("epsilon", "gamma", "low", "high") if k in knobs})


# hint -> make(rule name, knobs): the wrong rule for the rule a case asks for (None: this
# mistake is not about that rule, and the right rule is replayed)
LAYER_MISTAKES = {
    "add epsilon with the sign of z_k, z_k + eps sign(z_k) (sign(0) = +1): a plain z_k + eps "
    "moves a negative z_k towards 0, and its relevance blows up instead of being damped.":
        lambda name, k: _EpsilonWithoutSign(k.get("epsilon", 1e-6)) if name == "epsilon" else None,
    "grow only the positive weights and bias, w + gamma w+ and b + gamma b+: growing every weight, "
    "(1 + gamma) w, cancels in R_k / z_k and gives back LRP-0.":
        lambda name, k: _GammaOnEveryWeight(k.get("gamma", 0.25)) if name == "gamma" else None,
    "grow only the positive weights, w + gamma w+ (w.clamp(min=0)), not w + gamma |w|: the "
    "negative weights must stay as they are.":
        lambda name, k: (_GammaOnEveryWeight(k.get("gamma", 0.25), absolute=True)
                         if name == "gamma" else None),
    "keep the bias in the denominator, z_k = sum_j a_j w_jk + b_k (for gamma, b_k + gamma "
    "b_k+): dropping it hands the bias's share to the inputs. Your relevance then sums to "
    "exactly what the layer received, but LRP lets the bias keep its share: sum_j R_j = "
    "sum_k R_k (z_k - b_k) / z_k, conserved only in a layer without bias.":
        lambda name, k: _BiasDropped(_knobs_rule(name, k)) if name in ("epsilon", "gamma") else None,
}

INPUT_RULE_HINT = ("the first layer's inputs are pixels in [low, high], not ReLU outputs: "
                   "rule='z-box' needs its own formula, z = W x - W+ l - W- h (no bias) and "
                   "R = x * c + l * c_l + h * c_h. You computed the {} rule there.")
for _other in ("epsilon", "gamma", "lrp-0"):
    LAYER_MISTAKES[INPUT_RULE_HINT.format(_other)] = (
        lambda name, k, other=_other: _knobs_rule(other, k) if name == "z-box" else None)


def _layer_method(make_rule) -> Method:
    """f(layer, a, R, rule, **knobs) applying make_rule(rule, knobs) (the right rule if None).
    (The argument is called ``rule``, as in the student's function: the harness passes it by
    name.)"""

    def method(layer, a, relevance, rule, **knobs):
        chosen = make_rule(rule, knobs) or _knobs_rule(rule, knobs)
        return chosen(affine_of("layer", layer), a, relevance).detach()

    return method


# ----------------------------------------------------------------------------------------------
# Task 1: one layer, one rule


def layer_cases() -> list[Case]:
    """Six seeded layers, two per rule: a Linear and a Conv2d (one with stride 2, batches of 1 to 3).

    Every layer has weights and biases of both signs, and its inputs give some negative z_k (so
    the sign of epsilon shows); epsilon and gamma are large enough for their mistakes to show.
    """
    specs = [  # (rule, layer, input shape, knobs, input range)
        ("epsilon", lambda: nn.Linear(6, 4), (3, 6), {"epsilon": 0.5}, (0.0, 1.0)),
        ("epsilon", lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 5, 5), {"epsilon": 0.1}, (0.0, 1.0)),
        ("gamma", lambda: nn.Linear(6, 4), (3, 6), {"gamma": 1.0}, (0.0, 1.0)),
        ("gamma", lambda: nn.Conv2d(3, 4, 3, stride=2), (2, 3, 7, 7), {"gamma": 0.25}, (0.0, 1.0)),
        ("z-box", lambda: nn.Conv2d(1, 4, 3, padding=1), (1, 1, 6, 6), {"low": 0.0, "high": 1.0},
         (0.0, 1.0)),
        ("z-box", lambda: nn.Linear(5, 3), (2, 5), {"low": -1.0, "high": 2.0}, (-1.0, 2.0)),
    ]
    cases = []
    for seed, (name, make, shape, knobs, (low, high)) in enumerate(specs):
        layer = seeded(seed, make).double().eval()
        generator = torch.Generator().manual_seed(300 + seed)
        with torch.no_grad():  # biases of both signs, in a seeded order
            out = layer.bias.numel()
            layer.bias.copy_(torch.linspace(-0.4, 0.4, out, dtype=torch.float64)[
                torch.randperm(out, generator=generator)])
        a = low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            z = layer(a)
        relevance = torch.rand(z.shape, generator=generator, dtype=torch.float64) - 0.2
        setting = ", ".join(f"{k} {v}" for k, v in knobs.items())
        cases.append(Case(f"rule {name!r}, {setting}, {type(layer).__name__} on {tuple(shape)}",
                          layer, a, relevance, {"rule": name, **knobs}))
    return cases


def check_layer_relevance(student: Method) -> CheckReport:
    """layer_relevance(layer, a, R, rule, epsilon, gamma, low, high) -> the relevance of the
    layer's inputs, shaped like a, by rule "epsilon", "gamma" or "z-box" (Montavon et al. 2019):

        epsilon  R_j = sum_k a_j w_jk / (z_k + eps sign(z_k)) R_k,  z_k = sum_j a_j w_jk + b_k
        gamma    R_j = sum_k a_j (w_jk + gamma w_jk+) / sum_j' a_j' (w_j'k + gamma w_j'k+) R_k,
                 the bias b_k + gamma b_k+ in the denominator
        z-box    R_i = sum_j (x_i w_ij - l_i w_ij+ - h_i w_ij-) / sum_i' (...) R_j  (no bias)
    """
    mistakes = {hint: _layer_method(make) for hint, make in LAYER_MISTAKES.items()}
    return run_checks("layer_relevance", student, _layer_method(lambda name, k: None),
                      layer_cases(), mistakes, atol=1e-9)


# ----------------------------------------------------------------------------------------------
# Task 2: the loop over the layers


def plain_stack(seed: int, in_channels: int = 1, classes: int = 4, inplace: bool = False) -> nn.Sequential:
    """Conv-ReLU-MaxPool-Conv-ReLU-MaxPool-Flatten-Linear-ReLU-Linear for 12x12 images: the digits
    model in small, a plain stack of layers (``list(model)`` is what textbook_lrp is given)."""

    def make():
        return nn.Sequential(
            nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(6 * 3 * 3, 8), nn.ReLU(inplace=inplace), nn.Linear(8, classes),
        )

    return seeded(seed, make).double().eval()


def textbook_cases() -> list[Case]:
    """Three seeded stacks: one grey image, two RGB images with in-place ReLUs, three grey images."""
    cases = []
    for seed, (batch, channels, inplace) in enumerate([(1, 1, False), (2, 3, True), (3, 1, False)]):
        model = plain_stack(seed, channels, inplace=inplace)
        generator = torch.Generator().manual_seed(400 + seed)
        x = torch.rand(batch, channels, 12, 12, generator=generator, dtype=torch.float64)
        target = torch.randint(0, 4, (batch,), generator=generator)
        cases.append(Case(f"{batch} image(s) {channels}x12x12, in-place ReLU: {inplace}",
                          model, x, target, inplace=inplace))
    return cases


def _lrp(model, x, target, composite: str | Composite = "epsilon-gamma-box", **knobs):
    return attribution.lrp(model, x, target, composite=composite,
                           **({"maxpool": "average"} | knobs))


def _with_rules(first: Rule, conv: Rule, dense: Rule) -> Method:
    return lambda model, x, target: _lrp(model, x, target, Composite(first, conv, dense))


def _started_at_one(model, x, target):
    """The mistake: R = 1 at class c (the one-hot) instead of y_c."""
    with torch.no_grad():
        score = model(x).gather(1, target.view(-1, 1)).view(-1, 1, 1, 1)
    return _lrp(model, x, target) / score


FIRST_LAYER_HINT = ("the first layer (i == 0) sees pixels, not ReLU outputs: give it "
                    "layer_relevance(..., 'z-box'). Your loop used the {} rule there.")

TEXTBOOK_MISTAKES = {
    **{FIRST_LAYER_HINT.format(other):
       (lambda model, x, target, other=other: _lrp(model, x, target, layers={"0": other}))
       for other in ("gamma", "epsilon", "lrp-0")},
    "share a max pool's relevance as an average pool of the same size would (nn.AvgPool2d and "
    "the gradient trick), not all of it to each window's largest input.":
        lambda model, x, target: _lrp(model, x, target, maxpool="winner"),
    "start with R = y_c at class c (the output times the one-hot), not with 1.": _started_at_one,
    "your loop is right, but layer_relevance's gamma rule grows every weight (run "
    "check_layer_relevance): grow only the positive ones, w + gamma w+.":
        _with_rules(ZBox(), _GammaOnEveryWeight(0.25), Epsilon()),
    "your loop is right, but layer_relevance drops the bias from the denominator (run "
    "check_layer_relevance): z_k = sum_j a_j w_jk + b_k.":
        _with_rules(ZBox(), _BiasDropped(Gamma()), _BiasDropped(Epsilon())),
}


def _one_image_at_a_time(student):
    """textbook_lrp(layers, x, c) for each image of the batch, the results stacked: the harness's
    call shape f(model, x, target)."""

    def method(model, x, target):
        maps = [student(list(model), x[i:i + 1], int(target[i])) for i in range(len(x))]
        for one in maps:
            if not isinstance(one, torch.Tensor):
                return one  # the harness says what it got instead of a tensor
            if tuple(one.shape) != (1, *x.shape[1:]):
                raise ValueError(f"textbook_lrp returned shape {tuple(one.shape)} for one image; "
                                 f"expected (1, C, H, W) = {(1, *x.shape[1:])}")
        return torch.cat(maps)

    return method


def check_textbook_lrp(student) -> CheckReport:
    """textbook_lrp(layers, x, c) -> (1, C, H, W): the relevance of one image x for class c, by the
    epsilon-gamma-box composite through a plain stack of layers (``list(model)``): R = y_c at the
    top; ReLU and Flatten pass it through (reshaped), a max pool shares it as an average pool of
    the same size, the first layer takes "z-box", the other convolutions "gamma", the dense
    layers "epsilon" (default epsilon and gamma). Equal to
    ``attribution.lrp(model, x, c, composite="epsilon-gamma-box", maxpool="average")``."""
    if not callable(student):
        return _not_a_function("textbook_lrp", student)
    return run_checks("textbook_lrp", _one_image_at_a_time(student), _lrp, textbook_cases(),
                      TEXTBOOK_MISTAKES, atol=1e-9)
