"""targets.py: every target form becomes one score function output -> (B,), with clear errors.

The output below is a hand-written batch of logits, so each expected score is read off it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gradviz_lab._forward import NonFiniteOutputError
from gradviz_lab.targets import (
    TargetScore,
    class_indices,
    fixed_target,
    is_score_function,
    target_score,
    target_scores,
)

LOGITS = torch.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, -1.0]])  # 2 images, 3 classes
X = LOGITS.view(2, 3, 1, 1)  # with FLAT, the images whose logits are LOGITS


class Flat(nn.Module):
    """The logits are the image's pixels: (B, 3, 1, 1) -> (B, 3)."""

    classes = ["cat", "dog", "fox"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


FLAT = Flat()


def score_of(target, output=LOGITS):
    return target_score(FLAT, X, target)(output)


@pytest.mark.parametrize("target, expected", [
    (None, [5.0, 7.0]),                               # each row's predicted class: 1 and 0
    (2, [2.0, -1.0]),
    (np.int64(1), [5.0, 0.0]),
    (np.uint8(0), [1.0, 7.0]),
    ([0, 2], [1.0, -1.0]),
    ((2, 1), [2.0, 0.0]),
    (np.array([1, 0]), [5.0, 7.0]),
    (np.array([2, 2], dtype=np.uint8), [2.0, -1.0]),
    (torch.tensor([0, 1]), [1.0, 0.0]),
    (torch.tensor([[2], [0]]), [2.0, 7.0]),           # (B, 1) is read as B classes
    ([np.int64(1), 2], [5.0, -1.0]),
    ("fox", [2.0, -1.0]),                             # a class name of a model with .classes
    (["dog", "cat"], [5.0, 7.0]),
    (lambda out: out[:, 0] - out[:, 1], [-4.0, 7.0]),  # a callable: its own (B,) scores
])
def test_every_target_form_gives_the_hand_read_scores(target, expected):
    assert score_of(target).tolist() == expected


def test_the_score_is_a_function_of_the_output_it_is_given():
    # None is each output row's own predicted class, not one fixed on another output
    other = torch.tensor([[0.0, 0.0, 9.0], [0.0, 3.0, 0.0]])
    assert score_of(None, other).tolist() == [9.0, 3.0]
    assert score_of([0, 2], other).tolist() == [0.0, 0.0]


def test_fixed_resolves_none_on_the_clean_images_once():
    score = target_score(FLAT, X, None)
    assert score.predicted
    fixed, clean = score.fixed_with_scores(FLAT, X)
    assert fixed.classes.tolist() == [1, 0] and clean.tolist() == [5.0, 7.0]
    other = torch.tensor([[0.0, 0.0, 9.0], [0.0, 3.0, 0.0]])
    assert fixed(other).tolist() == [0.0, 0.0]  # still classes 1 and 0
    assert score.fixed(FLAT, X).classes.tolist() == [1, 0]
    given = target_score(FLAT, X, [2, 2])
    assert given.fixed(FLAT, X) is given  # nothing to fix: no forward pass


def test_copies_are_scored_for_the_image_they_were_made_from():
    score = target_score(FLAT, X, [0, 2])
    copies = torch.cat([LOGITS, LOGITS, LOGITS])[[0, 1, 3, 4, 1]]  # rows of images 0 1 1 0 1
    images = torch.tensor([0, 1, 1, 0, 1])
    assert score.for_copies(images).classes.tolist() == [0, 2, 2, 0, 2]
    assert score.for_copies(images)(copies).tolist() == [1.0, -1.0, -1.0, 1.0, -1.0]
    function = target_score(FLAT, X, lambda out: out[:, 1])
    assert function.for_copies(images) is function
    assert function.target is function.function
    assert score.for_copies(images).target.tolist() == [0, 2, 2, 0, 2]


def test_probability_scores_are_the_softmax_of_the_class():
    p = target_score(FLAT, X, [1, 0]).of_probabilities()(LOGITS)
    e = LOGITS.exp()
    expected = torch.stack([e[0, 1] / e[0].sum(), e[1, 0] / e[1].sum()])
    torch.testing.assert_close(p, expected)
    callable_score = target_score(FLAT, X, lambda out: out[:, 0]).of_probabilities()
    assert callable_score(LOGITS).tolist() == [1.0, 7.0]  # a callable's own score is kept


def test_a_score_function_is_taken_as_it_is():
    score = TargetScore(classes=torch.tensor([2, 2]))
    assert target_score(FLAT, X, score) is score


def test_a_tensor_is_not_a_score_function():
    assert is_score_function(lambda out: out[:, 0])
    assert not is_score_function(torch.tensor([1, 2]))  # a tensor of classes
    assert not is_score_function(3)


def test_the_older_entry_points_agree():
    assert target_scores(LOGITS, torch.tensor([2, 0])).tolist() == [2.0, 7.0]
    assert target_scores(LOGITS, lambda out: out[:, 2]).tolist() == [2.0, -1.0]
    assert fixed_target(FLAT, X, None).tolist() == [1, 0]
    assert fixed_target(FLAT, X, 2).tolist() == [2, 2]
    assert class_indices(LOGITS, None).tolist() == [1, 0]


def test_scores_keep_the_graph_for_autograd():
    output = LOGITS.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(score_of([2, 0], output).sum(), output)
    assert grad.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]


def test_classes_made_in_inference_mode_still_work_with_autograd():
    with torch.inference_mode():
        score = target_score(FLAT, X, [1, 1])
    assert score.classes.is_inference()
    output = LOGITS.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(score(output).sum(), output)
    assert grad[:, 1].tolist() == [1.0, 1.0]


class NoNames(nn.Module):
    def forward(self, x):
        return x.flatten(1)


@pytest.mark.parametrize("target, error, message", [
    (True, TypeError, "got bool"),
    (np.bool_(False), TypeError, "got bool"),
    (1.5, TypeError, "got 1.5"),
    ([0, 1.0], TypeError, "sequence/tensor of ints"),
    ([True, False], TypeError, "sequence/tensor of ints"),
    ({0: 1}, TypeError, "sequence/tensor of ints"),
    (np.array([0.0, 1.0]), TypeError, "sequence/tensor of ints"),
    (torch.tensor([0.0, 1.0]), TypeError, "must hold integers, got dtype torch.float32"),
    (torch.tensor([True, False]), TypeError, "must hold integers, got dtype torch.bool"),
    ([], ValueError, "empty sequence"),
    (2**70, ValueError, "far beyond any class"),
    ([0, -(2**64)], ValueError, "far beyond any class"),
    ([0, 1, 2], ValueError, "target has 3 class indices but the batch has 2 images"),
    (torch.tensor([1]), ValueError, "target has 1 class indices but the batch has 2"),
    (torch.empty(2, dtype=torch.long, device="meta"), ValueError, "meta device"),
    ("wolf", ValueError, "unknown class name 'wolf'"),
    ("dgo", ValueError, "did you mean 'dog'"),
])
def test_bad_targets_fail_at_the_public_call(target, error, message):
    with pytest.raises(error, match=message):
        target_score(FLAT, X, target)


def test_a_class_name_needs_a_model_with_class_names():
    with pytest.raises(TypeError, match="carries no class names"):
        target_score(NoNames(), X, "cat")


@pytest.mark.parametrize("target, listed", [(3, r"\[3\]"), ([-1, 5], r"\[-1, 5\]"),
                                            ([7, 7], r"\[7\]")])
def test_an_out_of_range_class_is_reported_against_the_logits(target, listed):
    score = target_score(FLAT, X, target)  # the number of classes is the model's: checked on use
    with pytest.raises(ValueError, match=rf"target class out of range: got {listed}, valid "
                                         r"classes are 0\.\.2"):
        score(LOGITS)


def test_a_class_target_needs_logits():
    with pytest.raises(ValueError, match=r"not \(B, num_classes\).*callable target"):
        score_of(1, LOGITS.view(2, 3, 1))
    with pytest.raises(ValueError, match=r"not \(B, num_classes\)"):
        score_of(None, LOGITS.view(2, 3, 1))


@pytest.mark.parametrize("function, message", [
    (lambda out: out, r"one score per image, shape \(2,\), got \(2, 3\)"),
    (lambda out: out[:1, 0], r"got \(1,\)"),
    (lambda out: out.sum(), r"got \(\)"),
    (lambda out: [1.0, 2.0], "got <class 'list'>"),
])
def test_a_callable_must_return_one_score_per_image(function, message):
    with pytest.raises(ValueError, match=message):
        score_of(function)


def test_a_callable_returning_nan_names_the_rows():
    with pytest.raises(NonFiniteOutputError, match=r"the target score is not finite .* \[0\]"):
        score_of(lambda out: torch.log(out[:, 0] - 2))  # log(1 - 2) = nan, log(7 - 2) finite
