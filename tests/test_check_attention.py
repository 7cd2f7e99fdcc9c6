"""The attention-rollout checker of exercise 10 (gradviz_lab.check.attention): a right rollout,
written afresh here, passes; each typical mistake, written the way a student writes it, fails with
its own hint; the untouched stub gets one friendly line; the checker's reference is the kit's
``attention_rollout``, which an independent rollout here agrees with."""

from __future__ import annotations

import pytest
import torch

from gradviz_lab import attribution, check
from gradviz_lab.check.attention import MISTAKES, attention_cases

HINTS = {  # a word of each hint that no other hint has
    "residual": "residual connection is missing",
    "renormalise": "renormalise each row",
    "heads": "average the heads before the product",
    "class token": "drop the class token",
    "order": "compose later blocks on the left",
}


# ---- student-style rollouts, each written the straightforward way -------------------------------

def rollout(attentions):
    """Right: Â = rownorm(0.5 mean_h A + 0.5 I), R = Â_L ... Â_1, row 0, patch columns."""
    tokens = attentions[0].shape[-1]
    eye = torch.eye(tokens, dtype=attentions[0].dtype)
    result = torch.eye(tokens, dtype=attentions[0].dtype).repeat(len(attentions[0]), 1, 1)
    for weights in attentions:
        a = 0.5 * weights.mean(dim=1) + 0.5 * eye
        a = a / a.sum(dim=2, keepdim=True)
        result = torch.bmm(a, result)
    return result[:, 0, 1:]


def rollout_in_a_loop_over_images(attentions):
    """Right too: one image at a time, the blocks multiplied with functools.reduce."""
    from functools import reduce

    maps = []
    for b in range(len(attentions[0])):
        eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype)
        hats = []
        for weights in attentions:
            a = weights[b].mean(dim=0) + eye
            hats.append(a / a.sum(dim=1, keepdim=True))
        maps.append(reduce(lambda r, a: a @ r, hats, eye)[0, 1:])
    return torch.stack(maps)


def residual_forgotten(attentions):
    result = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype)
    for weights in attentions:
        result = weights.mean(dim=1) @ result
    return result[:, 0, 1:]


def rows_not_renormalised(attentions):
    eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype)
    result = eye
    for weights in attentions:
        result = (weights.mean(dim=1) + eye) @ result
    return result[:, 0, 1:]


def heads_averaged_after(attentions):
    eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype)
    result = eye
    for weights in attentions:  # (B, heads, T, T): one rollout per head
        a = 0.5 * weights + 0.5 * eye
        result = a / a.sum(dim=-1, keepdim=True) @ result
    return result.mean(dim=1)[:, 0, 1:]


def class_token_kept(attentions):
    return _full_row(attentions)  # all T columns: the class token's own share among the patches


def _full_row(attentions):
    eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype)
    result = eye
    for weights in attentions:
        a = 0.5 * weights.mean(dim=1) + 0.5 * eye
        result = a / a.sum(dim=-1, keepdim=True) @ result
    return result[:, 0, :]


def class_token_kept_shifted(attentions):
    return _full_row(attentions)[:, :-1]  # N values, but the class token's in, the last patch out


def product_reversed(attentions):
    eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype)
    result = eye
    for weights in attentions:
        a = 0.5 * weights.mean(dim=1) + 0.5 * eye
        result = result @ (a / a.sum(dim=-1, keepdim=True))
    return result[:, 0, 1:]


def not_implemented(attentions):
    # YOUR CODE HERE
    raise NotImplementedError


# ---- the checker ----------------------------------------------------------------------------------

@pytest.mark.parametrize("student", [rollout, rollout_in_a_loop_over_images])
def test_a_right_rollout_passes(student, capsys):
    report = check.check_attention_rollout(student)
    out = capsys.readouterr().out
    assert report.passed and report.results == [True, True, True], out
    assert "attention rollout: all cases pass." in out and "Hint" not in out


@pytest.mark.parametrize("student, hint", [
    (residual_forgotten, "residual"),
    (rows_not_renormalised, "renormalise"),
    (heads_averaged_after, "heads"),
    (class_token_kept, "class token"),
    (class_token_kept_shifted, "class token"),
    (product_reversed, "order"),
])
def test_each_typical_mistake_fails_with_its_own_hint(student, hint, capsys):
    report = check.check_attention_rollout(student)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert not report.passed and report.results == [False, False, False]
    assert len(lines) == 3
    for line in lines:
        assert line.startswith("[x]") and HINTS[hint] in line, line
        others = [words for name, words in HINTS.items() if name != hint]
        assert not any(words in line for words in others), line


def test_the_untouched_stub_gets_one_friendly_line(capsys):
    report = check.check_attention_rollout(not_implemented)
    out = capsys.readouterr().out.strip().splitlines()
    assert not report.passed and not report.implemented
    assert len(out) == 1 and "not implemented yet" in out[0] and "# YOUR CODE HERE" in out[0]


def test_a_result_instead_of_the_function_gets_one_clear_line(capsys):
    report = check.check_attention_rollout(torch.zeros(1, 9))
    out = capsys.readouterr().out.strip().splitlines()
    assert not report.passed and len(out) == 1 and "your function itself" in out[0]


def test_a_function_that_raises_is_reported_not_raised(capsys):
    report = check.check_attention_rollout(lambda attentions: attentions[7])
    out = capsys.readouterr().out
    assert report.results == [False, False, False]
    assert "your function raised IndexError" in out


def test_changing_the_attention_in_place_spoils_nothing(capsys):
    def in_place(attentions):  # right, but it overwrites its input
        result = rollout(attentions)
        for weights in attentions:
            weights.zero_()
        return result

    assert check.check_attention_rollout(in_place).passed, capsys.readouterr().out


# ---- the cases and the mistakes are worth checking with -------------------------------------------

def test_the_reference_is_an_independent_rollout_on_every_case():
    for case in attention_cases():
        attentions = list(attribution.attention_per_layer(case.model, case.x).values())
        # independent: every block's mixing written out element by element for image 0
        tokens = attentions[0].shape[-1]
        expected = torch.eye(tokens, dtype=torch.float64)
        for weights in attentions:
            mean = sum(weights[0, h] for h in range(weights.shape[1])) / weights.shape[1]
            mixing = torch.stack([(0.5 * mean[t] + 0.5 * torch.eye(tokens, dtype=torch.float64)[t])
                                  / (0.5 * mean[t].sum() + 0.5) for t in range(tokens)])
            expected = mixing @ expected
        kit = attribution.attention_rollout(case.model, case.x, upsample=False).flatten(1)
        torch.testing.assert_close(kit[0], expected[0, 1:], rtol=1e-12, atol=1e-14)


def test_every_mistake_is_far_from_the_reference_and_from_each_other():
    # a mistake within rounding of the reference, or of another mistake, would be a hint that lies
    for case in attention_cases():
        attentions = list(attribution.attention_per_layer(case.model, case.x).values())
        reference = rollout(attentions)
        results = [wrong(attentions) for wrong in MISTAKES.values()]
        for i, got in enumerate(results):
            if got.shape == reference.shape:
                assert (got - reference).abs().max() > 1e-3 * reference.abs().max()
            for other in results[i + 1:]:
                if other.shape == got.shape:
                    assert (got - other).abs().max() > 1e-3 * reference.abs().max()


def test_the_checker_leaves_the_random_stream_alone(capsys):
    torch.manual_seed(7)
    expected = torch.rand(2)
    torch.manual_seed(7)
    check.check_attention_rollout(rollout)
    assert torch.equal(torch.rand(2), expected)
