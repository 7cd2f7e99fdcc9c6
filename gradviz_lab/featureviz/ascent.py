"""Activation maximisation (Simonyan, Vedaldi & Zisserman 2014): climb the gradient of a score
S with respect to the *input*, the weights fixed:

    x* = argmax_x  S(x) - l2 * ||x - 0.5||^2,    x in [0, 1]^(C x H x W)

Left alone, the ascent finds high-frequency noise the network happens to like; regularisers keep
the image natural: the L2 term pulls pixels to mid-grey and a Gaussian blur every few steps
removes high frequencies (both from Yosinski et al. 2015), and a random shift (jitter, from
DeepDream: Mordvintsev, Olah & Tyka 2015) before each step stops the image from exploiting exact
pixel positions. ``class_visualisation`` maximises a class logit, ``channel_visualisation`` a
channel's mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .. import hooks
from .._checks import (
    check_model,
    check_number,
    check_positive_int,
    model_device_dtype,
    resolve_layer,
)
from .._forward import run_model
from ..targets import target_scores
from ..blur import gaussian_blur
from ._common import _check_channels, _image_shape, _indices, _like, _run_once


@dataclass
class AscentSettings:
    """The knobs of activation maximisation (defaults suit the lab models' [0, 1] images).

    steps       gradient-ascent steps
    lr          step size: each step moves the pixels by ``lr`` on average (the gradient is
                divided by its mean absolute value, so lr does not depend on the score's scale)
    l2          weight of the penalty ||x - 0.5||^2 (Simonyan et al.'s L2 regulariser)
    blur_every  blur the image every this many steps (0: never) ...
    blur_sigma  ... with a Gaussian of this std, in pixels
    jitter      shift the image by up to this many pixels before each step (0: never)
    seed        the random start (mid-grey plus a little noise) and the shifts
    """

    steps: int = 200
    lr: float = 0.02
    l2: float = 0.01
    blur_every: int = 4
    blur_sigma: float = 0.5
    jitter: int = 2
    seed: int = 0

    def checked(self) -> AscentSettings:
        check_positive_int(self.steps, "steps")
        check_number(self.lr, "lr", 0.0)
        check_number(self.l2, "l2", 0.0)
        check_positive_int(self.blur_every, "blur_every", minimum=0)
        check_number(self.blur_sigma, "blur_sigma", 0.0)
        check_positive_int(self.jitter, "jitter", minimum=0)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        return self


def activation_maximisation(
    model: nn.Module,
    score: Callable[[torch.Tensor], torch.Tensor],
    n_images: int,
    image_shape: Sequence[int],
    settings: AscentSettings | None = None,
) -> torch.Tensor:
    """``n_images`` images x in [0, 1], each maximising its own entry of ``score(model(x))``.

        x <- clamp(x + lr * g / mean|g|, 0, 1),   g = d/dx [S(jitter(x)) - l2 ||x - 0.5||^2]

    and every ``blur_every`` steps x <- blur(x). ``score`` maps the model's output for the batch
    to (n_images,) scores. The gradient is taken with ``torch.autograd.grad`` w.r.t. the image
    only; the model runs in eval mode and is left exactly as it was (mode, weights, ``.grad``).
    Returns (n_images, C, H, W).
    """
    check_model(model)
    check_positive_int(n_images, "n_images")
    s = (settings or AscentSettings()).checked()
    channels, height, width = _image_shape(model, image_shape)
    device, dtype = model_device_dtype(model) or (torch.device("cpu"), torch.float32)
    generator = torch.Generator().manual_seed(s.seed)
    noise = torch.randn(n_images, channels, height, width, generator=generator)
    x = (0.5 + 0.05 * noise).clamp(0, 1).to(device=device, dtype=dtype)
    shifts = torch.randint(-s.jitter, s.jitter + 1, (s.steps, 2), generator=generator).tolist()
    with hooks.preserved_state(model), torch.inference_mode(False), torch.enable_grad():
        model.eval()  # batch-norm statistics and dropout off: one image must not depend on others
        for step, (dy, dx) in enumerate(shifts):
            x.requires_grad_(True)
            shifted = torch.roll(x, shifts=(dy, dx), dims=(2, 3))  # jitter, undone by the gradient
            scores = target_scores(run_model(model, shifted), score)
            objective = scores - s.l2 * (x - 0.5).pow(2).flatten(1).sum(1)
            (g,) = torch.autograd.grad(objective.sum(), x)
            with torch.no_grad():
                step_size = s.lr / g.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, 1, 1, 1)
                x = (x + step_size * g).clamp(0, 1)
                if s.blur_every and (step + 1) % s.blur_every == 0:
                    x = gaussian_blur(x, s.blur_sigma).clamp(0, 1)
    return x.detach()


def _settings(knobs: dict) -> AscentSettings:
    unknown = set(knobs) - set(AscentSettings.__dataclass_fields__)
    if unknown:
        raise TypeError(
            f"unknown knob(s) {sorted(unknown)}; valid: {list(AscentSettings.__dataclass_fields__)}"
        )
    return AscentSettings(**knobs)


def class_visualisation(
    model: nn.Module,
    target_class: int | Sequence[int],
    image_shape: Sequence[int] | None = None,
    **knobs: float,
) -> torch.Tensor:
    """Simonyan et al. (2014) class model: an image maximising the logit y_c of each class.

    target_class: one class index or several (one image each, optimised together).
    image_shape: (C, H, W), e.g. (1, 28, 28) for the digits model (or ``model.input_shape``).
    knobs: ``steps, lr, l2, blur_every, blur_sigma, jitter, seed`` (see ``AscentSettings``).
    Returns (len(classes), C, H, W) in [0, 1]. The model is left exactly as it was.
    """
    check_model(model)
    classes = _indices(target_class, "target_class")
    wanted = torch.tensor(classes, dtype=torch.long)

    def logit(output: torch.Tensor) -> torch.Tensor:
        if output.dim() != 2:
            raise ValueError(
                f"the model's output has shape {tuple(output.shape)}, not (B, num_classes)"
            )
        if not bool(((wanted >= 0) & (wanted < output.shape[1])).all()):
            raise ValueError(
                f"target_class {classes} out of range: valid classes are 0..{output.shape[1] - 1}"
            )
        return output.gather(1, wanted.to(output.device).view(-1, 1)).squeeze(1)

    return activation_maximisation(
        model, logit, len(classes), _image_shape(model, image_shape), _settings(knobs)
    )


def channel_visualisation(
    model: nn.Module,
    layer: str | nn.Module,
    channel: int | Sequence[int],
    image_shape: Sequence[int] | None = None,
    **knobs: float,
) -> torch.Tensor:
    """An image maximising the mean activation of one channel of a layer (one image per channel).

    layer: a submodule or its dotted name, e.g. ``"features.3"``. Same knobs as
    ``class_visualisation``. Returns (len(channels), C, H, W) in [0, 1].
    """
    check_model(model)
    name, module = resolve_layer(model, layer)
    shape = _image_shape(model, image_shape)
    with hooks.captured_layer(model, name, module) as record:
        with torch.no_grad(), hooks.preserved_state(model):
            model.eval()
            _run_once(model, record, torch.full((1, *shape), 0.5, **_like(model)))
            wanted = _check_channels(channel, record.outputs[-1].shape[1], name)

        def channel_mean(_output: torch.Tensor) -> torch.Tensor:
            activations = record.outputs.pop()  # this step's; earlier ones are not kept
            rows = torch.arange(len(activations), device=activations.device)
            return activations[rows, wanted.to(activations.device)].flatten(1).mean(1)

        return activation_maximisation(model, channel_mean, len(wanted), shape, _settings(knobs))
