"""The exercise checkers pass correct student code, fail typical wrong code with the right hint,
and greet an untouched stub with one friendly line."""

from __future__ import annotations

import copy
import re

import pytest
import torch
import test_check_relevance  # lesson 11's right answers
from conftest import assert_same_state, snapshot
from torch import nn

from gradviz_lab import attribution, check
from gradviz_lab.check.attribution import _gradcam_plus_plus_variant


# ---- student-style implementations, written the straightforward way ----------------------------

def student_saliency(model, x, target):
    x = x.clone().requires_grad_(True)
    score = model(x).gather(1, target[:, None]).sum()
    grad, = torch.autograd.grad(score, x)
    return grad.abs().amax(dim=1, keepdim=True)


def student_saliency_signed(model, x, target):  # the mistake: no magnitude
    x = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return grad.amax(dim=1, keepdim=True)


def student_occlusion(model, x, target, window, stride):
    (wh, ww), (B, C, H, W) = window, x.shape
    with torch.no_grad():
        base = model(x).gather(1, target[:, None])[:, 0]
        total, count = torch.zeros(B, 1, H, W, dtype=x.dtype), torch.zeros(1, 1, H, W, dtype=x.dtype)
        for top in range(0, H - wh + 1, stride):
            for left in range(0, W - ww + 1, stride):
                occluded = x.clone()
                occluded[:, :, top:top + wh, left:left + ww] = 0
                drop = base - model(occluded).gather(1, target[:, None])[:, 0]
                total[:, :, top:top + wh, left:left + ww] += drop.view(B, 1, 1, 1)
                count[:, :, top:top + wh, left:left + ww] += 1
    return total / count.clamp(min=1)


def make_student_smoothgrad(absolute_sigma=False, average=True, batch_range=False, reseed_each_sample=False):
    def smoothgrad(model, x, target, n_samples, sigma, seed):
        generator = torch.Generator().manual_seed(seed)
        value_range = x.amax(dim=(1, 2, 3), keepdim=True) - x.amin(dim=(1, 2, 3), keepdim=True)
        if batch_range:
            value_range = x.max() - x.min()
        std = sigma if absolute_sigma else sigma * value_range
        total = torch.zeros_like(x)
        for _ in range(n_samples):
            if reseed_each_sample:
                generator = torch.Generator().manual_seed(seed)
            noisy = (x + torch.randn(x.shape, generator=generator, dtype=x.dtype) * std).requires_grad_(True)
            grad, = torch.autograd.grad(model(noisy).gather(1, target[:, None]).sum(), noisy)
            total += grad
        return total / n_samples if average else total
    return smoothgrad


def make_student_relu_rule(forward_mask: bool, gradient_mask: bool):
    """Guided backprop (both masks) or deconvnet (gradient mask only), via ReLU module hooks."""
    def method(model, x, target):
        # a copy without in-place ReLUs: a hook must see each ReLU's input before it is overwritten
        model = copy.deepcopy(model)
        for module in model.modules():
            if isinstance(module, nn.ReLU):
                module.inplace = False
        handles = []

        class Rule(torch.autograd.Function):
            @staticmethod
            def forward(ctx, s):
                ctx.save_for_backward(s)
                return s.clamp(min=0)

            @staticmethod
            def backward(ctx, g):
                s, = ctx.saved_tensors
                out = g
                if gradient_mask:
                    out = out * (g > 0)
                if forward_mask:
                    out = out * (s > 0)
                return out

        for module in model.modules():
            if isinstance(module, nn.ReLU):
                # replace the module's output by the rule applied to its input
                handles.append(module.register_forward_hook(lambda m, inp, out: Rule.apply(inp[0])))
        try:
            x = x.clone().requires_grad_(True)
            grad, = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
        finally:
            for handle in handles:
                handle.remove()
        return grad
    return method


def make_student_gradcam(weight_gradients=False, clone_output=True):
    def gradcam(model, x, target, layer):
        stored = {}

        def keep(module, inputs, output):
            stored["A"] = output
            # the model goes on with a copy, so a following ReLU(inplace=True) cannot overwrite A
            return output.clone() if clone_output else None

        handle = layer.register_forward_hook(keep)
        try:
            maps = []
            for i in range(x.shape[0]):
                score = model(x[i:i + 1]).gather(1, target[i:i + 1, None]).sum()
                if weight_gradients:
                    g, = torch.autograd.grad(score, layer.weight)
                    alpha = g.mean(dim=(1, 2, 3)).view(1, -1, 1, 1)
                else:
                    g, = torch.autograd.grad(score, stored["A"])
                    alpha = g.mean(dim=(2, 3), keepdim=True)
                cam = torch.relu((alpha * stored["A"]).sum(1, keepdim=True)).detach()
                maps.append(nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear",
                                                      align_corners=False))
        finally:
            handle.remove()
        return torch.cat(maps)
    return gradcam


def not_implemented(*args, **kwargs):
    raise NotImplementedError("write your code at # YOUR CODE HERE, where this traceback ends, then rerun that cell and this one")


# ---- the checks ----------------------------------------------------------------------------------

def test_saliency_checker(capsys):
    assert check.check_saliency(student_saliency).passed
    report = check.check_saliency(student_saliency_signed)
    out = capsys.readouterr().out
    assert not report.passed
    assert "take the magnitude" in out


def test_occlusion_checker(capsys):
    assert check.check_occlusion(student_occlusion).passed
    flipped = lambda *a, **k: -student_occlusion(*a, **k)  # noqa: E731
    assert not check.check_occlusion(flipped).passed
    assert "sign is flipped" in capsys.readouterr().out


def test_smoothgrad_checker_catches_absolute_sigma(capsys):
    assert check.check_smoothgrad(make_student_smoothgrad()).passed
    capsys.readouterr()
    report = check.check_smoothgrad(make_student_smoothgrad(absolute_sigma=True))
    out = capsys.readouterr().out
    assert not report.passed and "fraction of the image's value range" in out
    # sigma 0 cases still pass: the mistake only shows where the noise matters
    assert report.results[:2] == [True, True]
    report = check.check_smoothgrad(make_student_smoothgrad(average=False))
    assert not report.passed and "divide their sum by n_samples" in capsys.readouterr().out


def test_smoothgrad_checker_catches_a_batch_wide_range_and_repeated_noise(capsys):
    # one image's range for the whole batch: right for the 255-range image, wrong for the other
    report = check.check_smoothgrad(make_student_smoothgrad(batch_range=True))
    out = capsys.readouterr().out
    assert report.results == [True, True, False, True], out  # its noise is fresh, only too strong
    assert "range of each image, not of the whole batch" in out
    # the same noise for every sample: the right noise level, but N copies worth only one
    report = check.check_smoothgrad(make_student_smoothgrad(reseed_each_sample=True))
    out = capsys.readouterr().out
    assert report.results[:2] == [True, True] and report.results[3] is False, out
    assert "draw fresh noise for every sample" in out


def test_guided_backprop_checker_catches_a_missing_forward_mask(capsys):
    assert check.check_guided_backprop(make_student_relu_rule(True, True)).passed
    capsys.readouterr()
    report = check.check_guided_backprop(make_student_relu_rule(forward_mask=False, gradient_mask=True))
    assert not report.passed
    assert "keep the forward mask" in capsys.readouterr().out


def test_deconvnet_checker(capsys):
    assert check.check_deconvnet(make_student_relu_rule(False, True)).passed
    report = check.check_deconvnet(make_student_relu_rule(True, True))
    assert not report.passed and "you computed guided backprop" in capsys.readouterr().out


def test_gradcam_checker_catches_weight_gradients(capsys):
    assert check.check_gradcam(make_student_gradcam()).passed
    capsys.readouterr()
    report = check.check_gradcam(make_student_gradcam(weight_gradients=True))
    assert not report.passed
    assert "not its weights" in capsys.readouterr().out


def test_gradcam_checker_explains_the_in_place_relu_pitfall(capsys):
    report = check.check_gradcam(make_student_gradcam(clone_output=False))
    out = capsys.readouterr().out
    assert report.results == [True, False, True]  # only the model with in-place ReLUs differs
    assert "ReLU(inplace=True)" in out


def test_the_in_place_note_appears_only_when_in_place_relus_are_the_cause(capsys):
    """A mistake that fails every case (weight gradients) gets its hint, not the in-place note."""
    report = check.check_gradcam(make_student_gradcam(weight_gradients=True))
    out = capsys.readouterr().out
    assert report.results == [False, False, False]
    assert "not its weights" in out and "ReLU(inplace=True)" not in out


def test_an_untouched_stub_gets_one_friendly_line(capsys):
    for checker in (check.check_saliency, check.check_occlusion, check.check_smoothgrad,
                    check.check_guided_backprop, check.check_gradcam):
        report = checker(not_implemented)
        assert not report.passed and not report.implemented
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) == 1 and "not implemented yet" in out[0]


def test_a_crashing_function_is_reported_in_one_line_per_case(capsys):
    def broken(model, x, target):
        raise ValueError("shapes do not match")
    report = check.check_saliency(broken)
    out = capsys.readouterr().out
    assert report.results == [False, False, False]
    assert out.count("your function raised ValueError: shapes do not match") == 3


def test_the_cases_are_rebuilt_from_seeds_the_same_every_time():
    first, second = check.standard_cases(), check.standard_cases()
    for a, b in zip(first, second):
        assert torch.equal(a.x, b.x) and torch.equal(a.target, b.target)
        for p, q in zip(a.model.parameters(), b.model.parameters()):
            assert torch.equal(p, q)


def mixed_state_cases() -> list[check.Case]:
    """The standard cases, each model in a mixed state (train mode with one eval submodule, a
    frozen weight, a .grad already set): a checker that set a mode, unfroze or cleared would show."""
    cases = check.standard_cases()
    for case in cases:
        case.model.train()
        case.model.features[2].eval()
        case.model.classifier.weight.requires_grad_(False)
        case.model.features[0].weight.grad = torch.full_like(case.model.features[0].weight, 0.5)
    return cases


@pytest.mark.parametrize("student", [student_saliency, student_saliency_signed],
                         ids=["right", "wrong"])  # wrong: the typical mistakes are replayed too
def test_run_checks_leaves_every_case_as_it_found_it(student, capsys):
    cases, fresh = mixed_state_cases(), check.standard_cases()
    before = [snapshot(case.model) for case in cases]
    mistakes = {"take the magnitude": check._signed_gradient_max}
    reference = lambda m, x, t: attribution.saliency(m, x, t, reduce="max")  # noqa: E731
    report = check.run_checks("saliency", student, reference, cases, mistakes)
    assert report.passed == (student is student_saliency), capsys.readouterr().out
    for case, fresh_case, state in zip(cases, fresh, before):
        assert_same_state(state, snapshot(case.model))
        assert torch.equal(case.x, fresh_case.x) and torch.equal(case.target, fresh_case.target)


CHECKERS_ON_STANDARD_CASES = [check.check_saliency, check.check_occlusion, check.check_deconvnet,
                              check.check_guided_backprop, check.check_gradcam,
                              check.check_integrated_gradients]


@pytest.mark.parametrize("checker", CHECKERS_ON_STANDARD_CASES, ids=lambda c: c.__name__)
def test_the_student_gets_the_models_and_inputs_as_built(checker, capsys):
    """The reference runs first, on the same model: the student must still get it untouched."""
    def state(model):  # a snapshot to compare across model instances: hooks without module ids
        taken = snapshot(model)
        taken["hooks"] = [module_hooks for _, module_hooks in taken["hooks"]]
        return taken

    seen = []

    def spy(model, x, target, **knobs):
        seen.append((state(model), x.clone(), target.clone()))
        raise ValueError("spy")

    report = checker(spy)
    assert report.results == [False, False, False], capsys.readouterr().out
    for (got, x, target), case in zip(seen, check.standard_cases(), strict=True):
        assert_same_state(state(case.model), got)
        assert torch.equal(x, case.x) and torch.equal(target, case.target)


def make_student_ig(factor=True, left_sum=False):
    def integrated_gradients(model, x, target, baseline, steps):
        total = torch.zeros_like(x)
        ks = range(0, steps) if left_sum else range(1, steps + 1)
        for k in ks:
            point = (baseline + k / steps * (x - baseline)).requires_grad_(True)
            grad, = torch.autograd.grad(model(point).gather(1, target[:, None]).sum(), point)
            total += grad
        average = total / steps
        return (x - baseline) * average if factor else average
    return integrated_gradients


def test_integrated_gradients_checker(capsys):
    assert check.check_integrated_gradients(make_student_ig()).passed
    capsys.readouterr()
    report = check.check_integrated_gradients(make_student_ig(factor=False))
    assert not report.passed and "multiply the averaged gradient by (x - x')" in capsys.readouterr().out
    report = check.check_integrated_gradients(make_student_ig(left_sum=True))
    assert not report.passed and "k = 1..m" in capsys.readouterr().out
    assert not check.check_integrated_gradients(not_implemented).implemented


# ---- lesson 8: gradient-norm table and one ascent step ----------------------------------------

def make_student_gradient_norms(clear=True, with_biases=False, signed_mean=False, reduction="mean",
                                call_eval=False):
    """The table from .grad after one backward pass, written the obvious way."""
    def gradient_norms(model, x, target):
        if clear:
            for p in model.parameters():
                p.grad = None
        if call_eval:
            model.eval()
        nn.functional.cross_entropy(model(x), target, reduction=reduction).backward()
        rows = []
        for p in model.parameters():
            if p.dim() > 1 or with_biases:
                g = p.grad
                rows.append([(g.mean() if signed_mean else g.abs().mean()).item(), g.abs().max().item(),
                             g.pow(2).sum().sqrt().item()])
        return torch.tensor(rows, dtype=torch.float64)
    return gradient_norms


def test_gradient_norms_checker_passes_the_obvious_implementation():
    report = check.check_gradient_norms(make_student_gradient_norms())
    assert report.passed and len(report.results) == 3


GRADIENT_NORM_MISTAKES = [  # (the mistake, its hint, which of the 3 cases it fails)
    (dict(clear=False), "clear the stale gradients", [True, True, False]),
    (dict(with_biases=True), "leave the biases", [False, False, False]),
    (dict(signed_mean=True), "take |g| before the mean", [False, False, False]),
    (dict(reduction="sum"), "not the sum", [False, False, False]),
    # eval() leaves the caller's model in eval mode too: case 2 (no batch norm) fails for that alone
    (dict(call_eval=True), "model.eval() changes what batch norm computes", [True, False, False]),
]


def test_gradient_norms_checker_names_each_typical_mistake(capsys):
    for mistake, hint, results in GRADIENT_NORM_MISTAKES:
        report = check.check_gradient_norms(make_student_gradient_norms(**mistake))
        assert report.results == results, mistake
        assert hint in capsys.readouterr().out, mistake


def test_gradient_norms_reference_is_the_hand_formula_on_a_linear_model():
    # L = mean_b CE(W x_b, t_b): dL/dW = mean_b (softmax(W x_b) - onehot(t_b)) x_b^T, by hand
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False)).double()
    x, target = torch.rand(5, 1, 2, 2, dtype=torch.float64), torch.tensor([0, 2, 1, 1, 0])
    flat = x.flatten(1)
    residual = (flat @ model[1].weight.detach().T).softmax(1) - nn.functional.one_hot(target, 3)
    g = residual.T @ flat / 5
    expected = torch.tensor([[g.abs().mean(), g.abs().max(), g.norm()]], dtype=torch.float64)
    torch.testing.assert_close(check._reference_gradient_norms(model, x, target), expected)


def make_student_ascent_step(normalise_per_image=True, subtract_l2=True, clamp=True, normalise=True,
                             probability=False):
    def ascent_step(model, x, target, lr, l2):
        x = x.clone().requires_grad_(True)
        output = model(x).softmax(dim=1) if probability else model(x)
        logit = output[torch.arange(len(x)), target]
        penalty = ((x - 0.5) ** 2).sum(dim=(1, 2, 3))
        objective = logit - l2 * penalty if subtract_l2 else logit + l2 * penalty
        g, = torch.autograd.grad(objective.sum(), x)
        scale = g.abs().mean(dim=(1, 2, 3), keepdim=True) if normalise_per_image else g.abs().mean()
        scale = scale if normalise else 1.0
        new = x.detach() + lr * g / scale
        return new.clamp(0, 1) if clamp else new
    return ascent_step


def test_ascent_step_checker(capsys):
    assert check.check_ascent_step(make_student_ascent_step()).passed
    capsys.readouterr()
    report = check.check_ascent_step(make_student_ascent_step(subtract_l2=False))
    # case 2 has l2 = 0, where the sign of the penalty cannot matter
    assert report.results == [False, True, False] and "the L2 term is a penalty" in capsys.readouterr().out
    report = check.check_ascent_step(make_student_ascent_step(clamp=False))
    assert not report.passed and "clamp after the step" in capsys.readouterr().out
    # one image per batch in case 1: per-image and batch means agree there, and only there
    report = check.check_ascent_step(make_student_ascent_step(normalise_per_image=False))
    assert report.results == [True, False, False] and "per image" in capsys.readouterr().out
    report = check.check_ascent_step(make_student_ascent_step(normalise=False))
    assert not report.passed and "lr * g / mean|g|" in capsys.readouterr().out
    report = check.check_ascent_step(make_student_ascent_step(probability=True))
    assert not report.passed and "not the softmax probability" in capsys.readouterr().out


def test_ascent_step_reference_is_one_step_of_the_library_ascent():
    from gradviz_lab.featureviz import class_visualisation

    model, classes = check.tiny_cnn(4), [1, 3]
    knobs = dict(steps=1, lr=0.05, l2=0.2, jitter=0, blur_every=0, seed=5)
    library = class_visualisation(model, classes, (3, 8, 8), **knobs)
    # the library's start: mid-grey plus a little seeded noise
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    start = (0.5 + 0.05 * noise).clamp(0, 1).double()
    ours = check._reference_ascent_step(model, start, torch.tensor(classes), lr=0.05, l2=0.2)
    torch.testing.assert_close(ours, library)
    assert not torch.equal(ours, start)


def test_lesson_8_checkers_greet_an_untouched_stub_with_one_line(capsys):
    for checker in (check.check_gradient_norms, check.check_ascent_step):
        report = checker(not_implemented)
        assert not report.passed and not report.implemented
        out = capsys.readouterr().out.strip().splitlines()
        assert len(out) == 1 and "not implemented yet" in out[0]


class _DoubledReLU(nn.Module):
    """A nonsense backward rule (2 g), as a module that replaces nn.ReLU."""

    class _Rule(torch.autograd.Function):
        @staticmethod
        def forward(ctx, s):
            return s.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            return 2 * g

    def forward(self, s):
        return self._Rule.apply(s)


def _replace_relus_in_place(model, x, target):
    """The mistake of exercise 4 without its copy: the caller's ReLUs are swapped for the rule."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, name, _DoubledReLU())
    return attribution.input_gradient(model, x, target)


def test_a_function_that_changes_the_callers_model_fails_even_with_a_wrong_rule(capsys):
    """The reference runs first, on the intact model: a student who swaps the model's own ReLUs
    cannot make the reference agree with a nonsense rule, and is told what happened."""
    for checker in (check.check_deconvnet, check.check_guided_backprop):
        report = checker(_replace_relus_in_place)
        out = capsys.readouterr().out
        assert report.results == [False, False, False], out
        assert "changed the model it was given (its modules were replaced)" in out


def test_a_hook_left_on_the_model_fails_the_case(capsys):
    def saliency_leaving_a_hook(model, x, target):
        model.register_forward_hook(lambda m, i, o: None)
        return attribution.saliency(model, x, target)

    report = check.check_saliency(saliency_leaving_a_hook)
    out = capsys.readouterr().out
    assert report.results == [False, False, False] and "1 hook(s) left on it" in out


def test_backward_into_dot_grad_or_frozen_parameters_fail_the_case(capsys):
    """A saliency written with loss.backward() leaves .grad on the caller's parameters."""
    def saliency_by_backward(model, x, target):
        x = x.clone().requires_grad_(True)
        model(x).gather(1, target[:, None]).sum().backward()
        return x.grad.abs().amax(dim=1, keepdim=True)

    report = check.check_saliency(saliency_by_backward)
    assert report.results == [False, False, False]
    assert "left in its parameters' .grad" in capsys.readouterr().out

    def saliency_freezing(model, x, target):
        for p in model.parameters():
            p.requires_grad_(False)
        return attribution.saliency(model, x, target)

    report = check.check_saliency(saliency_freezing)
    assert report.results == [False, False, False]
    assert "requires_grad flags changed" in capsys.readouterr().out


def student_rollout(attentions):  # attention rollout (lesson 10): Ā + I, rows renormalised
    eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype)
    rollout = eye
    for weights in attentions:
        mixing = weights.mean(dim=1) + eye
        rollout = mixing / mixing.sum(dim=-1, keepdim=True) @ rollout
    return rollout[:, 0, 1:]


CORRECT_STUDENTS = {  # a right answer for every checker; none of them draws from torch's stream
    check.check_saliency: student_saliency,
    check.check_occlusion: student_occlusion,
    check.check_smoothgrad: make_student_smoothgrad(),
    check.check_guided_backprop: make_student_relu_rule(True, True),
    check.check_deconvnet: make_student_relu_rule(False, True),
    check.check_gradcam: make_student_gradcam(),
    # Grad-CAM++ (issue 20): the checker's own fresh implementation, with no mistake switched on
    check.check_gradcam_plus_plus: _gradcam_plus_plus_variant(),
    check.check_integrated_gradients: make_student_ig(),
    # lesson 11 (issue 22): the students of test_check_relevance.py
    check.check_layer_relevance: test_check_relevance.layer_relevance,
    check.check_textbook_lrp: test_check_relevance.textbook_lrp,
    check.check_gradient_norms: make_student_gradient_norms(),
    check.check_ascent_step: make_student_ascent_step(),
    check.check_attention_rollout: student_rollout,
}


def test_every_checker_has_a_right_answer_here():
    checkers = {getattr(check, n) for n in dir(check) if n.startswith("check_")}
    assert checkers == set(CORRECT_STUDENTS)


@pytest.mark.parametrize("checker", list(CORRECT_STUDENTS), ids=lambda c: c.__name__)
def test_checkers_leave_the_notebooks_random_stream_alone(checker, capsys):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert checker(CORRECT_STUDENTS[checker]).passed, capsys.readouterr().out
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("checker", list(CORRECT_STUDENTS), ids=lambda c: c.__name__)
@pytest.mark.parametrize("given", ["saliency", torch.zeros(1, 1, 8, 8), None])
def test_something_else_than_a_function_gets_one_clear_line(checker, given, capsys):
    # e.g. check_saliency(saliency(model, x, target)): the result, not the function
    report = checker(given)
    out = capsys.readouterr().out.strip().splitlines()
    assert not report.passed and report.results == []
    assert len(out) == 1, out
    assert "your function itself, its name without parentheses" in out[0]
    assert f"it got a {type(given).__name__}" in out[0]


@pytest.mark.parametrize("checker", list(CORRECT_STUDENTS), ids=lambda c: c.__name__)
def test_a_function_that_returns_none_is_told_so_in_every_case(checker, capsys):
    """A body written without its `return` (or the stub line deleted, nothing written) gives None:
    every case says so in words, and none is dropped from the count."""
    cases = len(checker(CORRECT_STUDENTS[checker]).results)
    capsys.readouterr()
    report = checker(lambda *args, **kwargs: None)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert not report.passed and report.results == [False] * cases
    assert len(lines) == cases
    assert all(line.startswith("[x]") and "your function returned None: did you forget its return"
               in line for line in lines), lines


# ---- issue 18: errors said relative to the reference's scale, and the wrong-score pitfalls --------

def scored(model, x, score):
    """The model's logits, or what a student scored by mistake: the probability or the loss."""
    logits = model(x)
    return {"logit": logits, "probability": logits.softmax(dim=1), "loss": -logits.log_softmax(dim=1)}[score]


def make_student_occlusion(average=True, score="logit"):
    def occlusion(model, x, target, window, stride):
        (wh, ww), (B, C, H, W) = window, x.shape
        with torch.no_grad():
            base = scored(model, x, score).gather(1, target[:, None])[:, 0]
            total, count = torch.zeros(B, 1, H, W, dtype=x.dtype), torch.zeros(1, 1, H, W, dtype=x.dtype)
            for top in range(0, H - wh + 1, stride):
                for left in range(0, W - ww + 1, stride):
                    occluded = x.clone()
                    occluded[:, :, top:top + wh, left:left + ww] = 0
                    drop = base - scored(model, occluded, score).gather(1, target[:, None])[:, 0]
                    total[:, :, top:top + wh, left:left + ww] += drop.view(B, 1, 1, 1)
                    count[:, :, top:top + wh, left:left + ww] += 1
        return total / count.clamp(min=1) if average else total
    return occlusion


def test_the_occlusion_checker_names_the_sum_of_overlapping_windows(capsys):
    assert check.check_occlusion(make_student_occlusion()).passed
    capsys.readouterr()
    report = check.check_occlusion(make_student_occlusion(average=False))
    out = capsys.readouterr().out
    # the case whose stride equals its window has no overlap: there the sum is the average
    assert report.results == [False, False, True], out
    assert out.count("you returned their sum") == 2, out
    # the error is said against the reference's scale: a sum of 4 windows is off by 100% or more
    percents = [float(p) for p in re.findall(r"that is ([0-9.e+]+)% of the reference's largest", out)]
    assert len(percents) == 2 and min(percents) >= 100, out


@pytest.mark.parametrize("score", ["probability", "loss"])
def test_the_occlusion_checker_names_a_probability_or_loss_score(score, capsys):
    report = check.check_occlusion(make_student_occlusion(score=score))
    out = capsys.readouterr().out
    assert report.results == [False, False, False], out
    wanted = "not the softmax probability" if score == "probability" else "not the cross-entropy loss"
    assert out.count(wanted) == 3, out


def test_the_relative_error_is_computed_against_the_largest_reference_value():
    expected = torch.tensor([[0.0004, -0.0005, 0.0002]], dtype=torch.float64)
    got = expected + torch.tensor([[0.0, 0.0001, -0.0002]], dtype=torch.float64)
    ok, message = check._compare(got, expected, atol=1e-8)
    # 0.0002 against a largest magnitude of 0.0005: 40%
    assert not ok and "max abs difference 0.0002, that is 40% of the reference's largest magnitude (0.0005)" in message
    ok, message = check._compare(torch.ones(1, 3, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64), 1e-8)
    assert not ok and "reference is 0 everywhere" in message


def make_student_saliency(score="logit"):
    def saliency(model, x, target):
        x = x.clone().requires_grad_(True)
        grad, = torch.autograd.grad(scored(model, x, score).gather(1, target[:, None]).sum(), x)
        return grad.abs().amax(dim=1, keepdim=True)
    return saliency


def test_the_saliency_checker_names_a_loss_score(capsys):
    assert check.check_saliency(make_student_saliency()).passed
    capsys.readouterr()
    report = check.check_saliency(make_student_saliency("probability"))
    assert not report.passed and "not the softmax probability" in capsys.readouterr().out
    report = check.check_saliency(make_student_saliency("loss"))
    out = capsys.readouterr().out
    assert report.results == [False, False, False] and out.count("not the cross-entropy loss") == 3, out


@pytest.mark.parametrize("score", ["probability", "loss"])
def test_the_smoothgrad_checker_names_a_wrong_score_at_sigma_0(score, capsys):
    def smoothgrad(model, x, target, n_samples, sigma, seed):
        inner = make_student_smoothgrad()
        wrapped = lambda images: scored(model, images, score)  # noqa: E731
        wrapped_model = type("Scored", (nn.Module,), {"forward": lambda self, images: wrapped(images)})()
        return inner(wrapped_model, x, target, n_samples, sigma, seed)
    report = check.check_smoothgrad(smoothgrad)
    out = capsys.readouterr().out
    assert report.results[:2] == [False, False], out
    wanted = "not the softmax probability" if score == "probability" else "not the cross-entropy loss"
    assert out.count(wanted) == 2, out


def scored_model(model, score):
    """model whose output is what the student scored (the same layers, so a hook still fires)."""
    class Scored(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, images):
            return scored(self.inner, images, score)
    return Scored()


@pytest.mark.parametrize("score", ["probability", "loss"])
def test_the_gradcam_and_ig_checkers_name_a_wrong_score(score, capsys):
    wanted = "not the softmax probability" if score == "probability" else "not the cross-entropy loss"
    gradcam = make_student_gradcam()
    report = check.check_gradcam(lambda m, x, t, layer: gradcam(scored_model(m, score), x, t, layer))
    out = capsys.readouterr().out
    assert not any(report.results) and out.count(wanted) == 3, out
    ig = make_student_ig()
    report = check.check_integrated_gradients(lambda m, x, t, **k: ig(scored_model(m, score), x, t, **k))
    out = capsys.readouterr().out
    assert not any(report.results) and out.count(wanted) == 3, out


def test_the_ascent_checker_names_the_log_probability(capsys):
    def ascent(model, x, target, lr, l2):
        model = copy.deepcopy(model).eval()
        x = x.clone().requires_grad_(True)
        objective = model(x).log_softmax(dim=1).gather(1, target[:, None])[:, 0] \
            - l2 * (x - 0.5).pow(2).flatten(1).sum(1)
        g, = torch.autograd.grad(objective.sum(), x)
        return (x + lr * g / g.abs().flatten(1).mean(1).view(-1, 1, 1, 1)).clamp(0, 1).detach()
    report = check.check_ascent_step(ascent)
    out = capsys.readouterr().out
    assert not any(report.results), out
    # with l2 = 0 (case 2) the normalised step of p_c equals that of log p_c (grad p_c = p_c grad
    # log p_c, and p_c cancels in g / mean|g|): either hint is right there
    lines = out.splitlines()
    assert "not the log-probability" in lines[0] and "not the log-probability" in lines[2], out
    assert "not the softmax probability" in lines[1], out
    # the error is measured against the reference's step (at most lr * max|g| / mean|g|), not the image
    scales = [float(p) for p in re.findall(r"reference's largest magnitude \(([0-9.e+-]+)\)", out)]
    steps = [(case.model, case) for case in check._ascent_cases()]
    expected = [float((check._reference_ascent_step(m, c.x, c.target, **c.knobs) - c.x).abs().max())
                for m, c in steps]
    assert scales == pytest.approx(expected, rel=0.01), out
