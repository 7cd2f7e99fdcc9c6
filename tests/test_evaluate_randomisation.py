"""Model-parameter randomisation (Adebayo et al. 2018): copies with re-drawn layers, the caller's
model untouched, seeded and consistent along the cascade."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import assert_same_state, snapshot
from torch import nn

from gradviz_lab import attribution
from gradviz_lab.evaluate import (
    edge_map,
    randomisable_layers,
    randomisation_test,
    randomised_copy,
    reinitialise,
)

TOP_DOWN = ["classifier", "features.3", "features.0"]


def small_cnn(seed: int = 0) -> nn.Module:
    """conv-ReLU-conv-ReLU (+ a BatchNorm, which is not randomised), GAP, linear; 3 -> 4 classes."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential()
        model.add_module("features", nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
        ))  # fmt: skip
        model.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
        model.add_module("classifier", nn.Linear(8, 4))
        with torch.no_grad():  # BatchNorm statistics that are not the defaults
            model.features[1].running_mean.uniform_(-0.1, 0.1)
            model.features[1].running_var.uniform_(0.5, 1.5)
    return model.eval()


def images(n: int = 2, size: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def changed_layers(model: nn.Module, copy: nn.Module) -> list[str]:
    modules = dict(copy.named_modules())
    return [
        name for name, module in model.named_modules()
        if name and any(not torch.equal(p, q) for p, q in zip(module.parameters(recurse=False), modules[name].parameters(recurse=False)))
    ]  # fmt: skip


def test_layers_are_the_filter_layers_from_the_top_down():
    assert randomisable_layers(small_cnn()) == TOP_DOWN  # the BatchNorm (1-D weight) is not one


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
def test_cascading_copy_randomises_exactly_the_top_layers(depth):
    model = small_cnn()
    copy = randomised_copy(model, depth, cascading=True, seed=0)
    assert sorted(changed_layers(model, copy)) == sorted(TOP_DOWN[:depth])


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_independent_copy_randomises_one_layer(depth):
    model = small_cnn()
    copy = randomised_copy(model, depth, cascading=False, seed=0)
    assert changed_layers(model, copy) == [TOP_DOWN[depth - 1]]


def test_randomisation_leaves_the_model_and_the_global_random_state_identical():
    model = small_cnn().train()
    model.features[1].eval()  # a mixed state: train mode with one eval submodule (the BatchNorm)
    model.features[0].weight.requires_grad_(False)
    model.classifier.weight.grad = torch.full_like(model.classifier.weight, 0.5)
    model.register_forward_hook(lambda *args: None)
    before, rng = snapshot(model), torch.get_rng_state()
    randomised_copy(model, 3, seed=1)
    randomised_copy(model, 2, cascading=False, seed=1)
    randomisation_test(model, images(), attribution.input_gradient)  # the model exactly as it is
    assert_same_state(before, snapshot(model))
    assert torch.equal(rng, torch.get_rng_state())


def test_randomisation_test_leaves_an_eval_model_in_eval_mode():
    model = small_cnn()  # eval mode throughout: the other direction of the test above
    before = snapshot(model)
    randomisation_test(model, images(), attribution.input_gradient, cascading=False)
    assert_same_state(before, snapshot(model))


def test_copy_is_seeded_and_consistent_along_the_cascade():
    model = small_cnn()
    a, b = randomised_copy(model, 2, seed=7), randomised_copy(model, 2, seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    other = randomised_copy(model, 2, seed=8)
    assert not torch.equal(a.classifier.weight, other.classifier.weight)
    # depth 3 draws the same new weights for the top two layers as depth 2 (a slider moves along
    # one cascade), and independent randomisation of layer k draws the same weights as the cascade.
    deeper = randomised_copy(model, 3, seed=7)
    assert torch.equal(deeper.classifier.weight, a.classifier.weight)
    assert torch.equal(deeper.features[3].weight, a.features[3].weight)
    alone = randomised_copy(model, 2, cascading=False, seed=7)
    assert torch.equal(alone.features[3].weight, a.features[3].weight)


def test_new_weights_come_from_the_layers_own_initialiser():
    model = small_cnn()
    with torch.no_grad():
        model.features[3].weight.fill_(3.0)  # far outside the initialiser's range
    reinitialise(model.features[3], seed=0)
    w = model.features[3].weight
    fan_in = 6 * 3 * 3
    bound = 1 / math.sqrt(fan_in)  # PyTorch's default: kaiming_uniform(a=sqrt(5)) -> U(-1/sqrt(fan_in), ...)
    assert w.abs().max() <= bound
    assert w.std() > bound / 3  # spread over the range, not a constant
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        fresh = nn.Conv2d(6, 8, 3, padding=1)  # construction draws with reset_parameters
    assert torch.equal(w, fresh.weight) and torch.equal(model.features[3].bias, fresh.bias)


def test_randomised_copy_of_a_double_model_keeps_dtype():
    model = small_cnn().double()
    copy = randomised_copy(model, 3)
    assert all(p.dtype == torch.float64 for p in copy.parameters())


def test_a_double_model_gets_the_float32_draw_exactly():
    # The lessons randomise float64 copies of the lab models: the same seed must give the same
    # random network as for the float32 model, not another draw.
    single, double = randomised_copy(small_cnn(), 3, seed=5), randomised_copy(small_cnn().double(), 3, seed=5)
    for (name, a), (_, b) in zip(single.named_parameters(), double.named_parameters()):
        assert b.dtype == torch.float64 and torch.equal(a.double(), b), name


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_layers": 4}, ValueError, "0..3"),
        ({"n_layers": -1}, ValueError, "0..3"),
        ({"n_layers": 0, "cascading": False}, ValueError, "1..3"),
        ({"n_layers": 1.0}, TypeError, "int"),
        ({"n_layers": 1, "layers": ["features.9"]}, ValueError, "Valid layer names"),
        ({"n_layers": 1, "layers": ["features.2"]}, ValueError, "reset_parameters"),
        ({"n_layers": 1, "layers": "classifier"}, TypeError, "list"),
        ({"n_layers": 1, "seed": -1}, ValueError, "seed"),
        ({"n_layers": 1, "seed": 1.5}, ValueError, "seed"),
    ],
)
def test_randomised_copy_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        randomised_copy(small_cnn(), **kwargs)


@pytest.mark.parametrize(
    "call",
    [
        lambda model: randomisable_layers(model),
        lambda model: randomised_copy(model, 0),
        lambda model: randomisation_test(model, images(), edge_map),
    ],
    ids=["randomisable_layers", "randomised_copy", "randomisation_test"],
)
def test_a_model_without_filters_is_an_error(call):
    with pytest.raises(ValueError, match="no layer with learned filters"):
        call(nn.Sequential(nn.ReLU(), nn.Flatten()))


@pytest.mark.parametrize(
    "layer, seed, error, match",
    [
        (nn.ReLU(), 0, ValueError, "ReLU has no reset_parameters"),
        ("classifier", 0, TypeError, "torch.nn.Module"),
        (nn.Linear(2, 2), -1, ValueError, "seed must be a non-negative int"),
        (nn.Linear(2, 2), 1.5, ValueError, "seed must be a non-negative int"),
    ],
)
def test_reinitialise_rejects_bad_arguments(layer, seed, error, match):
    with pytest.raises(error, match=match):
        reinitialise(layer, seed)


def test_explicit_layer_order_is_used():
    model = small_cnn()
    copy = randomised_copy(model, 1, layers=["features.0", "classifier"])
    assert changed_layers(model, copy) == ["features.0"]


# --- the sanity check ---------------------------------------------------------------------------


def test_randomisation_test_rows_and_maps_match_the_copies():
    model, x = small_cnn(), images(3)
    table, maps = randomisation_test(model, x, attribution.input_gradient, target=[0, 1, 2], seed=3, return_maps=True)
    assert table.column("layer") == ["(none)", *TOP_DOWN]
    assert table.column("randomised") == [0, 1, 2, 3]
    assert table[0]["spearman"] == pytest.approx(1.0) and table[0]["ssim"] == pytest.approx(1.0)
    for depth in range(4):
        expected = attribution.input_gradient(randomised_copy(model, depth, seed=3), x, [0, 1, 2])
        assert torch.allclose(maps[depth], expected, atol=1e-6)
    # The maps of a fully random model are not those of the trained one.
    assert table[-1]["spearman"] < 0.9


def test_independent_rows_randomise_one_layer_each():
    model, x = small_cnn(), images(2)
    table, maps = randomisation_test(model, x, attribution.saliency, cascading=False, return_maps=True)
    assert table.column("randomised") == [0, 1, 1, 1]
    expected = attribution.saliency(randomised_copy(model, 3, cascading=False), x, target=model(x).argmax(1))
    assert torch.allclose(maps[3], expected, atol=1e-6)


def test_target_is_fixed_on_the_trained_model():
    model, x = small_cnn(), images(2)
    seen = []

    def recording(m, x, target):
        seen.append(target.clone())
        return attribution.input_gradient(m, x, target)

    randomisation_test(model, x, recording)
    assert all(torch.equal(t, model(x).argmax(1)) for t in seen)


def test_a_map_that_ignores_the_model_stays_identical():
    table = randomisation_test(small_cnn(), images(2), edge_map)
    assert table.column("spearman") == pytest.approx([1.0] * 4)
    assert table.column("ssim") == pytest.approx([1.0] * 4)


def test_ssim_is_nan_for_maps_smaller_than_its_window():
    table = randomisation_test(small_cnn(), images(2, size=8), attribution.saliency)
    assert math.isnan(table[1]["ssim"]) and not math.isnan(table[1]["spearman"])


def test_randomisation_test_rejects_a_non_callable_method():
    with pytest.raises(TypeError, match="method"):
        randomisation_test(small_cnn(), images(), "saliency")
