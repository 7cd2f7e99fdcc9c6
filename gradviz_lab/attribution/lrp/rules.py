"""The LRP rules, each one formula: how the relevance R_k of a layer's outputs is shared out
among its inputs j (Bach et al. 2015; Montavon et al. 2019, "Layer-wise relevance propagation:
an overview", whose notation this follows).

A layer here is affine, z_k = sum_j a_j w_jk + b_k (``nn.Linear``, ``nn.Conv*``, an average pool,
or a convolution with the batch norm after it folded in: ``layers.Affine``). Every rule that
multiplies by the input is computed the same way, with one gradient:

    z  = rho(layer)(a)                 the layer with its weights changed by the rule
    s  = R / den(z)                    each output's relevance per unit of (stabilised) z
    c  = d(z . s)/da                   = sum_k rho(w_jk) s_k (autograd: any conv, any stride)
    R_j = a_j c_j

    LRP-0        R_j = sum_k a_j w_jk / z_k R_k                            (z_k = 0: R_k is lost)
    LRP-epsilon  R_j = sum_k a_j w_jk / (z_k + eps sign(z_k)) R_k          sign(0) = +1, eps > 0
    LRP-gamma    R_j = sum_k a_j (w_jk + gamma w_jk^+) / sum_j' a_j' (w_j'k + gamma w_j'k^+) R_k
    LRP-z+       R_j = sum_k a_j w_jk^+ / sum_j' a_j' w_j'k^+ R_k          (bias ignored)
    alpha-beta   R_j = sum_k (alpha (a_j w_jk)^+ / z_k^+ - beta (a_j w_jk)^- / z_k^-) R_k,
                 alpha - beta = 1, z_k^+- = sum_j (a_j w_jk)^+- (bias ignored)
    z^B (box)    R_i = sum_j (x_i w_ij - l_i w_ij^+ - h_i w_ij^-) / sum_i'(...) R_j,
                 for pixels known to lie in [l, h]: the first layer (bias ignored)
    flat         R_i = sum_j 1 / sum_i' 1 R_j          (relevance spread over the receptive field)
    w^2          R_i = sum_j w_ij^2 / sum_i' w_i'j^2 R_j

LRP-gamma and LRP-z+ assume inputs a_j >= 0 (they follow a ReLU); z^B, flat and w^2 are meant
for the first layer, whose inputs are pixels. With gamma = 0 the gamma rule is LRP-0; as
gamma -> infinity it becomes LRP-z+; alpha=1, beta=0 equals z+ on non-negative inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .layers import Affine


def divide(r: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """r / z, and 0 where z = 0 (a unit with zero input passes no relevance down)."""
    return torch.where(z != 0, r / torch.where(z != 0, z, 1), 0)


def input_times_share(f, a: torch.Tensor, r: torch.Tensor, den=divide) -> torch.Tensor:
    """a_j c_j with c = d(f(a) . den(R, f(a)))/da: the shared step of every rule above.
    (A layer that kept its own forward pass, ``Affine.own``, is not run again.)"""
    if getattr(f, "own", None) is not None:
        a_in, z = f.own
        (c,) = torch.autograd.grad(z, a_in, den(r, z.detach()))
        return a * c
    a = a.detach().requires_grad_(True)
    z = f(a)
    (c,) = torch.autograd.grad(z, a, den(r, z.detach()))
    return a.detach() * c


@dataclass(frozen=True)
class Rule:
    """A rule: ``rule(layer, a, R) -> R_in`` (see the module docstring)."""

    name = "rule"

    def __call__(self, layer: Affine, a: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Zero(Rule):
    """LRP-0: R_j = sum_k a_j w_jk / z_k R_k."""

    name = "lrp-0"

    def __call__(self, layer, a, r):
        return input_times_share(layer, a, r)


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon: R_j = sum_k a_j w_jk / (z_k + eps sign(z_k)) R_k, sign(0) = +1."""

    epsilon: float = 1e-6
    name = "epsilon"

    def __post_init__(self) -> None:
        if not isinstance(self.epsilon, (int, float)) or not self.epsilon > 0:
            raise ValueError(f"epsilon must be a number > 0 (it keeps z + eps sign(z) away from "
                             f"0; use the LRP-0 rule for eps = 0), got {self.epsilon!r}")

    def __call__(self, layer, a, r):
        def den(r, z):
            return r / (z + self.epsilon * torch.where(z >= 0, 1.0, -1.0).to(z.dtype))

        return input_times_share(layer, a, r, den)


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma: the weights (and bias) w + gamma w^+ in numerator and denominator."""

    gamma: float = 0.25
    name = "gamma"

    def __post_init__(self) -> None:
        if not isinstance(self.gamma, (int, float)) or not self.gamma >= 0:
            raise ValueError(f"gamma must be a number >= 0 (gamma = 0 is LRP-0; larger favours "
                             f"positive contributions), got {self.gamma!r}")

    def __call__(self, layer, a, r):
        def more_positive(t):
            return t + self.gamma * t.clamp(min=0)

        return input_times_share(layer.with_weights(more_positive, more_positive), a, r)


@dataclass(frozen=True)
class ZPlus(Rule):
    """LRP-z+: R_j = sum_k a_j w_jk^+ / sum_j' a_j' w_j'k^+ R_k (bias ignored)."""

    name = "z-plus"

    def __call__(self, layer, a, r):
        return input_times_share(layer.with_weights(lambda w: w.clamp(min=0), None), a, r)


@dataclass(frozen=True)
class AlphaBeta(Rule):
    """alpha-beta: positive contributions (a_j w_jk)^+ get alpha R_k, negative ones -beta R_k."""

    alpha: float = 1.0
    beta: float = 0.0
    name = "alpha-beta"

    def __post_init__(self) -> None:
        if not (self.beta >= 0 and abs(self.alpha - self.beta - 1) < 1e-12):
            raise ValueError(f"alpha-beta needs beta >= 0 and alpha - beta = 1 (so relevance is "
                             f"conserved), got alpha={self.alpha!r}, beta={self.beta!r}")

    def __call__(self, layer, a, r):
        pos_w, neg_w = layer.with_weights(lambda w: w.clamp(min=0), None), \
            layer.with_weights(lambda w: w.clamp(max=0), None)
        # After a ReLU every a_j >= 0: the terms of a^- are all zero, and skipping them halves
        # the work (zip below pairs the weights with the parts there are).
        signs = (a.clamp(min=0), a.clamp(max=0)) if bool((a < 0).any()) else (a,)

        def part(w_for_pos_a, w_for_neg_a):
            # z^+ (or z^-) = sum_j (a_j w_jk)^+ : positive a with w^+, negative a with w^-
            inputs = [t.detach().requires_grad_(True) for t in signs]
            z = sum(w(t) for w, t in zip((w_for_pos_a, w_for_neg_a), inputs))
            shares = torch.autograd.grad(z, inputs, divide(r, z.detach()))
            return sum(t * c for t, c in zip(signs, shares))

        positive = part(pos_w, neg_w)
        if self.beta == 0:
            return self.alpha * positive
        return self.alpha * positive - self.beta * part(neg_w, pos_w)


@dataclass(frozen=True)
class ZBox(Rule):
    """z^B: R_i = sum_j (x_i w_ij - l_i w_ij^+ - h_i w_ij^-) / sum_i'(...) R_j, x in [low, high]."""

    low: float = 0.0
    high: float = 1.0
    name = "z-box"

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"the z-box rule needs low < high (the pixels' range), got "
                             f"low={self.low!r}, high={self.high!r}")

    def __call__(self, layer, a, r):
        plain = layer.with_weights(lambda w: w, None)  # the formula has no bias
        pos_w = layer.with_weights(lambda w: w.clamp(min=0), None)
        neg_w = layer.with_weights(lambda w: w.clamp(max=0), None)
        x, low, high = (t.detach().requires_grad_(True) for t in
                        (a, torch.full_like(a, self.low), torch.full_like(a, self.high)))
        z = plain(x) - pos_w(low) - neg_w(high)
        c, c_low, c_high = torch.autograd.grad(z, (x, low, high), divide(r, z.detach()))
        return x.detach() * c + low.detach() * c_low + high.detach() * c_high


@dataclass(frozen=True)
class Flat(Rule):
    """flat: R_i = sum_j 1 / sum_i' 1 R_j (every weight 1, inputs 1: only the connections count)."""

    name = "flat"

    def __call__(self, layer, a, r):
        return input_times_share(layer.with_weights(torch.ones_like, None), torch.ones_like(a), r)


@dataclass(frozen=True)
class WSquare(Rule):
    """w^2: R_i = sum_j w_ij^2 / sum_i' w_i'j^2 R_j (inputs replaced by 1)."""

    name = "w-square"

    def __call__(self, layer, a, r):
        return input_times_share(layer.with_weights(torch.square, None), torch.ones_like(a), r)
