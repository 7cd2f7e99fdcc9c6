"""Input x gradient and DeepLIFT with the rescale rule (issue 22): a network worked out by hand,
summation to delta on the lab models for every baseline, and the identities with the gradient."""

from __future__ import annotations

import pytest
import torch
from conftest import linear_net, small_cnn
from test_lrp import TWO_X, bias_free, lab, two_layers
from torch import nn

from gradviz_lab.attribution import deeplift, input_gradient, input_x_gradient
from gradviz_lab.attribution.baselines import make_baseline

F64 = torch.float64


def test_deeplift_on_two_layers_worked_out_by_hand():
    # x = (1, 2), x' = 0: z1 = (-0.5, 3), z1' = b1 = (0.5, -1); a1 = (0, 3), a1' = (0.5, 0);
    # rescale multipliers of the ReLUs: (0 - 0.5)/(-1) = 0.5 and (3 - 0)/4 = 0.75;
    # m(x) = W1^T (m_relu * W2) = W1^T (0.5, 1.5) = (0.5 + 3, -0.5 + 1.5) = (3.5, 1);
    # attributions (x - 0) m = (3.5, 2), summing to y(x) - y(x') = 7 - 1.5
    got = deeplift(two_layers(), TWO_X, 0, baseline="zeros")
    torch.testing.assert_close(got.flatten(), torch.tensor([3.5, 2.0], dtype=F64))
    # the gradient at x would give x * grad = (1, 2) * (4, 2) = (4, 4): DeepLIFT differs
    torch.testing.assert_close(input_x_gradient(two_layers(), TWO_X, 0).flatten(),
                               torch.tensor([4.0, 4.0], dtype=F64))


def test_on_a_linear_model_deeplift_is_input_times_gradient():
    model = linear_net()
    x = torch.rand(3, 2, 4, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(deeplift(model, x, [0, 1, 2], baseline="zeros"),
                               input_x_gradient(model, x, [0, 1, 2]), rtol=1e-12, atol=1e-14)
    # and with any baseline, (x - x') W
    grey = deeplift(model, x, [0, 1, 2], baseline="grey")
    torch.testing.assert_close(grey, (x - 0.5) * input_gradient(model, x, [0, 1, 2]))


@pytest.mark.parametrize("baseline", ["zeros", "grey", "mean", "blur", 0.3])
@pytest.mark.parametrize("name", ["shapes", "digits"])
def test_deeplift_sums_to_the_difference_of_the_scores(name, baseline):
    model, x = lab(name)
    x_base = make_baseline(x, baseline)
    gap = model(x)[:, 1] - model(x_base)[:, 1]
    total = deeplift(model, x, 1, baseline=baseline).sum((1, 2, 3))
    torch.testing.assert_close(total, gap.detach(), rtol=1e-10, atol=1e-12)
    # the plain gradient does not sum to it, so this can fail
    assert ((x - x_base) * input_gradient(model, x, 1)).sum((1, 2, 3)).sub(gap).abs().max() > 1e-3


def test_with_a_zero_baseline_on_a_bias_free_relu_network_deeplift_is_input_times_gradient():
    model, x = lab("shapes")
    model = bias_free(model)  # every unit of the zero image is 0: the multipliers are gradients
    torch.testing.assert_close(deeplift(model, x, 2, baseline="zeros"),
                               input_x_gradient(model, x, 2), rtol=1e-9, atol=1e-12)


def test_in_place_relus_and_batches_and_the_model_left_as_it_was():
    model, twin = small_cnn(inplace=True).double(), small_cnn(inplace=False).double()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2), dtype=F64)
    batch = deeplift(model, x, [0, 1, 2], baseline="blur")
    assert torch.equal(batch, deeplift(twin, x, [0, 1, 2], baseline="blur"))
    singles = torch.cat([deeplift(model, x[i:i + 1], i, baseline="blur") for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=1e-10, atol=1e-13)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_bad_baselines_are_refused_with_the_vocabulary():
    with pytest.raises(ValueError, match="baseline must be one of"):
        deeplift(small_cnn(), torch.rand(1, 3, 8, 8), 0, baseline="white")
    with pytest.raises(ValueError):
        deeplift(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), torch.rand(1, 3, 2, 2), 0,
                 baseline=torch.rand(5, 5))
