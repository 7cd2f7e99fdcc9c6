"""Rank correlation and SSIM of maps (gradviz_lab.evaluate.similarity), against hand-computed
values and against references written afresh here (plain Python loops)."""

from __future__ import annotations

import math

import pytest
import torch

from gradviz_lab.evaluate import average_ranks, pearson, spearman, ssim


def _plain_pearson(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return cov / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def _plain_ranks(values: list[float]) -> list[float]:
    """Rank = 1 + (number of smaller values) + (number of equal values - 1) / 2."""
    return [1 + sum(w < v for w in values) + (sum(w == v for w in values) - 1) / 2 for v in values]


# --- ranks -------------------------------------------------------------------------------------


def test_average_ranks_share_ties_by_hand():
    ranks = average_ranks(torch.tensor([[5.0, 7.0, 7.0, 9.0], [3.0, 3.0, 3.0, 1.0]], dtype=torch.float64))
    assert ranks.tolist() == [[1.0, 2.5, 2.5, 4.0], [3.0, 3.0, 3.0, 1.0]]


def test_average_ranks_match_plain_counting_on_random_rows_with_ties():
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(0, 6, (5, 40), generator=generator).double()  # many ties
    expected = [_plain_ranks(row) for row in values.tolist()]
    assert average_ranks(values).tolist() == expected


# --- Pearson -----------------------------------------------------------------------------------


def test_pearson_by_hand():
    # b = 2a + 1 correlates perfectly, -a perfectly negatively; [1, 2, 3] with [1, 3, 2]:
    # centred (-1, 0, 1) and (-1, 1, 0): 1 / (sqrt(2) sqrt(2)) = 0.5.
    a = torch.tensor([[1.0, 2.0, 3.0]] * 3)
    b = torch.tensor([[3.0, 5.0, 7.0], [-1.0, -2.0, -3.0], [1.0, 3.0, 2.0]])
    torch.testing.assert_close(pearson(a, b), torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64))


def test_pearson_matches_the_plain_formula_on_random_maps():
    generator = torch.Generator().manual_seed(3)
    a, b = torch.rand(4, 2, 5, 5, generator=generator), torch.rand(4, 2, 5, 5, generator=generator)
    expected = [_plain_pearson(ra, rb) for ra, rb in zip(a.flatten(1).tolist(), b.flatten(1).tolist())]
    torch.testing.assert_close(pearson(a, b), torch.tensor(expected, dtype=torch.float64))


@pytest.mark.parametrize(
    "a, b, error, match",
    [
        (torch.rand(2, 4, 4), torch.rand(2, 5, 5), ValueError, "same shape"),
        (torch.full((1, 4, 4), float("nan")), torch.rand(1, 4, 4), ValueError, "a contains non-finite"),
        (torch.rand(1, 4), torch.tensor([[1.0, float("inf"), 0.0, 0.0]]), ValueError, "b contains non-finite"),
        (torch.rand(4), torch.rand(4), ValueError, r"batch of maps \(B, ...\)"),
        ([[1.0, 2.0]], torch.ones(1, 2), TypeError, "torch.Tensor"),
    ],
)
def test_pearson_rejects_bad_maps(a, b, error, match):
    with pytest.raises(error, match=match):
        pearson(a, b)


# --- Spearman ----------------------------------------------------------------------------------


def test_spearman_by_hand():
    # d = (0, 1, 1, 0): rho = 1 - 6 * 2 / (4 * (16 - 1)) = 0.8
    rho = spearman(torch.tensor([[1.0, 2, 3, 4]]), torch.tensor([[1.0, 3, 2, 4]]), absolute=False)
    assert rho.item() == pytest.approx(0.8, abs=1e-12)


def test_spearman_with_ties_by_hand():
    # ranks (1, 2.5, 2.5, 4) and (1.5, 1.5, 3, 4), both of mean 2.5: deviations (-1.5, 0, 0, 1.5)
    # and (-1, -1, 0.5, 1.5); covariance 3.75, variances 4.5 and 4.5: rho = 3.75 / 4.5 = 5/6.
    a, b = [1.0, 2.0, 2.0, 3.0], [1.0, 1.0, 2.0, 3.0]
    expected = 5 / 6
    assert _plain_pearson([1, 2.5, 2.5, 4], [1.5, 1.5, 3, 4]) == pytest.approx(expected)
    assert spearman(torch.tensor([a]), torch.tensor([b]), absolute=False).item() == pytest.approx(expected, abs=1e-12)


def test_spearman_absolute_compares_magnitudes():
    a = torch.tensor([[[1.0, -2.0], [3.0, -4.0]]])
    assert spearman(a, -a, absolute=True).item() == pytest.approx(1.0)
    assert spearman(a, -a, absolute=False).item() == pytest.approx(-1.0)


def test_spearman_is_per_image_and_ignores_monotone_rescaling():
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(3, 1, 6, 6, generator=generator)
    b = torch.rand(3, 1, 6, 6, generator=generator)
    rho = spearman(a, b)
    assert torch.allclose(spearman(a, torch.exp(5 * b) - 1), rho)  # same order, same rho
    for i in range(3):
        row_a, row_b = a[i].flatten().tolist(), b[i].flatten().tolist()
        assert rho[i].item() == pytest.approx(_plain_pearson(_plain_ranks(row_a), _plain_ranks(row_b)), abs=1e-12)


def test_spearman_matches_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    generator = torch.Generator().manual_seed(2)
    a = torch.randint(-3, 4, (4, 50), generator=generator).double()
    b = a + torch.randint(-2, 3, (4, 50), generator=generator)
    for i, rho in enumerate(spearman(a, b, absolute=False).tolist()):
        assert rho == pytest.approx(stats.spearmanr(a[i].numpy(), b[i].numpy()).statistic, abs=1e-12)


def test_spearman_of_a_constant_map_is_nan():
    rho = spearman(torch.ones(2, 4), torch.tensor([[1.0, 2, 3, 4], [4.0, 3, 2, 1]]))
    assert torch.isnan(rho).all()
    assert torch.isnan(pearson(torch.ones(1, 3), torch.tensor([[1.0, 2, 3]]))).all()


@pytest.mark.parametrize(
    "a, b, error",
    [
        (torch.ones(2, 4), torch.ones(2, 5), ValueError),
        (torch.ones(4), torch.ones(4), ValueError),
        (torch.tensor([[1.0, float("nan")]]), torch.ones(1, 2), ValueError),
        ([[1.0, 2.0]], torch.ones(1, 2), TypeError),
    ],
)
def test_spearman_rejects_bad_maps(a, b, error):
    with pytest.raises(error):
        spearman(a, b)


# --- SSIM --------------------------------------------------------------------------------------


def _plain_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """SSIM of two (H, W) maps, window by window with explicit weighted sums (Wang et al. 2004)."""
    size, sigma = 11, 1.5
    g = [math.exp(-0.5 * ((i - 5) / sigma) ** 2) for i in range(size)]
    w = [[gi * gj / sum(g) ** 2 for gj in g] for gi in g]

    def unit(m: torch.Tensor) -> list[list[float]]:
        low, high = m.min().item(), m.max().item()
        return [[(v - low) / (high - low) for v in row] for row in m.tolist()]

    a, b = unit(a), unit(b)
    height, width = len(a), len(a[0])
    values = []
    for top in range(height - size + 1):
        for left in range(width - size + 1):
            def wsum(f):
                return sum(w[i][j] * f(a[top + i][left + j], b[top + i][left + j]) for i in range(size) for j in range(size))

            mu_a, mu_b = wsum(lambda p, q: p), wsum(lambda p, q: q)
            var_a = wsum(lambda p, q: (p - mu_a) ** 2)
            var_b = wsum(lambda p, q: (q - mu_b) ** 2)
            cov = wsum(lambda p, q: (p - mu_a) * (q - mu_b))
            c1, c2 = 0.01**2, 0.03**2
            values.append(((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return sum(values) / len(values)


def test_ssim_matches_a_window_by_window_reference():
    generator = torch.Generator().manual_seed(3)
    a = torch.rand(2, 1, 13, 14, generator=generator)
    b = 0.5 * a + 0.5 * torch.rand(2, 1, 13, 14, generator=generator)
    got = ssim(a, b)
    for i in range(2):
        assert got[i].item() == pytest.approx(_plain_ssim(a[i, 0], b[i, 0]), abs=1e-10)


def test_ssim_of_identical_or_rescaled_maps_is_one_and_of_noise_is_low():
    generator = torch.Generator().manual_seed(4)
    a = torch.rand(3, 16, 16, generator=generator)
    assert torch.allclose(ssim(a, a), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(ssim(a, 7 * a + 2, absolute=False), torch.ones(3, dtype=torch.float64))
    noise = torch.rand(3, 16, 16, generator=generator)
    assert (ssim(a, noise) < 0.2).all()


def test_ssim_averages_channels():
    generator = torch.Generator().manual_seed(5)
    a = torch.rand(1, 2, 12, 12, generator=generator)
    b = torch.rand(1, 2, 12, 12, generator=generator)
    # Every channel spans exactly [0, 1], so rescaling the whole map changes nothing.
    for m in (a, b):
        m[0, :, 0, 0], m[0, :, 0, 1] = 0.0, 1.0
    expected = (_plain_ssim(a[0, 0], b[0, 0]) + _plain_ssim(a[0, 1], b[0, 1])) / 2
    assert ssim(a, b).item() == pytest.approx(expected, abs=1e-10)


def test_ssim_matches_scikit_image_when_installed():
    metrics = pytest.importorskip("skimage.metrics")
    generator = torch.Generator().manual_seed(6)
    a = torch.rand(1, 24, 24, generator=generator, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(1, 24, 24, generator=generator, dtype=torch.float64)) / 1.3
    a[0, 0, 0], a[0, 0, 1], b[0, 0, 0], b[0, 0, 1] = 0.0, 1.0, 0.0, 1.0  # already in [0, 1]
    reference = metrics.structural_similarity(
        a[0].numpy(), b[0].numpy(), gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )
    # scikit-image pads and crops differently at the border: agreement to a few percent.
    assert ssim(a, b).item() == pytest.approx(reference, abs=0.03)


def test_ssim_rejects_maps_smaller_than_its_window():
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.rand(1, 8, 8), torch.rand(1, 8, 8))
