"""Exercise checkers: run a student's function against the reference on small random models.

Each ``check_<method>(student_function)`` builds a few seeded random CNNs and inputs (so a checker
cannot be passed by hard-coding), calls the student's function with the package's call shape
``f(model, x, target, **knobs)`` where ``target`` is a tensor of B class indices, compares the
result with ``gradviz_lab.attribution``, and prints one line per case. When a result is wrong and
matches a typical mistake (a magnitude forgotten, weight gradients instead of activation
gradients, the probability or the loss scored instead of the logit, ...), the line says which, as
a hint. A difference is said relative to the reference's largest value: tiny models give tiny
maps, where an absolute 0.0007 can be an error of over 100%.

A function that still raises ``NotImplementedError`` (the untouched exercise stub) gets one friendly
line instead of a traceback. Every checker returns a ``CheckReport`` whose ``passed`` is True when
all cases match.
"""

from __future__ import annotations

import copy

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from . import attribution, hooks

Method = Callable[..., torch.Tensor]


@dataclass
class Case:
    description: str
    model: nn.Module
    x: torch.Tensor
    target: torch.Tensor
    knobs: dict = field(default_factory=dict)
    inplace: bool = False  # does the model use ReLU(inplace=True)?


@dataclass
class CheckReport:
    name: str
    results: list[bool]
    implemented: bool = True

    @property
    def passed(self) -> bool:
        return self.implemented and bool(self.results) and all(self.results)

    def __repr__(self) -> str:
        return f"CheckReport({self.name}: {sum(self.results)}/{len(self.results)} cases passed)"


def tiny_cnn(seed: int, in_channels: int = 3, classes: int = 5, inplace: bool = False) -> nn.Module:
    """Conv-ReLU-Conv-ReLU-MaxPool-Conv-ReLU, global average pooling, linear: a lab CNN in small.
    (Seeded on a forked random state: the notebook's own random stream is left as it was.)"""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _tiny_cnn(in_channels, classes, inplace)


def _tiny_cnn(in_channels: int, classes: int, inplace: bool) -> nn.Module:
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(
        nn.Conv2d(in_channels, 6, 3, padding=1), nn.ReLU(inplace=inplace),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=inplace),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=inplace),
    ))
    model.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    model.add_module("classifier", nn.Linear(8, classes))
    return model.double().eval()


def standard_cases() -> list[Case]:
    """Three seeded cases: batch sizes 1 and 3, RGB and grey, in-place ReLUs in one of them."""
    cases = []
    for seed, (batch, channels, size, inplace) in enumerate([(1, 3, 8, False), (3, 3, 10, True),
                                                             (2, 1, 12, False)]):
        model = tiny_cnn(seed, in_channels=channels, inplace=inplace)
        generator = torch.Generator().manual_seed(100 + seed)
        x = torch.rand(batch, channels, size, size, generator=generator, dtype=torch.float64)
        target = torch.randint(0, 5, (batch,), generator=generator)
        cases.append(Case(f"{batch} image(s) {channels}x{size}x{size}, in-place ReLU: {inplace}",
                          model, x, target, inplace=inplace))
    return cases


def run_checks(name: str, student: Method, reference: Method, cases: list[Case],
               mistakes: dict[str, Method] | None = None, atol: float = 1e-6,
               uses_grad: bool = False) -> CheckReport:
    """Compare student(model, x, target, **knobs) with reference on every case; print one line each.

    The reference runs first, on the untouched model; after the student's function the model must
    be exactly as it was (same modules, weights, modes, requires_grad flags and .grad, no hook
    left), or the case fails. ``uses_grad=True``: the task itself reads .grad after backward()
    (gradient norms), so .grad may change.
    """
    if not callable(student):
        return _not_a_function(name, student)
    results = []
    for number, case in enumerate(cases, 1):
        prefix = f"case {number}/{len(cases)} ({case.description})"
        expected = reference(case.model, case.x.clone(), case.target.clone(), **case.knobs)
        before = _fingerprint(case.model)
        try:
            got = student(case.model, case.x.clone(), case.target.clone(), **case.knobs)
        except NotImplementedError:
            print(f"[ ] {name}: not implemented yet - write your code where it says "
                  f"# YOUR CODE HERE, run that cell, then run this check again.")
            return CheckReport(name, [], implemented=False)
        except Exception as error:  # the student sees the problem in one line, not a traceback
            print(f"[x] {prefix}: your function raised {type(error).__name__}: {error}")
            results.append(False)
            continue
        changed = _what_changed(before, _fingerprint(case.model), uses_grad)
        ok, message = _compare(got, expected, atol)
        if not ok and changed not in ("its modules were replaced", "its weights changed"):
            # (the typical mistakes are replayed on the model, so only on an intact one)
            hint = _diagnose(got, case, mistakes or {}, atol)
            message += f" Hint: {hint}" if hint else ""
            if case.inplace and _passes_without_inplace(student, case, expected, atol):
                message += (" Note: this model uses ReLU(inplace=True), which overwrites its input "
                            "(and so a stored layer output) during the forward pass; work on a copy "
                            "with inplace=False, or clone the tensors you keep.")
        if changed:
            ok = False
            message += (f" And your function changed the model it was given ({changed}): leave it"
                        " as it was, e.g. work on a copy (copy.deepcopy(model)) or undo what you did.")
        results.append(ok)
        print(f"[{'ok' if ok else 'x'}] {prefix}: {message}")
    verdict = "all cases pass" if all(results) else f"{sum(results)}/{len(results)} cases pass"
    print(f"{name}: {verdict}.")
    return CheckReport(name, results)


def _not_a_function(name: str, student: object) -> CheckReport:
    """One line for a checker given something else than a function, e.g. check(saliency(...))."""
    print(f"[x] {name}: give the checker your function itself, its name without parentheses "
          f"(e.g. check_saliency(saliency)); it got a {type(student).__name__}.")
    return CheckReport(name, [])


def _fingerprint(model: nn.Module) -> dict:
    """What a method must leave as it found: module types, weights, train/eval modes, hooks,
    requires_grad flags and the parameters' .grad.
    (Batch-norm running statistics are left out: a forward pass in train mode updates them.)"""
    return {
        "modules": [(name, type(module).__name__) for name, module in model.named_modules()],
        "weights": {key: value.detach().clone() for key, value in model.named_parameters()},
        "modes": [module.training for module in model.modules()],
        "hooks": hooks.count_hooks(model),
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()],
    }


def _what_changed(before: dict, after: dict, uses_grad: bool = False) -> str:
    if before["modules"] != after["modules"]:
        return "its modules were replaced"
    if before["weights"].keys() != after["weights"].keys() or not all(
            torch.equal(before["weights"][k], after["weights"][k]) for k in before["weights"]):
        return "its weights changed"
    if before["modes"] != after["modes"]:
        return "its train/eval mode changed"
    if after["hooks"] != before["hooks"]:
        return f"{after['hooks'] - before['hooks']} hook(s) left on it"
    if before["requires_grad"] != after["requires_grad"]:
        return "its parameters' requires_grad flags changed"
    if not uses_grad and any((a is None) != (b is None) or (a is not None and not torch.equal(a, b))
           for a, b in zip(before["grads"], after["grads"])):
        return ("gradients were left in its parameters' .grad: take them with torch.autograd.grad, "
                "which leaves .grad alone")
    return ""


def _compare(got, expected: torch.Tensor, atol: float) -> tuple[bool, str]:
    if not isinstance(got, torch.Tensor):
        return False, f"expected a tensor, got {type(got).__name__}."
    if tuple(got.shape) != tuple(expected.shape):
        return False, f"shape {tuple(got.shape)}, expected {tuple(expected.shape)}."
    got = got.detach().to(expected.dtype)
    if not torch.isfinite(got).all():
        return False, "your result has NaN or infinite values."
    if torch.allclose(got, expected, atol=atol, rtol=1e-4):
        return True, "matches the reference."
    return False, f"differs from the reference: {_relative_error(got, expected)}."


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> str:
    """The largest difference, said relative to the reference's own scale.

    Tiny models give tiny maps: 0.000679 reads like rounding, but not next to a largest reference
    value of 0.000569 (a difference of 119%)."""
    difference = float((got - expected).abs().max())
    scale = float(expected.abs().max())
    if scale == 0:
        return f"max abs difference {difference:.3g}, where the reference is 0 everywhere"
    return (f"max abs difference {difference:.3g}, that is {100 * difference / scale:.2g}% of the "
            f"reference's largest magnitude ({scale:.3g})")


def _passes_without_inplace(student: Method, case: Case, expected: torch.Tensor, atol: float) -> bool:
    """Is ReLU(inplace=True) the cause? True when the student's function gives the reference
    result on a copy of the model whose ReLUs are not in place (the same function)."""
    model = copy.deepcopy(case.model)
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    names = {id(module): name for name, module in case.model.named_modules()}
    knobs = {  # a layer passed as a module must be the copy's layer
        key: model.get_submodule(names[id(value)]) if id(value) in names else value
        for key, value in case.knobs.items()
    }
    try:
        got = student(model, case.x.clone(), case.target.clone(), **knobs)
    except Exception:
        return False
    return _compare(got, expected, atol)[0]


def _diagnose(got, case: Case, mistakes: dict[str, Method], atol: float) -> str | None:
    """The hint of the first typical mistake whose output the student's result reproduces."""
    if not isinstance(got, torch.Tensor):
        return None
    for hint, mistake in mistakes.items():
        wrong = mistake(case.model, case.x.clone(), case.target.clone(), **case.knobs)
        if tuple(wrong.shape) == tuple(got.shape) and torch.allclose(
                got.detach().to(wrong.dtype), wrong, atol=atol, rtol=1e-4):
            return hint
    return None


# ----------------------------------------------------------------------------------------------
# Typical mistakes, each written the wrong way on purpose.

class _ScoredAs(nn.Module):
    """The model with its logits y turned into softmax probabilities ("probability") or into the
    cross-entropy loss of every class, -log softmax(y) ("loss").

    Replaying a reference method on it reproduces a student's function that scored the
    probability or the loss where the lesson scores the logit y_c (a pitfall of every lesson)."""

    def __init__(self, model: nn.Module, score: str):
        super().__init__()
        self.model, self.score = model, score
        self.training = model.training  # (set directly: .train() would change every submodule)

    def forward(self, x):
        logits = self.model(x)
        return logits.softmax(dim=1) if self.score == "probability" else -logits.log_softmax(dim=1)


def _scored_as(score: str, reference: Method) -> Method:
    """reference, computed on the probability or the loss instead of the logit."""
    return lambda model, x, target, **knobs: reference(_ScoredAs(model, score), x, target, **knobs)


def _wrong_score_mistakes(reference: Method, what: str = "score") -> dict[str, Method]:
    """The hints for the pitfall "the probability (or the loss) instead of the logit"."""
    return {
        f"{what} the logit y_c (the model's raw output), not the softmax probability p_c: the "
        "softmax saturates and mixes in every other class.": _scored_as("probability", reference),
        f"{what} the logit y_c (the model's raw output), not the cross-entropy loss -log p_c.":
            _scored_as("loss", reference),
    }


def _signed_gradient_max(model, x, target):
    return attribution.input_gradient(model, x, target).amax(dim=1, keepdim=True)


def _softmax_gradient_magnitude(model, x, target):
    x = x.clone().requires_grad_(True)
    probabilities = model(x).softmax(dim=1)
    score = probabilities.gather(1, target[:, None]).sum()
    grad, = torch.autograd.grad(score, x)
    return grad.abs().amax(dim=1, keepdim=True)


def check_saliency(student: Method) -> CheckReport:
    """saliency(model, x, target) -> (B, 1, H, W): max over channels of |dy_c/dx| (Simonyan et al.)."""
    mistakes = {
        "take the magnitude |dy_c/dx| before the max over channels (you kept the sign).":
            _signed_gradient_max,
        "differentiate the logit y_c, not the softmax probability.": _softmax_gradient_magnitude,
        "differentiate the logit y_c, not the cross-entropy loss -log p_c.":
            _scored_as("loss", lambda m, x, t: attribution.saliency(m, x, t, reduce="max")),
        "reduce over channels with the max, not the sum.":
            lambda m, x, t: attribution.input_gradient(m, x, t).abs().sum(dim=1, keepdim=True),
    }
    reference = lambda m, x, t: attribution.saliency(m, x, t, reduce="max")  # noqa: E731
    return run_checks("saliency", student, reference, standard_cases(), mistakes)


def check_occlusion(student: Method) -> CheckReport:
    """occlusion(model, x, target, window, stride) -> (B, 1, H, W), baseline 0: f(x) - f(occluded),
    averaged over the windows that cover each pixel (Zeiler and Fergus 2014)."""
    cases = standard_cases()
    # windows that tile each image exactly, so every pixel is covered without a border rule
    for case, (window, stride) in zip(cases, [((4, 4), 2), ((2, 4), 2), ((4, 4), 4)]):
        case.knobs = {"window": window, "stride": stride}
        case.description += f", window {window}, stride {stride}"
    reference = lambda m, x, t, **k: attribution.occlusion(m, x, t, baseline=0.0, **k)  # noqa: E731
    mistakes = {
        "the sensitivity is f(x) - f(occluded x), not the other way round (your sign is flipped).":
            lambda m, x, t, **k: -reference(m, x, t, **k),
        "average the drops of the windows that cover each pixel (divide by how many cover it): "
        "you returned their sum.":
            lambda m, x, t, **k: reference(m, x, t, **k) * _windows_covering(x.shape[-2:], **k),
        **_wrong_score_mistakes(reference),
    }
    return run_checks("occlusion", student, reference, cases, mistakes, atol=1e-8)


def _windows_covering(size: tuple[int, int], window: tuple[int, int], stride: int) -> torch.Tensor:
    """How many window positions (top-left corners every stride pixels, windows inside the image)
    cover each pixel: (1, 1, H, W). Unfold lists the windows, fold adds them back up."""
    ones = torch.ones(1, 1, *size, dtype=torch.float64)
    windows = nn.functional.unfold(ones, window, stride=stride)
    return nn.functional.fold(windows, size, window, stride=stride)


class _Cubic(nn.Module):
    """y_k = sum_i w_ki x_i^3 / 3, so dy_k/dx_i = w_ki x_i^2 and E[grad at x + eps] = w (x^2 + sigma^2).

    The expected SmoothGrad map is known in closed form, and it depends on sigma: an absolute sigma
    and one relative to the value range give visibly different maps.
    """

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        return torch.einsum("kchw,bchw->bk", self.weight, x ** 3) / 3


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.flatten(1).mean(dim=1)


def _cubic_batch(sigma: float) -> tuple[_Cubic, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two images with different value ranges (10 and 255) in one batch, the cubic model, targets,
    and each image's true noise variance (sigma * its range)^2."""
    generator = torch.Generator().manual_seed(3)
    ranges = torch.tensor([10.0, 255.0], dtype=torch.float64)
    x = (torch.rand(2, 3, 8, 8, generator=generator, dtype=torch.float64) - 0.5) * ranges.view(2, 1, 1, 1)
    x[:, 0, 0, 0], x[:, 0, 0, 1] = -ranges / 2, ranges / 2  # each image's range is exactly its value
    model = _Cubic(torch.rand(5, 3, 8, 8, generator=generator, dtype=torch.float64) + 0.5)
    return model, x, torch.tensor([1, 3]), (sigma * ranges) ** 2


def check_smoothgrad(student: Method, n_samples: int = 300) -> CheckReport:
    """smoothgrad(model, x, target, n_samples, sigma, seed) -> (B, C, H, W): the mean input gradient
    over n noisy copies x + N(0, s^2), with s = sigma * (max - min) of each image (Smilkov et al.
    2017).

    Cases 3 and 4 use a cubic model, y_k = sum_i w_ki x_i^3 / 3, whose expected SmoothGrad map is
    w (x^2 + s^2): the map gives away each image's noise variance s^2 (case 3), and how much it
    scatters around its expectation shows whether the n copies drew independent noise (case 4:
    the per-pixel variance of a mean of n independent draws is Var[(x + e)^2] / n).
    """
    if not callable(student):
        return _not_a_function("smoothgrad", student)
    results = []
    cases = standard_cases()[:2]
    for number, case in enumerate(cases, 1):  # sigma 0: SmoothGrad is the plain gradient
        prefix = f"case {number}/4 (sigma 0 on a CNN, {case.description})"
        try:
            got = student(case.model, case.x.clone(), case.target.clone(), n_samples=3, sigma=0.0, seed=0)
        except NotImplementedError:
            print("[ ] smoothgrad: not implemented yet - write your code where it says "
                  "# YOUR CODE HERE, run that cell, then run this check again.")
            return CheckReport("smoothgrad", [], implemented=False)
        except Exception as error:
            print(f"[x] {prefix}: your function raised {type(error).__name__}: {error}")
            results.append(False)
            continue
        ok, message = _compare(got, attribution.input_gradient(case.model, case.x, case.target), 1e-6)
        if not ok:  # with sigma 0 the wrong score is the only typical mistake that shows
            mistakes = _wrong_score_mistakes(attribution.input_gradient, what="differentiate")
            hint = _diagnose(got, case, mistakes, 1e-6)  # (case.knobs is empty: no sigma to pass)
            message += f" Hint: {hint}" if hint else ""
        results.append(ok)
        print(f"[{'ok' if ok else 'x'}] {prefix}: {message}")

    sigma = 0.2
    model, x, target, true = _cubic_batch(sigma)
    level = f"case 3/4 (cubic model, two images with value ranges 10 and 255, sigma {sigma})"
    fresh = f"case 4/4 (the same, {n_samples} samples: is each sample's noise drawn afresh?)"
    try:
        got = student(model, x.clone(), target.clone(), n_samples=n_samples, sigma=sigma, seed=0)
    except Exception as error:
        for prefix in (level, fresh):
            print(f"[x] {prefix}: your function raised {type(error).__name__}: {error}")
        results += [False, False]
        got = None
    if got is not None and (not isinstance(got, torch.Tensor) or got.shape != x.shape):
        for prefix in (level, fresh):
            print(f"[x] {prefix}: expected a tensor of shape {tuple(x.shape)}.")
        results += [False, False]
        got = None
    if got is not None:
        ok_level, message = _check_noise_level(got.detach(), model, x, target, true, sigma, n_samples)
        results.append(ok_level)
        print(f"[{'ok' if ok_level else 'x'}] {level}: {message}")
        ok_fresh, message = _check_fresh_noise(got.detach(), model, x, target, n_samples)
        results.append(ok_fresh)
        print(f"[{'ok' if ok_fresh else 'x'}] {fresh}: {message}")
    verdict = "all cases pass" if all(results) else f"{sum(results)}/{len(results)} cases pass"
    print(f"smoothgrad: {verdict}.")
    return CheckReport("smoothgrad", results)


def _check_noise_level(got, model, x, target, true, sigma, n_samples) -> tuple[bool, str]:
    weight = model.weight.detach()[target]
    estimate = _per_image(got / weight - x ** 2)  # each image's s^2
    ok = bool(((estimate - true).abs() < 0.15 * true).all())
    if ok:
        return True, "each image's noise level matches sigma x (its max - min)."
    implied = ", ".join(f"{max(float(e), 0) ** 0.5:.3g}" for e in estimate)
    wanted = ", ".join(f"{float(t) ** 0.5:.3g}" for t in true)
    message = f"your maps imply noise standard deviations of {implied}; expected {wanted}."
    batch_wide = (sigma * (x.max() - x.min())) ** 2
    if bool(((estimate - sigma ** 2).abs() < 0.15 * true).all()):
        message += (" Hint: sigma is a fraction of the image's value range: use "
                    "sigma * (x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))), one value per image.")
    elif bool(((estimate - batch_wide).abs() < 0.15 * batch_wide).all()):
        message += (" Hint: take the range of each image, not of the whole batch: "
                    "x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3)).")
    else:
        scale = float((got / (weight * (x ** 2 + true.view(-1, 1, 1, 1)))).mean())
        if abs(scale - n_samples) < 0.2 * n_samples:
            message += " Hint: average the gradients (divide their sum by n_samples)."
    return False, message


def _check_fresh_noise(got, model, x, target, n_samples) -> tuple[bool, str]:
    weight = model.weight.detach()[target]
    # each image's noise variance as the student's maps imply it (case 3 checks its value)
    s2 = _per_image(got / weight - x ** 2).clamp(min=1e-12).view(-1, 1, 1, 1)
    residual = got / weight - x ** 2 - s2  # the mean of n draws of (x + e)^2 - x^2 - s^2
    expected_variance = (4 * x ** 2 * s2 + 2 * s2 ** 2) / n_samples  # Var[(x + e)^2] / n
    ratio = float((residual ** 2 / expected_variance).mean())  # about 1 for independent draws
    if ratio < 2.0:
        return True, f"the maps scatter as a mean of {n_samples} independent draws should."
    return False, (f"your maps scatter {ratio:.0f} times more than a mean of {n_samples} independent "
                   "noisy copies would. Hint: draw fresh noise for every sample (create the "
                   "generator once, before the loop, and never re-seed it inside).")


def check_guided_backprop(student: Method) -> CheckReport:
    """guided_backprop(model, x, target) -> (B, C, H, W): through each ReLU pass back
    1{s>0} 1{g>0} g (Springenberg et al. 2015)."""
    mistakes = {
        "keep the forward mask 1{s > 0} too: without it you computed the deconvnet.":
            attribution.deconvnet,
        "also zero the negative gradients 1{g > 0} at each ReLU: you computed the plain gradient.":
            attribution.input_gradient,
    }
    return run_checks("guided backprop", student, attribution.guided_backprop, standard_cases(), mistakes)


def check_deconvnet(student: Method) -> CheckReport:
    """deconvnet(model, x, target) -> (B, C, H, W): through each ReLU pass back 1{g>0} g
    (Zeiler and Fergus 2014)."""
    mistakes = {
        "the deconvnet ignores the forward mask 1{s > 0}: you computed guided backprop.":
            attribution.guided_backprop,
        "zero the negative gradients 1{g > 0} at each ReLU: you computed the plain gradient.":
            attribution.input_gradient,
    }
    return run_checks("deconvnet", student, attribution.deconvnet, standard_cases(), mistakes)


def _gradcam_cases() -> list[Case]:
    cases = standard_cases()
    for case in cases:
        case.knobs = {"layer": case.model.features[5]}  # the last conv: 8 channels at half size
        case.description += ", layer features.5"
    return cases


def _gradcam_weight_gradients(model, x, target, layer):
    """The mistake: channel weights from the gradient of y_c with respect to the layer's *weights*."""
    maps = []
    for i in range(x.shape[0]):  # per image, since weight gradients sum over the batch
        with hooks.captured_layer(model, "layer", layer) as captured:
            score = model(x[i:i + 1]).gather(1, target[i:i + 1, None]).sum()
        weight_grad, = torch.autograd.grad(score, layer.weight)
        alpha = weight_grad.mean(dim=(1, 2, 3)).view(1, -1, 1, 1)
        cam = torch.relu((alpha * captured.outputs[0]).sum(1, keepdim=True)).detach()
        maps.append(nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False))
    return torch.cat(maps)


def _gradcam_without_relu(model, x, target, layer):
    activations, gradients = attribution.layer_gradients(model, x, layer, target)
    cam = (gradients.mean(dim=(2, 3), keepdim=True) * activations).sum(1, keepdim=True)
    return nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)


def check_gradcam(student: Method) -> CheckReport:
    """gradcam(model, x, target, layer) -> (B, 1, H, W): ReLU(sum_k alpha_k A^k), alpha_k the
    spatial mean of dy_c/dA^k, upsampled bilinearly to the input (Selvaraju et al. 2017)."""
    mistakes = {
        "alpha_k is the mean gradient with respect to the layer's activations A^k, "
        "not its weights.": _gradcam_weight_gradients,
        "apply the ReLU to the weighted sum of activations.": _gradcam_without_relu,
    }
    reference = lambda m, x, t, layer: attribution.gradcam(m, x, t, layer=layer)  # noqa: E731
    mistakes.update(_wrong_score_mistakes(reference, what="differentiate"))
    return run_checks("Grad-CAM", student, reference, _gradcam_cases(), mistakes)


def _ig_cases() -> list[Case]:
    cases = standard_cases()
    for number, case in enumerate(cases):
        generator = torch.Generator().manual_seed(200 + number)
        baseline = (torch.zeros_like(case.x) if number == 0 else
                    torch.rand(case.x.shape, generator=generator, dtype=case.x.dtype) * 0.5)
        case.knobs = {"baseline": baseline, "steps": 16}
        case.description += f", {'black' if number == 0 else 'random'} baseline, 16 steps"
    return cases


def _average_gradient_on_path(model, x, target, baseline, steps):
    """The mistake: the path-averaged gradient without the (x - x') factor."""
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):
        total += attribution.input_gradient(model, baseline + k / steps * (x - baseline), target)
    return total / steps


def check_integrated_gradients(student: Method) -> CheckReport:
    """integrated_gradients(model, x, target, baseline, steps) -> (B, C, H, W):
    (x - x') * (1/m) sum_{k=1..m} grad F(x' + (k/m)(x - x')), the right Riemann sum of
    Sundararajan et al. (2017) with m = steps and x' = baseline (a tensor shaped like x)."""
    mistakes = {
        "multiply the averaged gradient by (x - x'): without that factor the attributions do not "
        "add up to F(x) - F(x').": _average_gradient_on_path,
        "the path starts at the baseline: x' + (k/m)(x - x'), and the factor is (x - x'), not x.":
            lambda m, x, t, baseline, steps: x * _average_gradient_on_path(m, x, t, torch.zeros_like(x), steps),
        "use the points k/m for k = 1..m (the right Riemann sum), not k = 0..m-1.":
            lambda m, x, t, baseline, steps: attribution.integrated_gradients(
                m, x, t, baseline=baseline, steps=steps, rule="riemann")
            - (x - baseline) * (attribution.input_gradient(m, x, t)
                                - attribution.input_gradient(m, baseline, t)) / steps,
    }
    reference = lambda m, x, t, baseline, steps: attribution.integrated_gradients(  # noqa: E731
        m, x, t, baseline=baseline, steps=steps, rule="riemann")
    mistakes.update(_wrong_score_mistakes(reference, what="integrate the gradient of"))
    return run_checks("integrated gradients", student, reference, _ig_cases(), mistakes)


# ----------------------------------------------------------------------------------------------
# Lesson 8: a gradient-flow table and one step of activation maximisation.

_STALE_GRAD = 0.01  # the .grad an earlier step left behind, in the case that tests for it


def _small_mlp(kind: str, seed: int, depth: int, stale_grad: bool = False) -> nn.Module:
    """A small ``diagnostics.deep_mlp`` for 1x6x6 inputs and 5 classes, in train mode (float64)."""
    from .diagnostics import deep_mlp

    model = deep_mlp(kind, depth=depth, width=8, in_features=36, num_classes=5, seed=seed).double()
    if stale_grad:  # what a training step without zero_grad() leaves in every .grad
        for p in model.parameters():
            p.grad = torch.full_like(p, _STALE_GRAD)
    return model


def _gradient_norm_cases() -> list[Case]:
    specs = [
        ("tiny CNN in eval mode", lambda: tiny_cnn(0), (2, 3, 8, 8)),
        ("6-layer sigmoid MLP", lambda: _small_mlp("sigmoid", seed=1, depth=6), (3, 1, 6, 6)),
        ("batch-norm MLP in train mode, stale .grad from an earlier step",
         lambda: _small_mlp("batchnorm", seed=2, depth=3, stale_grad=True), (4, 1, 6, 6)),
    ]
    cases = []
    for number, (description, build, shape) in enumerate(specs):
        generator = torch.Generator().manual_seed(300 + number)
        x = torch.rand(shape, generator=generator, dtype=torch.float64)
        target = torch.randint(0, 5, (shape[0],), generator=generator)
        cases.append(Case(description, build(), x, target))
    return cases


def _fresh_weight_gradients(model, x, target, reduction: str = "mean") -> tuple[torch.Tensor, ...]:
    """dL/dW of the cross-entropy for every weight matrix or kernel; the model left as it was."""
    from . import hooks

    weights = [p for p in model.parameters() if p.dim() > 1]
    with hooks.preserved_state(model):
        loss = nn.functional.cross_entropy(model(x), target, reduction=reduction)
        return torch.autograd.grad(loss, weights)


def _norm_table(gradients, signed_mean: bool = False) -> torch.Tensor:
    """One row [mean |g|, max |g|, ||g||_2] per gradient, float64 (signed_mean: the mistake mean g)."""
    rows = [torch.stack([g.mean() if signed_mean else g.abs().mean(), g.abs().max(), g.norm()])
            for g in gradients]
    return torch.stack(rows).double()


def _reference_gradient_norms(model, x, target, weights_only: bool = True) -> torch.Tensor:
    from .diagnostics import measure_gradient_flow

    flow = measure_gradient_flow(model, x, target, weights_only=weights_only)
    return torch.stack([flow.mean_abs[0], flow.max_abs[0], flow.norm[0]], dim=1)


def _gradient_norms_in_eval_mode(model, x, target):
    from . import hooks

    with hooks.preserved_state(model):
        model.eval()
        return _norm_table(_fresh_weight_gradients(model, x, target))


def check_gradient_norms(student: Method) -> CheckReport:
    """gradient_norms(model, x, target) -> (L, 3) float64: for each weight matrix or kernel
    (p.dim() > 1, in ``model.named_parameters()`` order) the row [mean |g|, max |g|, ||g||_2] of its
    gradient g = dL/dW after one backward pass of the mean cross-entropy L of (model(x), target),
    the model in the mode it is in and stale ``.grad`` cleared first. The reference is
    ``diagnostics.measure_gradient_flow``."""
    cases = _gradient_norm_cases()
    # The expected tables are computed before the student's function runs, so a function that
    # leaves the model changed (another mode, gradients left in .grad) cannot change them.
    expected = {id(case.model): _reference_gradient_norms(case.model, case.x, case.target) for case in cases}
    mistakes = {
        "clear the stale gradients first (p.grad = None, or model.zero_grad()): backward() adds "
        "to whatever .grad already holds.":
            lambda m, x, t: _norm_table(g + _STALE_GRAD for g in _fresh_weight_gradients(m, x, t)),
        "one row per weight matrix or kernel (p.dim() > 1): leave the biases and batch-norm "
        "scales out.": lambda m, x, t: _reference_gradient_norms(m, x, t, weights_only=False),
        "take |g| before the mean: signed gradients cancel out.":
            lambda m, x, t: _norm_table(_fresh_weight_gradients(m, x, t), signed_mean=True),
        "use the mean cross-entropy over the batch (F.cross_entropy's default), not the sum.":
            lambda m, x, t: _norm_table(_fresh_weight_gradients(m, x, t, reduction="sum")),
        "run the model in the mode it is in: model.eval() changes what batch norm computes.":
            _gradient_norms_in_eval_mode,
    }
    return run_checks("gradient norms", student, lambda m, x, t: expected[id(m)], cases, mistakes,
                      atol=1e-10, uses_grad=True)


def _ascent_gradient(model, x, target, l2: float, probability: bool | str = False,
                     l2_sign: float = -1.0) -> torch.Tensor:
    """g = d/dx [y_c(x) - l2 ||x - 0.5||^2] per image, the model in eval mode and left as it was."""
    from . import hooks

    x = x.detach().clone().requires_grad_(True)
    with hooks.preserved_state(model):
        model.eval()
        output = model(x)
        if probability:  # the typical mistakes: the probability p_c, or log p_c = -loss
            output = output.log_softmax(dim=1) if probability == "log" else output.softmax(dim=1)
        scores = output.gather(1, target[:, None])[:, 0]
        objective = scores + l2_sign * l2 * (x - 0.5).pow(2).flatten(1).sum(1)
        grad, = torch.autograd.grad(objective.sum(), x)
    return grad


def _per_image_mean_abs(g: torch.Tensor) -> torch.Tensor:
    return g.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, *[1] * (g.dim() - 1))


def _ascent_variant(normalise: str = "image", l2_sign: float = -1.0, probability: bool | str = False,
                    clamp: bool = True) -> Method:
    """One ascent step, x + lr * g / mean|g| clamped to [0, 1], the mean taken per image: one step
    of ``featureviz.activation_maximisation`` without jitter or blur. Each argument, changed from
    its default, reproduces one typical mistake."""
    def step(model, x, target, lr, l2):
        g = _ascent_gradient(model, x, target, l2, probability=probability, l2_sign=l2_sign)
        scale = {"image": _per_image_mean_abs(g), "batch": g.abs().mean(), "none": 1.0}[normalise]
        moved = x + lr * g / scale
        return moved.clamp(0, 1) if clamp else moved
    return step


_reference_ascent_step = _ascent_variant()


def _ascent_cases() -> list[Case]:
    """Three seeded tiny CNNs and images in [0, 1]; case 2 without the L2 term, where only the
    clamp keeps the pixels in range."""
    cases = []
    for seed, (batch, channels, size, lr, l2) in enumerate([(1, 3, 8, 0.05, 0.5), (3, 3, 10, 0.2, 0.0),
                                                            (2, 1, 12, 0.1, 1.0)]):
        generator = torch.Generator().manual_seed(400 + seed)
        x = torch.rand(batch, channels, size, size, generator=generator, dtype=torch.float64)
        target = torch.randint(0, 5, (batch,), generator=generator)
        cases.append(Case(f"{batch} image(s) {channels}x{size}x{size}, lr {lr}, l2 {l2}",
                          tiny_cnn(seed, in_channels=channels), x, target, {"lr": lr, "l2": l2}))
    return cases


def check_ascent_step(student: Method) -> CheckReport:
    """ascent_step(model, x, target, lr, l2) -> (B, C, H, W): one step of activation maximisation
    (Simonyan et al. 2014), x <- clamp(x + lr * g / mean|g|, 0, 1) with
    g = d/dx [y_c(x) - l2 * ||x - 0.5||^2] and mean|g| taken per image; y_c is the logit."""
    mistakes = {
        "divide the gradient by its mean absolute value: the step is lr * g / mean|g|.":
            _ascent_variant(normalise="none"),
        "take mean|g| per image (over C, H, W), not over the whole batch.": _ascent_variant(normalise="batch"),
        "the L2 term is a penalty: subtract l2 * ||x - 0.5||^2 from the score (you added it).":
            _ascent_variant(l2_sign=1.0),
        "keep the pixels in [0, 1]: clamp after the step.": _ascent_variant(clamp=False),
        "climb the logit y_c, not the softmax probability.": _ascent_variant(probability=True),
        "climb the logit y_c, not the log-probability log p_c (minus the loss): it also pushes "
        "every other class down.": _ascent_variant(probability="log"),
    }
    if not callable(student):
        return _not_a_function("ascent step", student)
    # Compared as steps x_new - x: next to the image itself (values near 1) a wrong step of size
    # 1e-4 would read like rounding; next to the reference's step it does not.
    mistakes = {hint: _as_step(mistake) for hint, mistake in mistakes.items()}
    cases = _ascent_cases()
    for case in cases:
        case.description += ", compared as the step x_new - x"
    return run_checks("ascent step", _as_step(student), _as_step(_reference_ascent_step), cases, mistakes)


def _as_step(method: Method) -> Method:
    """method's moved image minus the image it was given (anything else is passed on as it is,
    for the checker to report)."""
    def step(model, x, target, **knobs):
        moved = method(model, x.clone(), target, **knobs)
        if isinstance(moved, torch.Tensor) and moved.shape == x.shape:
            return moved - x
        return moved
    return step
