"""The lesson 11 checkers (check.check_layer_relevance, check.check_textbook_lrp) pass the exercise's
solution, catch each typical mistake with its hint, greet an untouched stub with one friendly line,
and leave the models they hand out as they were."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_same_state, snapshot
from torch import nn

from gradviz_lab import check
from gradviz_lab.check import relevance

# ---- the exercise's functions, written the textbook way (as solution 11 does) -------------------


def safe_divide(R, z):
    return torch.where(z != 0, R / torch.where(z != 0, z, 1), 0)


def affine(layer, a, w, b):
    if isinstance(layer, nn.Linear):
        return F.linear(a, w, b)
    return F.conv2d(a, w, b, layer.stride, layer.padding)


def make_layer_relevance(sign=True, gamma_positive_only=True, gamma_absolute=False, bias=True,
                         box=True):
    """layer_relevance, right by default; each flag False (or gamma_absolute True) is one mistake."""

    def layer_relevance(layer, a, R, rule, epsilon=1e-6, gamma=0.25, low=0.0, high=1.0):
        w, b = layer.weight.detach(), layer.bias.detach()
        b_used = b if bias else None
        a = a.detach().requires_grad_(True)
        if rule == "z-box" and box:
            lo = torch.full_like(a, low).requires_grad_(True)
            hi = torch.full_like(a, high).requires_grad_(True)
            z = (affine(layer, a, w, None) - affine(layer, lo, w.clamp(min=0), None)
                 - affine(layer, hi, w.clamp(max=0), None))
            (z * safe_divide(R, z).detach()).sum().backward()
            return (a * a.grad + lo * lo.grad + hi * hi.grad).detach()
        if rule == "gamma":
            if gamma_absolute:
                grow = lambda t: t + gamma * t.abs()  # noqa: E731
            elif gamma_positive_only:
                grow = lambda t: t + gamma * t.clamp(min=0)  # noqa: E731
            else:
                grow = lambda t: t * (1 + gamma)  # noqa: E731
            z = affine(layer, a, grow(w), grow(b) if bias else None)
            den = z
        else:  # epsilon (and z-box, when the box branch is forgotten)
            z = affine(layer, a, w, b_used)
            den = z + epsilon * (torch.where(z >= 0, 1.0, -1.0) if sign else 1.0)
        (z * safe_divide(R, den).detach()).sum().backward()
        return (a * a.grad).detach()

    return layer_relevance


layer_relevance = make_layer_relevance()


def make_textbook_lrp(first_rule="z-box", maxpool="average", start="score", rules=layer_relevance):
    def textbook_lrp(layers, x, c):
        A = [x]
        for layer in layers:
            A.append(layer(A[-1]))
        one_hot = F.one_hot(torch.tensor([c]), A[-1].shape[1]).to(A[-1].dtype)
        R = (A[-1] * one_hot if start == "score" else one_hot).detach()
        for i in reversed(range(len(layers))):
            layer, a = layers[i], A[i].detach().requires_grad_(True)
            if isinstance(layer, (nn.ReLU, nn.Flatten)):
                R = R.reshape(a.shape)
            elif isinstance(layer, nn.MaxPool2d):
                pool = nn.AvgPool2d if maxpool == "average" else nn.MaxPool2d
                z = pool(layer.kernel_size, layer.stride)(a)
                (z * safe_divide(R, z).detach()).sum().backward()
                R = (a * a.grad).detach()
            else:
                rule = first_rule if i == 0 else ("epsilon" if isinstance(layer, nn.Linear) else "gamma")
                R = rules(layer, a, R, rule)
        return R

    return textbook_lrp


textbook_lrp = make_textbook_lrp()


def lines(capsys) -> list[str]:
    return capsys.readouterr().out.strip().splitlines()


# ---- the reference passes ------------------------------------------------------------------------


def test_the_solution_passes_both_checkers(capsys):
    assert check.check_layer_relevance(layer_relevance).passed
    out = lines(capsys)
    assert len(out) == 7 and out[-1] == "layer_relevance: all cases pass."
    assert check.check_textbook_lrp(textbook_lrp).passed
    assert lines(capsys)[-1] == "textbook_lrp: all cases pass."


def test_the_layer_cases_can_expose_each_mistake():
    """Each epsilon case has a negative z_k (so the sign of epsilon shows) and each case biases of
    both signs; the z-box cases' inputs lie inside [low, high]."""
    for case in relevance.layer_cases():
        bias = case.model.bias
        assert (bias > 0).any() and (bias < 0).any()
        if case.knobs["rule"] == "epsilon":
            with torch.no_grad():
                assert (case.model(case.x) < 0).any()
        if case.knobs["rule"] == "z-box":
            assert case.x.min() >= case.knobs["low"] and case.x.max() <= case.knobs["high"]


def test_the_gamma_reference_is_hand_computed():
    """One unit, two inputs: z = 1*2 + 1*(-1) + 0.5 bias; gamma 1 doubles the positive weight and
    the bias: R_j = a_j (w_j + w_j+) / (2*2*1 ... ) computed by hand."""
    layer = nn.Linear(2, 1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[2.0, -1.0]]))
        layer.bias.fill_(0.5)
    a, R = torch.tensor([[1.0, 1.0]], dtype=torch.float64), torch.tensor([[3.0]], dtype=torch.float64)
    reference = relevance._layer_method(lambda name, k: None)
    # gamma = 1: weights (4, -1), bias 1, z = 4 - 1 + 1 = 4; R_j = a_j w'_j / z * R = (3, -0.75)
    assert torch.allclose(reference(layer, a, R, rule="gamma", gamma=1.0), torch.tensor([[3.0, -0.75]], dtype=torch.float64))
    # epsilon 0.5: z = 1.5, den 2.0; R_j = (2, -1) * 3 / 2
    assert torch.allclose(reference(layer, a, R, rule="epsilon", epsilon=0.5), torch.tensor([[3.0, -1.5]], dtype=torch.float64))
    assert torch.allclose(layer_relevance(layer, a, R, "gamma", gamma=1.0), torch.tensor([[3.0, -0.75]], dtype=torch.float64))


# ---- each typical mistake is caught, with its hint -------------------------------------------------

LAYER_MISTAKES = [
    (make_layer_relevance(sign=False), r"z_k \+ eps sign\(z_k\)"),
    (make_layer_relevance(gamma_positive_only=False), r"\(1 \+ gamma\) w, cancels .* gives back LRP-0"),
    (make_layer_relevance(gamma_absolute=True), r"not w \+ gamma \|w\|"),
    (make_layer_relevance(bias=False), r"keep the bias in the denominator.*conserved only in a layer "
                                       r"without bias"),
    (make_layer_relevance(box=False), r"rule='z-box' needs its own formula.*You computed the "
                                      r"epsilon rule there"),
]


@pytest.mark.parametrize("student, hint", LAYER_MISTAKES,
                         ids=["epsilon-sign", "gamma-scaled", "gamma-abs", "bias-dropped", "box-forgotten"])
def test_each_layer_mistake_is_caught_with_its_hint(capsys, student, hint):
    report = check.check_layer_relevance(student)
    out = "\n".join(lines(capsys))
    assert not report.passed
    failed = [line for line in out.splitlines() if line.startswith("[x]")]
    assert failed and all(re.search(hint, line) for line in failed), out


def test_the_input_rule_forgotten_in_the_loop_is_caught(capsys):
    report = check.check_textbook_lrp(make_textbook_lrp(first_rule="gamma"))
    out = lines(capsys)
    assert not report.passed and report.results == [False, False, False]
    assert all("the first layer (i == 0) sees pixels" in line and "used the gamma rule" in line
               for line in out[:3]), out


@pytest.mark.parametrize("student, hint", [
    (make_textbook_lrp(maxpool="winner"), "share a max pool's relevance as an average pool"),
    (make_textbook_lrp(start="one"), r"start with R = y_c"),
    (make_textbook_lrp(rules=make_layer_relevance(bias=False)), "layer_relevance drops the bias"),
    (make_textbook_lrp(rules=make_layer_relevance(gamma_positive_only=False)),
     "layer_relevance's gamma rule grows every weight"),
], ids=["maxpool-winner", "start-at-one", "bias-dropped", "gamma-scaled"])
def test_the_loop_names_its_mistakes(capsys, student, hint):
    report = check.check_textbook_lrp(student)
    out = lines(capsys)
    assert not report.passed
    assert all(hint in line for line in out if line.startswith("[x]")), out


def test_a_wrong_result_without_a_known_mistake_gets_no_hint(capsys):
    def doubled(layer, a, R, rule, **knobs):
        return 2 * layer_relevance(layer, a, R, rule, **knobs)

    assert not check.check_layer_relevance(doubled).passed
    assert not any("Hint" in line for line in lines(capsys))


# ---- the stub, a non-function, a wrong shape ----------------------------------------------------------


@pytest.mark.parametrize("checker", [check.check_layer_relevance, check.check_textbook_lrp])
def test_an_untouched_stub_gets_one_friendly_line(capsys, checker):
    def stub(*args, **kwargs):
        raise NotImplementedError

    report = checker(stub)
    out = lines(capsys)
    assert not report.passed and not report.implemented
    assert len(out) == 1 and "not implemented yet" in out[0] and "# YOUR CODE HERE" in out[0]


def test_a_layer_relevance_stub_reached_through_the_loop_is_friendly_too(capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError

    report = check.check_textbook_lrp(make_textbook_lrp(rules=stub))
    assert not report.implemented and "not implemented yet" in lines(capsys)[0]


@pytest.mark.parametrize("checker", [check.check_layer_relevance, check.check_textbook_lrp])
def test_a_result_instead_of_the_function_is_named(capsys, checker):
    assert not checker(torch.zeros(3)).passed
    assert "give the checker your function itself" in lines(capsys)[0]


def test_a_batch_shaped_result_of_the_loop_is_explained(capsys):
    def whole_batch(layers, x, c):
        return torch.zeros(2, *x.shape[1:], dtype=x.dtype)

    assert not check.check_textbook_lrp(whole_batch).passed
    assert "textbook_lrp returned shape (2, 1, 12, 12) for one image" in lines(capsys)[0]


# ---- the models are left as they were -------------------------------------------------------------


@pytest.mark.parametrize("checker, student, make_cases", [
    (check.check_layer_relevance, layer_relevance, "layer_cases"),
    (check.check_layer_relevance, make_layer_relevance(bias=False), "layer_cases"),
    (check.check_textbook_lrp, textbook_lrp, "textbook_cases"),
    (check.check_textbook_lrp, make_textbook_lrp(first_rule="gamma"), "textbook_cases"),
], ids=["layer-right", "layer-wrong", "loop-right", "loop-wrong"])
def test_the_models_are_left_as_they_were(capsys, monkeypatch, checker, student, make_cases):
    """The reference, the student's function and (for a wrong one) every replayed mistake leave
    the models exactly as they were: modes, weights, grads, hooks."""
    cases = getattr(relevance, make_cases)()
    for case in cases:  # a mixed state to keep: frozen bias, a .grad set
        case.model.train()
        first = next(case.model.parameters())
        first.grad = torch.ones_like(first)
        for module in case.model.modules():
            if getattr(module, "bias", None) is not None:
                module.bias.requires_grad_(False)
    before = [snapshot(case.model) for case in cases]
    monkeypatch.setattr(relevance, make_cases, lambda: cases)
    checker(student)
    for case, state in zip(cases, before):
        assert_same_state(state, snapshot(case.model))


def test_a_student_who_changes_the_model_fails(capsys):
    def trains_the_layer(layer, a, R, rule, **knobs):
        layer.train()
        return layer_relevance(layer, a, R, rule, **knobs)

    def leaves_grads(layer, a, R, rule, **knobs):
        z = layer(a)
        (z * R).sum().backward()  # gradients land in layer.weight.grad
        return layer_relevance(layer, a, R, rule, **knobs)

    for student, what in ((trains_the_layer, "train/eval mode changed"), (leaves_grads, "gradients were left")):
        assert not check.check_layer_relevance(student).passed
        assert what in "\n".join(lines(capsys))


def test_the_checkers_leave_the_random_stream_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    relevance.layer_cases(), relevance.textbook_cases()
    assert torch.equal(torch.rand(3), expected)
