"""Checkers for lessons 1-6: saliency, occlusion, SmoothGrad, guided backprop, deconvnet,
Grad-CAM and integrated gradients, with the typical mistakes each one recognises."""

from __future__ import annotations

import torch
from torch import nn

from .. import attribution, hooks
from .harness import (
    RETURNED_NONE,
    Case,
    CheckReport,
    Method,
    _compare,
    _diagnose,
    _not_a_function,
    run_checks,
    standard_cases,
)


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
    failure = ""
    try:
        got = student(model, x.clone(), target.clone(), n_samples=n_samples, sigma=sigma, seed=0)
    except Exception as error:
        failure = f"your function raised {type(error).__name__}: {error}"
    else:
        if got is None:
            failure = RETURNED_NONE
        elif not isinstance(got, torch.Tensor) or got.shape != x.shape:
            failure = f"expected a tensor of shape {tuple(x.shape)}."
    if failure:  # both cases read the same result: both fail with the same line
        for prefix in (level, fresh):
            print(f"[x] {prefix}: {failure}")
        results += [False, False]
    else:
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


def _gradcam_plus_plus_variant(factor: float = 2.0, relu: bool = True, whole_map: bool = True):
    """Grad-CAM++ with one of its typical mistakes (the default arguments: no mistake)."""

    def method(model, x, target, layer):
        activations, gradients = attribution.layer_gradients(model, x, layer, target)
        spread = (activations.sum(dim=(2, 3), keepdim=True) if whole_map else activations)
        denominator = factor * gradients**2 + spread * gradients**3
        safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        alpha = torch.where(denominator != 0, gradients**2 / safe, torch.zeros_like(denominator))
        positive = torch.relu(gradients) if relu else gradients
        cam = torch.relu(((alpha * positive).sum(dim=(2, 3), keepdim=True) * activations).sum(1, keepdim=True))
        return nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)

    return method


def check_gradcam_plus_plus(student: Method) -> CheckReport:
    """gradcam_plus_plus(model, x, target, layer) -> (B, 1, H, W): Grad-CAM++ (Chattopadhay et
    al. 2018), a^k_ij = G^2 / (2 G^2 + sum_ab A^k_ab G^3), w_k = sum_ij a^k_ij ReLU(G^k_ij),
    ReLU(sum_k w_k A^k) upsampled bilinearly; G = dy_c/dA at the layer."""
    mistakes = {
        "the denominator is 2 G^2 + (sum_ab A^k_ab) G^3: you left out the factor 2.":
            _gradcam_plus_plus_variant(factor=1.0),
        "weigh each position by ReLU(G^k_ij), the positive part of the gradient, not G^k_ij.":
            _gradcam_plus_plus_variant(relu=False),
        "sum_ab A^k_ab is the sum of the whole map k (one number per channel), not A^k_ij.":
            _gradcam_plus_plus_variant(whole_map=False),
        "you computed Grad-CAM (the mean gradient): Grad-CAM++ weighs each position by a^k_ij.":
            lambda m, x, t, layer: attribution.gradcam(m, x, t, layer=layer),
    }
    reference = lambda m, x, t, layer: attribution.gradcam_plus_plus(m, x, t, layer=layer)  # noqa: E731
    mistakes.update(_wrong_score_mistakes(reference, what="differentiate"))
    return run_checks("Grad-CAM++", student, reference, _gradcam_cases(), mistakes)
