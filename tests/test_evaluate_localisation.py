"""Pointing game (Zhang et al. 2016) and energy-based pointing game (Wang et al. 2020), by hand
and on the shapes data's own masks."""

from __future__ import annotations

import pytest
import torch

from gradviz_lab.data import make_shapes
from gradviz_lab.evaluate import energy_pointing_game, pointing_game
from gradviz_lab.evaluate.localisation import dilated


def one_peak(row: int, col: int, size: int = 6) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[0, 0, row, col] = 1.0
    return m


def block_mask(top: int, left: int, height: int, width: int, size: int = 6) -> torch.Tensor:
    mask = torch.zeros(1, size, size, dtype=torch.bool)
    mask[0, top : top + height, left : left + width] = True
    return mask


def test_hit_and_miss_by_hand():
    mask = block_mask(1, 1, 2, 2)  # rows 1-2, columns 1-2
    assert pointing_game(one_peak(2, 2), mask).tolist() == [1.0]
    assert pointing_game(one_peak(3, 3), mask).tolist() == [0.0]
    # The minimum of a signed map does not count: only the maximum points.
    signed = one_peak(4, 4) - 5 * one_peak(1, 1)
    assert pointing_game(signed, mask).tolist() == [0.0]


def test_tolerance_is_a_euclidean_distance_in_pixels():
    mask = block_mask(1, 1, 2, 2)
    straight = one_peak(2, 4)  # two columns right of the mask's pixel (2, 2)
    diagonal = one_peak(3, 3)  # one row and one column off: distance sqrt(2)
    assert pointing_game(straight, mask, tolerance=1).item() == 0.0
    assert pointing_game(straight, mask, tolerance=2).item() == 1.0
    assert pointing_game(diagonal, mask, tolerance=1).item() == 0.0
    assert pointing_game(diagonal, mask, tolerance=1.5).item() == 1.0


def test_dilation_by_a_disc_by_hand():
    grown = dilated(block_mask(2, 2, 1, 1, size=5), 1.0)
    expected = [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    assert grown.int().tolist() == [expected]


def test_tied_maxima_share_the_hit():
    mask = block_mask(0, 0, 3, 6)  # the top half
    two = one_peak(1, 1) + one_peak(5, 5)  # one maximum inside, one outside
    assert pointing_game(two, mask).item() == 0.5
    flat = torch.zeros(1, 1, 6, 6)  # points nowhere: the object's area fraction, chance
    assert pointing_game(flat, mask).item() == pytest.approx(0.5)
    assert pointing_game(flat, block_mask(0, 0, 1, 1)).item() == pytest.approx(1 / 36)


def test_batch_of_maps_and_masks():
    maps = torch.cat([one_peak(0, 0), one_peak(5, 5), one_peak(2, 3)])
    masks = torch.cat([block_mask(0, 0, 1, 1), block_mask(0, 0, 1, 1), block_mask(2, 0, 1, 6)])
    assert pointing_game(maps, masks).tolist() == [1.0, 0.0, 1.0]
    assert pointing_game(maps[:, 0], masks.unsqueeze(1).int()).tolist() == [1.0, 0.0, 1.0]


def test_a_ground_truth_mask_map_scores_100_percent_on_the_shapes_masks():
    shapes = make_shapes(12, seed=3)
    masks = shapes.masks[:, :1]
    assert pointing_game(masks.float(), masks).tolist() == [1.0] * 12
    assert energy_pointing_game(masks.float(), masks).tolist() == [1.0] * 12
    # The inverted mask never points at the object.
    assert pointing_game((~masks).float(), masks).tolist() == [0.0] * 12


def test_energy_by_hand():
    m = torch.tensor([[[1.0, 2.0], [3.0, -4.0]]])
    mask = torch.tensor([[[True, False], [False, True]]])
    # positive energy 1 + 2 + 3 = 6, of which 1 on the object (the -4 counts as none)
    assert energy_pointing_game(m, mask).item() == pytest.approx(1 / 6)
    assert energy_pointing_game(m.abs(), mask).item() == pytest.approx(5 / 10)


def test_energy_of_a_uniform_map_is_the_area_fraction_and_of_an_empty_map_zero():
    mask = block_mask(0, 0, 2, 3)
    assert energy_pointing_game(torch.ones(1, 6, 6), mask).item() == pytest.approx(6 / 36)
    assert energy_pointing_game(-torch.ones(1, 6, 6), mask).item() == 0.0
    assert energy_pointing_game(torch.zeros(1, 6, 6), mask).item() == 0.0


@pytest.mark.parametrize("game", [pointing_game, energy_pointing_game])
@pytest.mark.parametrize(
    "saliency_map, masks, error, match",
    [
        (torch.zeros(1, 6, 6), torch.zeros(1, 6, 6, dtype=torch.bool), ValueError, "empty"),
        (torch.zeros(1, 6, 6), torch.full((1, 6, 6), 2), ValueError, "0 and 1"),
        (torch.zeros(1, 3, 6, 6), block_mask(0, 0, 1, 1), ValueError, "reduce it"),
        (torch.zeros(2, 6, 6), block_mask(0, 0, 1, 1), ValueError, "shape"),
        (torch.zeros(1, 6, 6), torch.ones(1, 2, 6, 6, dtype=torch.bool), ValueError, "one mask per image"),
        (torch.full((1, 6, 6), float("inf")), block_mask(0, 0, 1, 1), ValueError, "non-finite"),
        (torch.full((1, 6, 6), float("nan")), block_mask(0, 0, 1, 1), ValueError, "non-finite"),
        (torch.zeros(6, 6), block_mask(0, 0, 1, 1), ValueError, r"\(B, 1, H, W\)"),
        ("map", block_mask(0, 0, 1, 1), TypeError, "Tensor"),
        (torch.zeros(1, 6, 6), "mask", TypeError, "Tensor"),
    ],
)
def test_bad_inputs_are_clear_errors(game, saliency_map, masks, error, match):
    with pytest.raises(error, match=match):
        game(saliency_map, masks)


@pytest.mark.parametrize("tolerance, error", [(-1, ValueError), (float("nan"), ValueError), ("2", TypeError)])
def test_pointing_game_rejects_a_bad_tolerance(tolerance, error):
    with pytest.raises(error, match="tolerance"):
        pointing_game(torch.zeros(1, 6, 6), block_mask(0, 0, 1, 1), tolerance=tolerance)
