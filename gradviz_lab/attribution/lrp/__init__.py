"""Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019).

    from gradviz_lab.attribution import lrp
    relevance = lrp(model, x, target=None, composite="epsilon-plus")   # (B, C, H, W)

The score y_c is shared out, layer by layer from the output to the pixels, by the rules of
``rules.py`` (one formula each), chosen per layer by a composite (``composites.py``) and applied
by the hooks of ``propagate.py``. Modules: rules (the formulas), composites (which rule where),
layers (the layers as affine maps; the batch-norm canonizer), propagate (the relevance pass).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..._boundary import public
from ..._checks import check_choice
from ..._forward import run_model
from ...targets import Target
from .._common import finite_map, gradients_on
from .composites import COMPOSITES, RULES, Composite, composite as make_composite, rule
from .propagate import MAXPOOL, relevance_rules, start_relevance
from .rules import AlphaBeta, Epsilon, Flat, Gamma, Rule, WSquare, ZBox, Zero, ZPlus


@public
def lrp(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    composite: str | Composite = "epsilon-plus",
    epsilon: float = 1e-6,
    gamma: float = 0.25,
    low: float = 0.0,
    high: float = 1.0,
    maxpool: str = "winner",
    layers: Mapping[str, str | Rule] | None = None,
) -> torch.Tensor:
    """The relevance of each input value for the target score, by layer-wise relevance propagation.

    The pass starts with R = y_c at the target class (in general y * d score/dy) and applies,
    from the output down, the rule the composite gives each layer (see ``composites.py``):

        composite  a name of ``COMPOSITES`` ("epsilon-plus", "epsilon-gamma-box", "lrp-0",
                   "epsilon", "gamma", "z-plus", "alpha1-beta0", "alpha2-beta1", ...) or a
                   ``Composite``; ``layers`` overrides named layers: {"features.0": "flat"}
        epsilon    LRP-epsilon's stabiliser (> 0), in units of the layer's z
        gamma      LRP-gamma's boost of positive weights (>= 0)
        low, high  the range of the pixels, for the z^B (z-box) rule of the first layer
        maxpool    "winner": each window's relevance to its largest input (the gradient's
                   choice); "average": shared in proportion to the inputs, as an average pool

    Conservation: each rule hands down what it received, except what the biases and epsilon
    absorb (and what z+ and gamma lose at units whose denominators are 0); on a bias-free ReLU
    network LRP-0 sums to y_c. On a ReLU network, LRP-0 = input x gradient (Montavon 2019, 10.2).

    Covered: Linear, Conv1d/2d/3d; batch norm right after one of them, folded into it for the
    pass without writing the model (``layers.folded``); average and adaptive average pooling
    (proportional), max pooling (``maxpool``); element-wise activations and dropout (relevance
    passes through); flatten, view, reshape between modules. torchvision VGG works. Refused
    with a clear error naming the layer: other module types, and operations between modules
    other than reshapes, among them torchvision ResNet's skip connections (a sum would need its
    own rule). Returns (B, C, H, W), in the model's dtype.
    """
    check_choice(maxpool, "maxpool", MAXPOOL)
    if not isinstance(composite, Composite):
        composite = make_composite(composite, layers, epsilon=epsilon, gamma=gamma, low=low,
                                   high=high)
    elif layers:
        raise ValueError("layers= overrides a composite given by name; for a Composite, set "
                         "its own layers field")
    with gradients_on():
        x = x.detach().clone().requires_grad_(True)
        with relevance_rules(model, composite, maxpool):
            output = start_relevance(run_model(model, x))
        (relevance,) = torch.autograd.grad(target(output).sum(), x)
    return finite_map(relevance, "relevance")


__all__ = ["lrp", "Composite", "COMPOSITES", "RULES", "rule", "make_composite", "Rule", "Zero",
           "Epsilon", "Gamma", "ZPlus", "AlphaBeta", "ZBox", "Flat", "WSquare"]
