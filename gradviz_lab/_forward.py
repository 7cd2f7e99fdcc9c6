"""Running the model the way every function of the kit does: on a copy of the input, with what
comes out checked.

- The model gets a *copy* of x. A network whose first operation changes its input in place
  (``x.mul_(2)``, a leading ``nn.ReLU(inplace=True)``) would otherwise change the caller's tensor,
  and every later forward pass of a method (occlusion's occluded copies, SmoothGrad's noisy
  ones) would start from the changed values. The copy costs one input batch of memory and a
  memory copy per forward pass, small next to the forward pass itself.
- The output must be one tensor (a model returning a tuple or a dict gets a message saying how
  to pick the logits) of finite values: a nan weight (a diverged training run) or an input that
  overflows inside the model is reported here, where it happens, instead of as a nan map that
  only ``viz`` refuses, far from its cause.
- A shape error inside the model (an image too small for it, a Linear head given another image
  size) becomes a ValueError naming the layer that failed, the shape it got, and the smallest
  square image the model takes when trying larger ones finds it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from . import hooks


class NonFiniteError(ValueError):
    """A value the kit computed is nan or inf (an output, a target score or a map)."""


class NonFiniteOutputError(NonFiniteError):
    """The model's output (or the target score computed from it) is nan or inf for some rows of
    the batch the model was given."""

    def __init__(self, rows: list[int], cause: str, of: str = "image(s)",
                 what: str = "the model's output") -> None:
        self.rows, self.cause, self.what = rows, cause, what
        super().__init__(f"{what} is not finite (nan or inf) for {of} {rows}: {cause}")

    def for_copies(self, images: torch.Tensor, copies: str) -> NonFiniteOutputError:
        """The same error naming the caller's images, when the rows were copies of them:
        ``images[r]`` is the image row r was made from (SmoothGrad, integrated gradients)."""
        originals = sorted(set(images[self.rows].tolist()))
        return NonFiniteOutputError(originals, self.cause, f"{copies} of image(s)", self.what)


def run_model(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """model(copy of x), checked: one tensor, finite in every row (see the module docstring)."""
    try:
        output = model(x.clone())  # a copy: a model that writes into its input must not reach x
    except RuntimeError as error:
        shape_error = input_shape_error(model, x, error)
        if shape_error is None:
            raise
        raise shape_error from error
    return checked_output(model, output)


def checked_output(model: nn.Module, output: object) -> torch.Tensor:
    """The output if it is a tensor of finite values; otherwise an error saying what is wrong."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(not_a_tensor_message(output))
    finite = torch.isfinite(output.detach()).flatten(1).all(dim=1) if output.dim() > 1 else None
    if finite is None:
        finite = torch.isfinite(output.detach()).view(-1)
    if not bool(finite.all()):
        rows = (~finite).nonzero().flatten().tolist()
        raise NonFiniteOutputError(rows, non_finite_cause(model))
    return output


def non_finite_cause(model: nn.Module) -> str:
    """Why a model gives nan or inf: non-finite weights, or else an overflow inside it."""
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f", ... ({len(bad) - 5} more)" if len(bad) > 5 else "")
        return (f"the model's weights are not finite (nan or inf in {shown}; a diverged "
                "training run?): reload or retrain the weights")
    return ("the model's weights are finite, so a value overflowed inside the model (float32 "
            "ends near 3.4e38): check the scale of the input")


def not_a_tensor_message(output: object) -> str:
    """How to pick the logits out of an output that is not one tensor."""
    kind = type(output).__name__
    if isinstance(output, Mapping):
        keys = list(output)
        pick = f"[{'logits' if 'logits' in output else keys[0] if keys else 'KEY'!r}]"
    elif isinstance(output, (tuple, list)):
        pick = "[0]"
    elif hasattr(output, "logits"):
        pick = ".logits"
    else:
        return f"the model must return a tensor (B, num_classes), got {kind}"
    return (
        f"the model returned a {kind}, not a tensor; the kit needs its output tensor "
        f"(B, num_classes). Wrap the model in a module whose forward returns only the logits, "
        f"e.g. `class Logits(nn.Module)` with `forward(self, x): return self.model(x){pick}`"
    )


# --- shape errors inside the model -------------------------------------------------------------

# Messages of torch's shape and size errors (convolution, pooling, linear, view, broadcasting).
_SHAPE_ERROR = re.compile(r"size|shape|dimension|must match", re.IGNORECASE)
LARGEST_SIDE_TRIED = 512  # pixels: trying larger squares costs more than it tells


def input_shape_error(model: nn.Module, x: torch.Tensor, error: RuntimeError) -> ValueError | None:
    """A ValueError naming the layer where a shape error happened and the shape it got, with the
    smallest square image side the model takes (when trying sides up to 512 px finds one); None
    when the error is not about shapes (the model's own errors pass unchanged)."""
    if not _SHAPE_ERROR.search(str(error)):
        return None
    failed = failing_layer(model, x)
    if failed is None:  # not reproduced on one image in eval mode: torch's error as it is
        return None
    name, module, shape = failed
    where = f" at layer {name!r} ({module}), which got an input of shape {shape}"
    height, width = x.shape[-2:]
    side = smallest_side(model, x)
    if side is not None and side > min(height, width):
        hint = f"this model needs images of at least {side}x{side} pixels, got {height}x{width}"
    else:
        hint = (f"are the images ({height}x{width}) the size the model was built for? (a Linear "
                "layer after the convolutions takes one image size only)")
    return ValueError(f"the model failed on x of shape {tuple(x.shape)}{where}: {hint}. "
                      f"(torch: {error})")


@contextmanager
def _no_side_effects(model: nn.Module) -> Iterator[None]:
    with hooks.preserved_state(model), torch.no_grad():
        model.eval()  # batch norm in train mode refuses a 1x1 map of one image
        yield


def failing_layer(model: nn.Module, x: torch.Tensor) -> tuple[str, nn.Module, tuple] | None:
    """(name, module, input shape) of the innermost layer running when the forward pass of
    one image of x raises, found by running it again; None if it does not raise."""
    with hooks.running_modules(model) as running:
        try:
            with _no_side_effects(model):
                model(x[:1].clone())
        except RuntimeError:
            return running[-1] if running else None
    return None


def smallest_side(model: nn.Module, x: torch.Tensor) -> int | None:
    """The smallest square side s <= LARGEST_SIDE_TRIED for which the model runs on a black
    (1, C, s, s) image, by doubling from x's side and then bisecting; None if none runs."""
    def runs(side: int) -> bool:
        try:
            with _no_side_effects(model):
                model(x.new_zeros(1, x.shape[1], side, side))
            return True
        except RuntimeError:
            return False

    low = max(1, min(x.shape[-2:]))  # fails (the caller saw it fail at this size or larger)
    high = low * 2
    while not runs(high):
        if high >= LARGEST_SIDE_TRIED:
            return None
        low, high = high, min(high * 2, LARGEST_SIDE_TRIED)
    while high - low > 1:  # runs(high) and not runs(low)
        middle = (low + high) // 2
        low, high = (low, middle) if runs(middle) else (middle, high)
    return high
