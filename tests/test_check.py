"""The exercise checkers pass correct student code, fail typical wrong code with the right hint,
and greet an untouched stub with one friendly line."""

from __future__ import annotations

import copy

import torch
from torch import nn

from gradviz_lab import check


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


def make_student_smoothgrad(absolute_sigma=False, average=True):
    def smoothgrad(model, x, target, n_samples, sigma, seed):
        generator = torch.Generator().manual_seed(seed)
        value_range = x.amax(dim=(1, 2, 3), keepdim=True) - x.amin(dim=(1, 2, 3), keepdim=True)
        std = sigma if absolute_sigma else sigma * value_range
        total = torch.zeros_like(x)
        for _ in range(n_samples):
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
    raise NotImplementedError("write your code here, then run this cell again")


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


def test_checkers_do_not_change_the_models_they_build():
    # the checker's random models are rebuilt from seeds: the same cases every time
    first, second = check.standard_cases(), check.standard_cases()
    for a, b in zip(first, second):
        assert torch.equal(a.x, b.x) and torch.equal(a.target, b.target)
        for p, q in zip(a.model.parameters(), b.model.parameters()):
            assert torch.equal(p, q)


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
