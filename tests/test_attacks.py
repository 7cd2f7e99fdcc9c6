"""Adversarial attacks (gradviz_lab.attacks): hand-computed attacks on a linear model, the
identities between them, the ball and the pixel range, and the attacks on the shipped digits
model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gradviz_lab import attacks, hooks
from gradviz_lab.attacks import fgsm, fooling_image, pgd, stroke_correlation
from gradviz_lab.data import load_digits
from gradviz_lab.models import load_lab_model

EPS = 0.1


def linear_model(seed: int = 0, pixels: int = 16) -> nn.Module:
    """Two logits, y_k = w_k . x + b_k, on (B, 1, 4, 4) images, in float64."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 2)).double().eval()
    return model


def margin_direction(model: nn.Module) -> torch.Tensor:
    """d = w_1 - w_0 as an image: the cross-entropy of class 1 falls along d, rises against it."""
    weight = model[1].weight.detach()
    return (weight[1] - weight[0]).view(1, 1, 4, 4)


def interior_images(n: int = 3, seed: int = 1) -> torch.Tensor:
    """Pixels in [0.2, 0.8]: an epsilon of 0.1 never reaches the pixel range."""
    generator = torch.Generator().manual_seed(seed)
    return 0.2 + 0.6 * torch.rand(n, 1, 4, 4, generator=generator, dtype=torch.float64)


# --- hand-computed on a linear model ----------------------------------------------------------------


def test_fgsm_on_a_linear_model_is_epsilon_times_the_sign_of_the_weights():
    # L = CE(y = 1) = log(1 + exp(-(d.x + b1 - b0))): dL/dx = -(1 - p_1) d, so its sign is -sign(d)
    # and the best L-infinity attack of size eps moves every pixel by eps against d.
    model, x = linear_model(), interior_images()
    labels = [1, 1, 1]
    expected = x - EPS * margin_direction(model).sign()
    assert torch.equal(fgsm(model, x, epsilon=EPS, labels=labels), expected)
    # Targeted toward class 0 from label 1: down CE(0), whose gradient is +(1 - p_0) d: the same point.
    assert torch.equal(fgsm(model, x, target=0, epsilon=EPS, labels=labels), expected)


def test_fgsm_reaches_the_smallest_margin_in_the_ball():
    # min over ||delta||_inf <= eps of d.(x + delta) = d.x - eps ||d||_1 (Hoelder): FGSM attains it.
    model, x = linear_model(), interior_images()
    d = margin_direction(model).flatten()
    x_adv = fgsm(model, x, epsilon=EPS, labels=[1, 1, 1])
    reached = x_adv.flatten(1) @ d
    optimum = x.flatten(1) @ d - EPS * d.abs().sum()
    assert torch.allclose(reached, optimum, rtol=0, atol=1e-12)


def test_fgsm_clamps_to_the_pixel_range_where_it_binds():
    model = linear_model()
    x = interior_images()
    x[:, :, 0, :] = 0.0  # a black row and a white row: half their pixels would leave [0, 1]
    x[:, :, 3, :] = 1.0
    unclamped = x - EPS * margin_direction(model).sign()
    assert bool(((unclamped < 0) | (unclamped > 1)).any())  # the range binds somewhere
    x_adv = fgsm(model, x, epsilon=EPS, labels=[1, 1, 1])
    assert torch.equal(x_adv, torch.clamp(unclamped, 0.0, 1.0))
    # Other bounds are honoured as well.
    shifted = fgsm(model, x - 0.5, epsilon=EPS, labels=[1, 1, 1], bounds=(-0.5, 0.5))
    assert torch.allclose(shifted, x_adv - 0.5, atol=1e-15)


def test_pgd_linf_on_a_linear_model_ends_at_the_optimal_corner():
    # From any random start, steps of eps/3 along -sign(d) saturate every pixel at x - eps sign(d)
    # after at most 6 steps: exactly FGSM's point.
    model, x = linear_model(), interior_images()
    x_adv = pgd(model, x, epsilon=EPS, steps=8, step_size=EPS / 3, random_start=True, seed=3, labels=[1, 1, 1])
    assert torch.equal(x_adv, x - EPS * margin_direction(model).sign())


def test_pgd_l2_on_a_linear_model_moves_eps_against_the_weights():
    # The best L2 attack of length eps on a linear margin is -eps d / ||d||_2: one step of size eps
    # from x reaches it; from a random start, repeated projected steps converge to it.
    model, x = linear_model(), interior_images()
    d = margin_direction(model)
    optimum = x - EPS * d / d.norm()
    one_step = pgd(model, x, epsilon=EPS, steps=1, step_size=EPS, norm="l2", random_start=False, labels=[1, 1, 1])
    assert torch.allclose(one_step, optimum, rtol=0, atol=1e-15)
    many = pgd(model, x, epsilon=EPS, steps=60, step_size=EPS / 2, norm="l2", seed=1, labels=[1, 1, 1])
    assert torch.allclose(many, optimum, rtol=0, atol=1e-6)
    assert torch.allclose((many - x).flatten(1).norm(dim=1), torch.full((3,), EPS, dtype=torch.float64), atol=1e-12)


# --- identities and guarantees on the shipped digits model ------------------------------------------


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits("test")
    index = torch.arange(0, 1000, 5)  # 200 digits, 20 of each class
    return load_lab_model("digits"), images[index], labels[index]


@pytest.mark.parametrize("norm", attacks.NORMS)
@pytest.mark.parametrize("epsilon", [0.0, 0.05, 0.3])
def test_pgd_stays_in_the_ball_and_the_pixel_range(digits, norm, epsilon):
    model, x, labels = digits
    x = x[:40]
    x_adv = pgd(model, x, epsilon=epsilon, steps=5, norm=norm, labels=labels[:40])
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= epsilon * (1 + 1e-6) + 1e-6  # float32 rounds x + eps by an ulp
    if epsilon == 0.0:
        assert torch.equal(x_adv, x)


def test_pgd_with_one_step_of_epsilon_and_no_random_start_is_fgsm(digits):
    model, x, labels = digits
    for target in (None, (labels + 1) % 10):
        one_step = pgd(model, x, target, epsilon=0.1, steps=1, step_size=0.1, random_start=False, labels=labels)
        assert torch.equal(one_step, fgsm(model, x, target, epsilon=0.1, labels=labels))


@pytest.mark.parametrize("attack", ["fgsm", "pgd-linf", "pgd-l2"])
def test_a_batch_gives_the_images_one_at_a_time(digits, attack):
    model, x, labels = digits
    model, x = load_lab_model("digits").double(), x[::20].double()  # float64: no reordering noise
    labels = labels[::20]
    run = {
        "fgsm": lambda images, y: fgsm(model, images, epsilon=0.1, labels=y),
        "pgd-linf": lambda images, y: pgd(model, images, epsilon=0.1, steps=4, random_start=False, labels=y),
        "pgd-l2": lambda images, y: pgd(model, images, epsilon=1.0, steps=4, norm="l2", random_start=False, labels=y),
    }[attack]
    batch = run(x, labels)
    singles = torch.cat([run(x[i : i + 1], labels[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(batch, singles, rtol=0, atol=1e-9)


def test_the_random_start_is_seeded(digits):
    model, x, labels = digits
    first = pgd(model, x[:8], epsilon=0.1, steps=2, seed=7, labels=labels[:8])
    assert torch.equal(first, pgd(model, x[:8], epsilon=0.1, steps=2, seed=7, labels=labels[:8]))
    assert not torch.equal(first, pgd(model, x[:8], epsilon=0.1, steps=2, seed=8, labels=labels[:8]))
    torch.manual_seed(0)  # the global generator plays no part
    again = pgd(model, x[:8], epsilon=0.1, steps=2, seed=7, labels=labels[:8])
    assert torch.equal(first, again)


def test_the_attacks_work_under_inference_mode_and_no_grad(digits):
    model, x, labels = digits
    expected = pgd(model, x[:4], (labels[:4] + 1) % 10, epsilon=0.1, steps=2, labels=labels[:4])
    for context in (torch.inference_mode, torch.no_grad):
        with context():
            assert torch.equal(pgd(model, x[:4], (labels[:4] + 1) % 10, epsilon=0.1, steps=2, labels=labels[:4]), expected)
            assert torch.equal(fooling_image(model, x[:2], 3), fooling_image(model, x[:2], 3))


def _accuracy(model, x, labels):
    with torch.no_grad():
        return float((model(x).argmax(1) == labels).double().mean())


def test_the_attacks_fool_the_shipped_digits_model(digits):
    model, x, labels = digits
    assert _accuracy(model, x, labels) >= 0.97
    # Measured on these 200 digits: 99.0% clean; FGSM at 0.2 leaves 32.5%; PGD at 0.15 leaves 6%.
    assert _accuracy(model, fgsm(model, x, epsilon=0.2, labels=labels), labels) <= 0.5
    assert _accuracy(model, pgd(model, x, epsilon=0.15, steps=20, labels=labels), labels) <= 0.2
    goal = (labels + 1) % 10
    x_adv = pgd(model, x, goal, epsilon=0.2, steps=20, labels=labels)
    with torch.no_grad():
        hit = float((model(x_adv).argmax(1) == goal).double().mean())
    assert hit >= 0.7


def test_the_fooling_image_is_predicted_as_its_target(digits):
    model, x, labels = digits
    x, labels = x[::20], labels[::20]  # one of each digit
    for goal in (3, (labels + 5) % 10):
        fooled = fooling_image(model, x, goal)
        goal = torch.as_tensor(goal).expand(len(x))
        with torch.no_grad():
            assert torch.equal(model(fooled).argmax(1), goal)
        assert float(fooled.min()) >= 0.0 and float(fooled.max()) <= 1.0
    # Already of the target class: nothing to do, the image is returned as it was.
    assert torch.equal(fooling_image(model, x, labels), x)
    with pytest.warns(RuntimeWarning, match="not yet predicted as their target"):
        fooling_image(model, x, (labels + 5) % 10, step_size=0.01, max_steps=2)


# --- what robust training does to the gradient ---------------------------------------------------------


def test_stroke_correlation_is_the_pearson_correlation_of_the_gradient_magnitude_with_the_image(digits):
    model, x, labels = digits
    x, labels = x[:6].double(), labels[:6]
    model = load_lab_model("digits").double()
    found = stroke_correlation(model, x, labels)
    leaf = x.clone().requires_grad_(True)
    model(leaf).gather(1, labels.view(-1, 1)).sum().backward()
    model.zero_grad(set_to_none=True)
    for i in range(len(x)):
        by_numpy = np.corrcoef(leaf.grad[i].abs().flatten().numpy(), x[i].flatten().numpy())[0, 1]
        assert abs(float(found[i]) - by_numpy) < 1e-12


# --- bad input and the model's state --------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m, x: fgsm(m, x, epsilon=-0.1), ValueError, "epsilon must be >= 0"),
        (lambda m, x: pgd(m, x, epsilon=-1), ValueError, "epsilon must be >= 0"),
        (lambda m, x: pgd(m, x, epsilon=0.1, steps=0), ValueError, "steps must be >= 1"),
        (lambda m, x: pgd(m, x, epsilon=0.1, norm="l1"), ValueError, r"norm must be one of \['linf', 'l2'\]"),
        (lambda m, x: pgd(m, x, epsilon=0.1, step_size=-0.1), ValueError, "step_size must be >= 0"),
        (lambda m, x: pgd(m, x, epsilon=0.1, random_start="yes"), TypeError, "random_start"),
        (lambda m, x: fgsm(m, x, 3, epsilon=0.1, labels=[3, 1]), ValueError, r"image\(s\) \[0\] are already of class \[3\]"),
        (lambda m, x: fgsm(m, x, 10, epsilon=0.1), ValueError, "valid classes are 0..9"),
        (lambda m, x: fgsm(m, x * 2, epsilon=0.1), ValueError, "outside bounds=.0, 1."),
        (lambda m, x: fgsm(m, x, epsilon=0.1, bounds=(1, 0)), ValueError, "low < high"),
        (lambda m, x: fgsm(m, x.clone().index_fill_(2, torch.tensor([3]), float("nan")), epsilon=0.1), ValueError, "non-finite"),
        (lambda m, x: fgsm(m, x[0], epsilon=0.1), ValueError, "unsqueeze"),
        (lambda m, x: fgsm(m, x, lambda out: out[:, 0], epsilon=0.1), TypeError, "not a callable"),
        (lambda m, x: fooling_image(m, x, None), ValueError, "needs a target class"),
        (lambda m, x: fooling_image(m, x, 3, max_steps=0), ValueError, "max_steps must be >= 1"),
    ],
)
def test_bad_input_gets_a_clear_error(digits, call, error, message):
    model, x, _ = digits
    with pytest.raises(error, match=message):
        call(model, x[:2])


def _state(model: nn.Module) -> tuple:
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        [p.detach().clone() for p in model.parameters()],
        sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
    )


def _same(a: tuple, b: tuple) -> bool:
    def equal(u, v):
        if isinstance(u, torch.Tensor) or isinstance(v, torch.Tensor):
            return isinstance(u, torch.Tensor) and isinstance(v, torch.Tensor) and torch.equal(u, v)
        if isinstance(u, list):
            return len(u) == len(v) and all(equal(p, q) for p, q in zip(u, v))
        return u == v

    return all(equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x, y: fgsm(m, x, epsilon=0.1, labels=y),
        lambda m, x, y: pgd(m, x, (y + 1) % 10, epsilon=0.1, steps=2, labels=y),
        lambda m, x, y: pgd(m, x, epsilon=0.5, steps=2, norm="l2"),
        lambda m, x, y: fooling_image(m, x, 3),
        lambda m, x, y: stroke_correlation(m, x, y),
        lambda m, x, y: pgd(m, x, 12, epsilon=0.1),  # raises: class out of range
        lambda m, x, y: pgd(m, x, y, epsilon=0.1, labels=y),  # raises: target = label
    ],
)
def test_the_model_is_left_as_it_was_also_when_the_attack_raises(call):
    images, labels = load_digits("test")
    x, y = images[::250], labels[::250]
    model = load_lab_model("digits")
    model.train()
    model.features[0].eval()  # a mixed mode, to see it restored module by module
    model.features[0].weight.requires_grad_(False)
    model.classifier[3].weight.grad = torch.full_like(model.classifier[3].weight, 0.5)
    before = _state(model)
    try:
        call(model, x, y)
    except ValueError:
        pass
    assert _same(_state(model), before)
    assert model.classifier[3].weight.grad is not None and float(model.classifier[3].weight.grad[0, 0]) == 0.5
    with hooks.preserved_state(model):  # and the model still works for an ordinary forward pass
        assert model(x).shape == (len(x), 10)


# --- the robust digits model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def robust():
    from gradviz_lab.models import lab_model_card

    return load_lab_model("digits-robust"), lab_model_card("digits-robust")


def test_the_robust_model_resists_pgd_that_fools_the_standard_one(digits, robust):
    standard, x, labels = digits
    model, card = robust
    epsilon = card["recipe"]["adversarial_epsilon"]  # the epsilon it was trained at
    on_card = card["pgd_accuracy"][str(epsilon)]
    robust_accuracy = _accuracy(model, pgd(model, x, epsilon=epsilon, steps=20, labels=labels), labels)
    standard_accuracy = _accuracy(standard, pgd(standard, x, epsilon=epsilon, steps=20, labels=labels), labels)
    # 200 of the card's 1,000 digits: within 5 points of the card; the standard model far below.
    assert abs(robust_accuracy - on_card) <= 0.05
    assert standard_accuracy <= 0.2
    assert robust_accuracy - standard_accuracy >= on_card - 0.25
    assert _accuracy(model, x, labels) >= card["accuracy"] - 0.03  # and it still reads clean digits


def test_the_robust_model_s_gradients_follow_the_strokes(digits, robust):
    standard, x, labels = digits
    model, card = robust
    robust_r = float(stroke_correlation(model, x, labels).mean())
    standard_r = float(stroke_correlation(standard, x, labels).mean())
    assert abs(robust_r - card["gradient_stroke_correlation"]) <= 0.05
    assert robust_r >= standard_r + 0.15


def test_adversarial_training_is_deterministic_and_checked(tmp_path, monkeypatch):
    import dataclasses

    from gradviz_lab import train
    from gradviz_lab.train import Recipe, train_lab_model

    # The card's attack, made cheap: the full one (4 epsilons, 20 steps, 1,000 digits) takes a minute.
    monkeypatch.setattr(train, "ADVERSARIAL_EPSILONS", (0.1,))
    monkeypatch.setattr(train, "EVALUATION_PGD_STEPS", 2)
    tiny = Recipe(epochs=1, batch_size=32, lr=2e-3, weight_decay=1e-4, n_train=128, augment="affine",
                  adversarial_epsilon=0.1, adversarial_steps=2)
    first = train_lab_model("digits-robust", tiny, tmp_path / "a", progress=False)
    second = train_lab_model("digits-robust", tiny, tmp_path / "b", progress=False)
    plain = train_lab_model("digits-robust", dataclasses.replace(tiny, adversarial_epsilon=0.0), tmp_path / "c", progress=False)
    assert first["weights_sha256"] == second["weights_sha256"] != plain["weights_sha256"]
    assert set(first["pgd_accuracy"]) == {"0.1"} and "2 steps" in first["pgd_attack"]
    assert first["recipe"]["adversarial_epsilon"] == 0.1
    with pytest.raises(ValueError, match="adversarial_epsilon must be a finite number >= 0"):
        train.check_recipe(dataclasses.replace(tiny, adversarial_epsilon=-0.1))
    with pytest.raises(ValueError, match="adversarial_steps >= 1"):
        train.check_recipe(dataclasses.replace(tiny, adversarial_steps=0))
