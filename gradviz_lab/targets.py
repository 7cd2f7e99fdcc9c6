"""What an explanation explains: one score per image, whatever form the target was given in.

A target is None (each image's predicted class), one class index, one index per image (a list,
a tuple, a NumPy array or a (B,) tensor; NumPy integers count as ints), a class name (or one per
image) where the model carries its class names, or a function ``output -> (B,)`` scores. Each
public method turns it, once, into a ``TargetScore``: a function from the model's output (B, ...)
to one score per image (B,), the quantity every method differentiates or compares.

    y_c(x_b) = output[b, c_b]          a class target: the logit (before softmax)
    y(x_b)   = target(output)[b]       a callable target

Bad targets fail here, with a message that says what is wrong: a bool, a float, a text where the
model has no class names, the wrong number of indices, a class out of range (checked against the
logits the first time the score is computed), a callable that returns the wrong shape or nan.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ._forward import NonFiniteOutputError, run_model

Target = None | int | str | Sequence[int] | Sequence[str] | torch.Tensor | Callable[[torch.Tensor], torch.Tensor]

INT64_RANGE = range(-(2**63), 2**63)


def is_score_function(target: object) -> bool:
    """A callable target (output -> (B,)): a tensor is callable too, but it is a list of classes."""
    return callable(target) and not isinstance(target, torch.Tensor)


class TargetScore:
    """output (B, ...) -> (B,): the score each image is explained for.

    Exactly one of: ``classes`` (B,) int64, the class whose logit is the score; ``function``, the
    caller's callable; or neither, each output row's own predicted class (argmax of its logits).
    With probability=True a class's score is its softmax probability instead of its logit.
    """

    def __init__(self, classes: torch.Tensor | None = None,
                 function: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 probability: bool = False) -> None:
        self.classes, self.function, self.probability = classes, function, probability

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        if self.function is not None:
            return _checked_scores(self.function(output), output)
        if self.probability:
            output = output.softmax(dim=1)
        classes = class_indices(output, self.classes)
        if classes.is_inference() and not torch.is_inference_mode_enabled():
            classes = classes.clone()  # autograd cannot save an inference tensor for backward
        return output.gather(1, classes.view(-1, 1)).squeeze(1)

    @property
    def target(self) -> torch.Tensor | Callable | None:
        """The target in its public form (classes, the callable, or None), for a function the
        caller gave a method (SmoothGrad's ``method``), which takes targets as the methods do."""
        return self.function if self.function is not None else self.classes

    def fixed(self, model: nn.Module, x: torch.Tensor) -> TargetScore:
        """The predicted classes of the clean images x (one forward pass, no graph) when the
        target was None, so that every noisy, occluded or perturbed copy of image b is scored
        for image b's class; any other target as it is."""
        return self.fixed_with_scores(model, x)[0] if self.predicted else self

    def fixed_with_scores(self, model: nn.Module, x: torch.Tensor) -> tuple[TargetScore, torch.Tensor]:
        """``fixed`` and the clean images' scores (B,), from one forward pass (no graph)."""
        with torch.no_grad():
            output = run_model(model, x)
        fixed = self
        if self.predicted:
            fixed = TargetScore(class_indices(output, None), None, self.probability)
        return fixed, fixed(output)

    def for_copies(self, images: torch.Tensor) -> TargetScore:
        """The score of a batch whose row r is a copy of image ``images[r]``."""
        if self.classes is None:
            return self
        return TargetScore(self.classes[images.to(self.classes.device)], None, self.probability)

    def of_probabilities(self) -> TargetScore:
        """The same target scored by the class probability (softmax over the logits), as the
        deletion and insertion curves of Petsiuk et al. do; a callable's own score is kept."""
        return TargetScore(self.classes, self.function, probability=self.function is None)

    @property
    def predicted(self) -> bool:
        """None was given: each image's predicted class."""
        return self.classes is None and self.function is None


def target_score(model: nn.Module, x: torch.Tensor, target: Target | TargetScore) -> TargetScore:
    """The ``TargetScore`` of any target form, for the batch x (a TargetScore is returned as is)."""
    if isinstance(target, TargetScore):
        return target
    target = named_target(model, target)
    check_target(target)
    if target is None:
        return TargetScore()
    if is_score_function(target):
        return TargetScore(function=target)
    return TargetScore(classes=requested_classes(target, len(x), x.device))


def check_target(target: Target) -> None:
    """The target has one of the forms a method takes (values are checked later, against x and
    the logits)."""
    if target is None or is_score_function(target):
        return
    if isinstance(target, torch.Tensor):
        if target.device.type == "meta":
            raise ValueError("target is on the meta device, which holds no values")
        return
    if isinstance(target, (bool, np.bool_)):
        raise TypeError("target must be None, an int, a sequence of ints or a callable, got bool")
    if isinstance(target, str):
        raise TypeError(
            f"target must be a class index here, not the text {target!r}: a class name is "
            "understood only where the model carries its class names (.classes or .categories); "
            "otherwise pass class_names.index(name)"
        )
    if isinstance(target, numbers.Integral):  # int, np.int64, ...
        _check_int64([target])
        return
    if isinstance(target, np.ndarray) and target.dtype.kind in "iu":
        return
    if isinstance(target, Sequence) and all(
        isinstance(t, numbers.Integral) and not isinstance(t, (bool, np.bool_)) for t in target
    ):
        if len(target) == 0:
            raise ValueError("target is an empty sequence: give one class index per image")
        _check_int64(target)
        return
    raise TypeError(
        "target must be None, an int, a sequence/tensor of ints or a callable "
        f"output -> (B,) scores, got {target!r}"
    )


def named_target(model: nn.Module, target: Target) -> Target:
    """A class name, or one name per image, as the index (indices) of the model's own class
    names; any other target is returned as it is."""
    if isinstance(target, str):
        wanted = [target]
    elif (isinstance(target, Sequence) and len(target) > 0
          and all(isinstance(t, str) for t in target)):
        wanted = list(target)
    else:
        return target
    classes = getattr(model, "classes", None) or getattr(model, "categories", None)
    if classes is None:
        raise TypeError(
            f"target {target!r} is a class name, but this model carries no class names (no "
            f".classes or .categories attribute): pass the class index instead, e.g. "
            f"class_names.index({wanted[0]!r}) with the list of names of its classes"
        )
    classes = list(classes)
    unknown = [name for name in wanted if name not in classes]
    if unknown:
        close = difflib.get_close_matches(unknown[0], classes, n=3)
        listed = ", ".join(classes) if len(classes) <= 20 else (
            ", ".join(classes[:10]) + f", ... ({len(classes)} classes)")
        raise ValueError(
            f"unknown class name {unknown[0]!r}"
            + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else "")
            + f"; the model's classes are: {listed}"
        )
    indices = [classes.index(name) for name in wanted]
    return indices[0] if isinstance(target, str) else indices


def class_indices(output: torch.Tensor, target: Target) -> torch.Tensor:
    """One class index per image, (B,) int64, checked against the logits (B, num_classes)."""
    check_target(target)
    if output.dim() != 2:
        raise ValueError(
            f"the model's output has shape {tuple(output.shape)}, not (B, num_classes): "
            "pass a callable target that maps it to (B,) scores, e.g. "
            "gradviz_lab.attribution.max_response"
        )
    batch, num_classes = output.shape
    if target is None:
        return output.argmax(dim=1)
    classes = requested_classes(target, batch, output.device)
    bad = (classes < 0) | (classes >= num_classes)
    if bool(bad.any()):
        raise ValueError(  # each wrong value once (SmoothGrad and IG score many copies per image)
            f"target class out of range: got {sorted(set(classes[bad].tolist()))}, valid classes "
            f"are 0..{num_classes - 1}"
        )
    return classes


def requested_classes(target: int | Sequence[int] | torch.Tensor, batch: int,
                      device: torch.device) -> torch.Tensor:
    """An int or B ints as a (B,) int64 tensor (the range is checked against the logits)."""
    if isinstance(target, numbers.Integral):
        return torch.full((batch,), int(target), dtype=torch.long, device=device)
    classes = torch.as_tensor(target).to(device)  # a tensor on another device is moved
    if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
        raise TypeError(f"target tensor must hold integers, got dtype {classes.dtype}")
    classes = classes.long().reshape(-1)
    if classes.numel() != batch:
        raise ValueError(
            f"target has {classes.numel()} class indices but the batch has {batch} images"
        )
    return classes


def _check_int64(values: Sequence[numbers.Integral]) -> None:
    too_large = [int(v) for v in values if int(v) not in INT64_RANGE]
    if too_large:
        raise ValueError(f"target class out of range: got {too_large[:5]}, far beyond any class")


def _checked_scores(scores: object, output: torch.Tensor) -> torch.Tensor:
    """A callable target's result, if it is one finite score per row of the output."""
    if not isinstance(scores, torch.Tensor) or scores.shape != (len(output),):
        shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores)
        raise ValueError(
            f"a callable target must return one score per image, shape ({len(output)},), "
            f"got {shape} (for SmoothGrad and integrated gradients, each noisy copy or path "
            "point counts as an image)"
        )
    finite = torch.isfinite(scores.detach())
    if not bool(finite.all()):
        raise NonFiniteOutputError(
            (~finite).nonzero().flatten().tolist(),
            "the callable target returned it from a finite model output",
            what="the target score",
        )
    return scores


# --- the older entry points, for modules that take targets their own way (attacks, report,
# axioms, featureviz): each is one TargetScore operation.


def target_scores(output: torch.Tensor, target: Target) -> torch.Tensor:
    """The score of each image: its target logit, or the callable's (B,) result."""
    if is_score_function(target):
        return TargetScore(function=target)(output)
    return TargetScore(classes=target)(output)


def fixed_target(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor | Callable:
    """The target with None fixed to x's predicted classes and ints as a (B,) tensor (checked
    against the logits), or the callable as it is."""
    score, _ = target_score(model, x, target).fixed_with_scores(model, x)
    return score.target
