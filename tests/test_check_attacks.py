"""The lesson-09 checkers pass the reference, and name each typical mistake."""

from __future__ import annotations

import pytest
import torch

from gradviz_lab import attacks, check_attacks


def fgsm_solution(model, x, target, epsilon, targeted):
    x = x.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), target, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, x)
    direction = -1.0 if targeted else 1.0
    return (x + direction * epsilon * gradient.sign()).clamp(0, 1).detach()


def pgd_step_solution(model, x, target, x_adv, epsilon, step_size, norm):
    leaf = x_adv.detach().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(leaf), target, reduction="sum")
    (g,) = torch.autograd.grad(loss, leaf)
    if norm == "linf":
        moved = x_adv + step_size * g.sign()
        return torch.min(torch.max(moved, x - epsilon), x + epsilon).clamp(0, 1)
    moved = x_adv + step_size * g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    delta = moved - x
    length = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    return (x + delta * torch.clamp(epsilon / length, max=1.0)).clamp(0, 1)


def test_written_solutions_pass(capsys):
    assert check_attacks.check_fgsm(fgsm_solution).passed
    assert check_attacks.check_pgd_step(pgd_step_solution).passed
    assert "[x]" not in capsys.readouterr().out


def _fgsm_variant(kind):
    def wrong(model, x, target, epsilon, targeted):
        g = attacks.loss_gradient(model, x, target)
        direction = -1.0 if targeted else 1.0
        if kind == "raw":
            return (x + direction * epsilon * g).clamp(0, 1)
        if kind == "no clamp":
            return x + direction * epsilon * g.sign()
        return (x - direction * epsilon * g.sign()).clamp(0, 1)  # "sign"
    return wrong


@pytest.mark.parametrize("kind, hint", [("raw", "take the sign of the gradient"), ("no clamp", "clamp the result"),
                                        ("sign", "your signs are swapped")])
def test_fgsm_mistakes_are_named(capsys, kind, hint):
    assert not check_attacks.check_fgsm(_fgsm_variant(kind)).passed
    assert hint in capsys.readouterr().out


def _pgd_variant(kind):
    def wrong(model, x, target, x_adv, epsilon, step_size, norm):
        g = attacks.loss_gradient(model, x_adv, target)
        if kind == "sign always":
            moved = x_adv + step_size * g.sign()
            return attacks.into_ball(moved, x, epsilon, norm).clamp(0, 1)
        moved = x_adv + step_size * attacks.steepest_step(g, norm)
        if kind == "wrong ball":
            return attacks.into_ball(moved, x, epsilon, "l2" if norm == "linf" else "linf").clamp(0, 1)
        if kind == "project first":
            projected = attacks.into_ball(x_adv, x, epsilon, norm)
            return (projected + step_size * attacks.steepest_step(g, norm)).clamp(0, 1)
        return moved.clamp(0, 1)  # "no projection"
    return wrong


@pytest.mark.parametrize("kind, hint", [("wrong ball", "project onto the ball of the norm"),
                                        ("project first", "take the step first, then project"),
                                        ("no projection", "leaves the epsilon-ball"),
                                        ("sign always", "g / ||g||_2 per image")])
def test_pgd_step_mistakes_are_named(capsys, kind, hint):
    assert not check_attacks.check_pgd_step(_pgd_variant(kind)).passed
    assert hint in capsys.readouterr().out


def test_an_unwritten_exercise_gets_one_friendly_line(capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError("write your code here")

    assert not check_attacks.check_fgsm(stub).passed
    assert "not implemented yet" in capsys.readouterr().out


# --- the whole PGD and its random start: "no random start when asked" is caught --------------------


def pgd_solution(model, x, target, epsilon, steps, step_size, norm, random_start, seed):
    """Written from the task, with the step above (no call to attacks.pgd)."""
    x_adv = x.clone()
    if random_start:
        start = attacks.random_in_ball(x, epsilon, norm, torch.Generator().manual_seed(seed))
        x_adv = (x + start).clamp(0, 1)
    for _ in range(steps):
        x_adv = pgd_step_solution(model, x, target, x_adv, epsilon, step_size, norm)
    return x_adv


def _pgd_run_variant(kind):
    def wrong(model, x, target, epsilon, steps, step_size, norm, random_start, seed):
        if kind == "never random":  # the flag is ignored: always from x
            random_start = False
        elif kind == "always random":
            random_start = True
        x_adv = x.clone()
        if random_start:
            start = attacks.random_in_ball(x, epsilon, norm, torch.Generator().manual_seed(seed))
            x_adv = x + start if kind == "unclamped" else (x + start).clamp(0, 1)
        for _ in range(steps):
            x_adv = pgd_step_solution(model, x, target, x_adv, epsilon, step_size, norm)
        return x_adv
    return wrong


def test_a_written_pgd_passes(capsys):
    report = check_attacks.check_pgd(pgd_solution)
    assert report.passed and len(report.results) == 8  # 2 models x 2 norms x random start or not
    assert "[x]" not in capsys.readouterr().out


@pytest.mark.parametrize("kind, hint, failing", [
    ("never random", "random_start=True asks for a random start", 4),
    ("always random", "with random_start=False the attack starts at x itself", 4),
    ("unclamped", "clamp the random start to [0, 1]", None),
])
def test_pgd_mistakes_are_named(capsys, kind, hint, failing):
    report = check_attacks.check_pgd(_pgd_run_variant(kind))
    out = capsys.readouterr().out
    assert not report.passed and hint in out
    if failing is not None:  # exactly the cases that asked (or did not ask) for the random start
        assert report.results.count(False) == failing
