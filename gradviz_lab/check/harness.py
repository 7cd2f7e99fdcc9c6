"""The checker harness: seeded tiny models and cases, running a student's function against the
reference, what changed in the model, and the hint of the typical mistake a wrong result matches."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import torch
from torch import nn

from .. import hooks

Method = Callable[..., torch.Tensor]
T = TypeVar("T")


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


def seeded(seed: int, make: Callable[[], T]) -> T:
    """make() with torch's random state seeded, on a forked state: the notebook's own random
    stream is left as it was (a checker's cases must not change the student's next draw)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def tiny_cnn(seed: int, in_channels: int = 3, classes: int = 5, inplace: bool = False) -> nn.Module:
    """Conv-ReLU-Conv-ReLU-MaxPool-Conv-ReLU, global average pooling, linear: a lab CNN in small
    (``seeded``)."""
    return seeded(seed, lambda: _tiny_cnn(in_channels, classes, inplace))


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
        changed = _what_changed(before, case.model, uses_grad)
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
    """What a method must leave as it found: module types and weights, and the rest of the
    model's state as ``hooks.ModelState`` (the kit's one description of it) records it: train/eval
    modes, hooks, requires_grad flags and the parameters' .grad. (Batch-norm running statistics
    are not compared: a forward pass in train mode updates them.)"""
    return {
        "modules": [(name, type(module).__name__) for name, module in model.named_modules()],
        "weights": {key: value.detach().clone() for key, value in model.named_parameters()},
        "state": hooks.ModelState.of(model),
    }


def _what_changed(before: dict, model: nn.Module, uses_grad: bool = False) -> str:
    """The first thing that differs between ``before`` (a ``_fingerprint``) and the model now."""
    if before["modules"] != _fingerprint(model)["modules"]:
        return "its modules were replaced"
    weights = dict(model.named_parameters())
    if before["weights"].keys() != weights.keys() or not all(
            torch.equal(before["weights"][k], weights[k]) for k in weights):
        return "its weights changed"
    state: hooks.ModelState = before["state"]
    if any(module.training != flag for module, flag in state.modes):
        return "its train/eval mode changed"
    added = hooks.count_hooks(model) - sum(len(ids) for _, kinds in state.hook_ids for ids in kinds.values())
    if added:
        return f"{added} hook(s) left on it"
    if any(p.requires_grad != flag for p, flag in state.requires_grad):
        return "its parameters' requires_grad flags changed"
    grads_now = [p.grad for p, _ in state.requires_grad]
    if not uses_grad and any(
        (saved is None) != (now is None) or (now is not None and not torch.equal(now, saved[1]))
        for saved, now in zip(state.grads, grads_now)
    ):
        return ("gradients were left in its parameters' .grad: take them with torch.autograd.grad, "
                "which leaves .grad alone")
    return ""


# A function whose body was written but that ends without `return` (or whose stub line was deleted
# and nothing written) gives None: say so, rather than name the type NoneType.
RETURNED_NONE = "your function returned None: did you forget its return statement?"


def _compare(got, expected: torch.Tensor, atol: float) -> tuple[bool, str]:
    if got is None:
        return False, RETURNED_NONE
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
