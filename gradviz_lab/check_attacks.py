"""Exercise checkers for lesson 09 (adversarial examples): an FGSM function, one PGD step and a
whole PGD with its random start.

They work like ``gradviz_lab.check`` (whose ``run_checks`` they use): seeded small random CNNs,
the student's function called as ``f(model, x, target, **knobs)`` with ``target`` a tensor of B
class indices, one printed line per case, and a hint when a wrong result is a typical mistake.
"""

from __future__ import annotations

import torch

from . import attacks
from .check import Case, CheckReport, Method, run_checks, tiny_cnn


def _attack_cases(epsilons: tuple[float, ...] = (0.05, 0.3)) -> list[Case]:
    """Seeded tiny CNNs and images in [0, 1]; untargeted (target = the label to move away from)
    and targeted cases (target = a class other than the predicted one). epsilon 0.3 makes the
    pixel range bind on many pixels, so a missing clamp shows."""
    cases = []
    for seed, (batch, channels, size) in enumerate([(2, 3, 8), (3, 1, 10)]):
        model = tiny_cnn(seed, in_channels=channels)
        generator = torch.Generator().manual_seed(200 + seed)
        x = torch.rand(batch, channels, size, size, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            predicted = model(x).argmax(1)
        for epsilon in epsilons:
            cases.append(Case(f"{batch} image(s) {channels}x{size}x{size}, untargeted, epsilon {epsilon}",
                              model, x, predicted, {"epsilon": epsilon, "targeted": False}))
            cases.append(Case(f"{batch} image(s) {channels}x{size}x{size}, targeted, epsilon {epsilon}",
                              model, x, (predicted + 1) % 5, {"epsilon": epsilon, "targeted": True}))
    return cases


def _reference_fgsm(model, x, target, epsilon, targeted):
    if targeted:
        return attacks.fgsm(model, x, target, epsilon=epsilon, labels=(target + 1) % 5)
    return attacks.fgsm(model, x, epsilon=epsilon, labels=target)


def _loss_gradient(model, x, target):
    return attacks.loss_gradient(model, x, target)


def _fgsm_raw_gradient(model, x, target, epsilon, targeted):
    direction = -1.0 if targeted else 1.0
    return (x + direction * epsilon * _loss_gradient(model, x, target)).clamp(0, 1)


def _fgsm_no_clamp(model, x, target, epsilon, targeted):
    direction = -1.0 if targeted else 1.0
    return x + direction * epsilon * _loss_gradient(model, x, target).sign()


def _fgsm_wrong_sign(model, x, target, epsilon, targeted):
    direction = 1.0 if targeted else -1.0  # up the target's loss, down the label's: backwards
    return (x + direction * epsilon * _loss_gradient(model, x, target).sign()).clamp(0, 1)


def check_fgsm(student: Method) -> CheckReport:
    """fgsm(model, x, target, epsilon, targeted) -> x_adv (B, C, H, W): one step of size epsilon
    along the sign of the cross-entropy gradient (up the label's loss; down the target's loss
    when targeted), clamped to [0, 1] (Goodfellow et al. 2015)."""
    mistakes = {
        "take the sign of the gradient: FGSM moves every pixel by exactly epsilon (you used the raw gradient).":
            _fgsm_raw_gradient,
        "clamp the result to the pixel range [0, 1] (torch.clamp(x_adv, 0, 1)).": _fgsm_no_clamp,
        "a targeted attack goes *down* the target's loss (x - epsilon sign(g)), an untargeted one *up* "
        "the label's loss (x + epsilon sign(g)): your signs are swapped.": _fgsm_wrong_sign,
    }
    return run_checks("fgsm", student, _reference_fgsm, _attack_cases(), mistakes, atol=1e-9)


# --- one PGD step -------------------------------------------------------------------------------


def _pgd_cases() -> list[Case]:
    """A current iterate x_adv already inside the ball (as after earlier steps), for both norms."""
    cases = []
    for number, case in enumerate(_attack_cases(epsilons=(0.1,))[::2]):  # the untargeted ones
        generator = torch.Generator().manual_seed(300 + number)
        for norm, epsilon in (("linf", 0.1), ("l2", 0.5)):
            start = attacks.random_in_ball(case.x, epsilon, norm, generator)
            x_adv = (case.x + start).clamp(0, 1)
            knobs = {"x_adv": x_adv, "epsilon": epsilon, "step_size": epsilon / 2, "norm": norm}
            cases.append(Case(case.description.replace("untargeted, epsilon 0.1", f"{norm}, epsilon {epsilon}"),
                              case.model, case.x, case.target, knobs))
    return cases


def _step(model, x, target, x_adv, step_size, norm):
    return x_adv + step_size * attacks.steepest_step(_loss_gradient(model, x_adv, target), norm)


def _reference_pgd_step(model, x, target, x_adv, epsilon, step_size, norm):
    moved = _step(model, x, target, x_adv, step_size, norm)
    return attacks.into_ball(moved, x, epsilon, norm).clamp(0, 1)


def _pgd_wrong_ball(model, x, target, x_adv, epsilon, step_size, norm):
    moved = _step(model, x, target, x_adv, step_size, norm)
    other = "l2" if norm == "linf" else "linf"
    return attacks.into_ball(moved, x, epsilon, other).clamp(0, 1)


def _pgd_no_projection(model, x, target, x_adv, epsilon, step_size, norm):
    return _step(model, x, target, x_adv, step_size, norm).clamp(0, 1)


def _pgd_linf_step_always(model, x, target, x_adv, epsilon, step_size, norm):
    moved = x_adv + step_size * _loss_gradient(model, x_adv, target).sign()
    return attacks.into_ball(moved, x, epsilon, norm).clamp(0, 1)


def check_pgd_step(student: Method) -> CheckReport:
    """pgd_step(model, x, target, x_adv, epsilon, step_size, norm) -> the next iterate: a step of
    size step_size from x_adv up the cross-entropy of the label target (sign(g) for "linf",
    g / ||g||_2 per image for "l2"), then projected onto the epsilon-ball around x, then clamped
    to [0, 1] (Madry et al. 2018)."""
    mistakes = {
        "project onto the ball of the norm you were given (clamp each pixel for linf; shrink the "
        "whole perturbation to length epsilon for l2).": _pgd_wrong_ball,
        "your result leaves the epsilon-ball around the clean x: take the step first, then project "
        "(projecting before the step, or not at all, lets the step leave the ball).": _pgd_no_projection,
        "for the l2 ball the step is g / ||g||_2 per image, not sign(g).": _pgd_linf_step_always,
    }
    return run_checks("pgd step", student, _reference_pgd_step, _pgd_cases(), mistakes, atol=1e-9)


# --- the whole PGD, with its random start -------------------------------------------------------


def _pgd_run_cases() -> list[Case]:
    """Both norms, with and without the random start, a few steps each (seed 7)."""
    cases = []
    for case in _attack_cases(epsilons=(0.1,))[::2]:  # the untargeted ones
        for norm, epsilon in (("linf", 0.1), ("l2", 0.5)):
            for random_start in (True, False):
                knobs = {"epsilon": epsilon, "steps": 3, "step_size": epsilon / 2, "norm": norm,
                         "random_start": random_start, "seed": 7}
                start = "random start" if random_start else "from x"
                description = case.description.replace("untargeted, epsilon 0.1", f"{norm}, epsilon {epsilon}, {start}")
                cases.append(Case(description, case.model, case.x, case.target, knobs))
    return cases


def _reference_pgd(model, x, target, epsilon, steps, step_size, norm, random_start, seed):
    return attacks.pgd(model, x, epsilon=epsilon, steps=steps, step_size=step_size, norm=norm,
                       random_start=random_start, seed=seed, labels=target)


def _pgd_never_random(model, x, target, epsilon, steps, step_size, norm, random_start, seed):
    return _reference_pgd(model, x, target, epsilon, steps, step_size, norm, False, seed)


def _pgd_always_random(model, x, target, epsilon, steps, step_size, norm, random_start, seed):
    return _reference_pgd(model, x, target, epsilon, steps, step_size, norm, True, seed)


def _pgd_start_unclamped(model, x, target, epsilon, steps, step_size, norm, random_start, seed):
    x_adv = x.clone()
    if random_start:
        x_adv = x + attacks.random_in_ball(x, epsilon, norm, torch.Generator().manual_seed(seed))
    for _ in range(steps):
        x_adv = _reference_pgd_step(model, x, target, x_adv, epsilon, step_size, norm)
    return x_adv


def check_pgd(student: Method) -> CheckReport:
    """pgd(model, x, target, epsilon, steps, step_size, norm, random_start, seed) -> x_adv: start
    at x, or, with random_start=True, at x + attacks.random_in_ball(x, epsilon, norm,
    torch.Generator().manual_seed(seed)) clamped to [0, 1] (the draw ``attacks.pgd`` makes), then
    ``steps`` PGD steps up the loss of the labels ``target`` (Madry et al. 2018). Compared with
    ``attacks.pgd`` with the same settings."""
    mistakes = {
        "random_start=True asks for a random start: begin at x + a point drawn uniformly from the "
        "ball, attacks.random_in_ball(x, epsilon, norm, torch.Generator().manual_seed(seed)), "
        "clamped to [0, 1], then take the steps (you started at x).": _pgd_never_random,
        "with random_start=False the attack starts at x itself: draw the random start only when "
        "asked.": _pgd_always_random,
        "clamp the random start to [0, 1] before the first step: x + a point of the ball can leave "
        "the pixel range.": _pgd_start_unclamped,
    }
    return run_checks("pgd", student, _reference_pgd, _pgd_run_cases(), mistakes, atol=1e-9)


__all__ = ["check_fgsm", "check_pgd", "check_pgd_step"]
