"""Evaluating explanations: which map is right? Measurements instead of opinions.

| question                                | functions                                   | module           |
|-----------------------------------------|---------------------------------------------|------------------|
| does the map add up? (axioms)           | completeness_gap                            | axioms.py        |
| does it depend on the weights? (sanity) | randomised_copy, randomisation_test         | randomisation.py |
| how alike are two maps?                 | spearman, ssim                              | similarity.py    |
| does it rank the pixels the model uses? | deletion_curve, insertion_curve (.auc)      | faithfulness.py  |
| ... with removed pixels really removed  | impute (deletion's baseline="impute")       | imputation.py    |
| does it point at the object?            | pointing_game, energy_pointing_game         | localisation.py  |
| every method in one table; shortcuts    | evaluate_methods, shortcut_report           | report.py        |

Every function leaves the model exactly as it came in (``hooks.preserved_state``); results are
deterministic for a given ``seed``. Tables print with fixed decimals (``table.Table``).
"""

from __future__ import annotations

from .axioms import completeness_gap
from .faithfulness import Curve, deletion_curve, insertion_curve, pixel_ranks, remove_top_pixels
from .imputation import impute
from .localisation import energy_pointing_game, pointing_game
from .randomisation import randomisable_layers, randomisation_test, randomised_copy, reinitialise
from .report import (
    ShortcutReport,
    accuracy,
    as_pixel_map,
    default_methods,
    edge_map,
    evaluate_methods,
    predictions,
    random_map,
    shortcut_report,
    with_tag,
)
from .similarity import average_ranks, pearson, spearman, ssim
from .table import Table

__all__ = [
    "completeness_gap",
    "Curve",
    "deletion_curve",
    "insertion_curve",
    "pixel_ranks",
    "remove_top_pixels",
    "impute",
    "pointing_game",
    "energy_pointing_game",
    "randomisable_layers",
    "randomised_copy",
    "randomisation_test",
    "reinitialise",
    "average_ranks",
    "pearson",
    "spearman",
    "ssim",
    "evaluate_methods",
    "default_methods",
    "as_pixel_map",
    "random_map",
    "edge_map",
    "accuracy",
    "predictions",
    "with_tag",
    "shortcut_report",
    "ShortcutReport",
    "Table",
]
