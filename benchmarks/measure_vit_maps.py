"""Which map points at the object, on the shapes CNN and the shapes ViT (issue 20).

Scores every method against the shapes' ground-truth masks with ``evaluate.evaluate_methods``
(pointing game, energy inside the mask, deletion and insertion AUC), in float64, on fresh shapes
that neither model was trained or evaluated on. Usage:

    python benchmarks/measure_vit_maps.py [N]      # N images (default 100)
"""

from __future__ import annotations

import sys
import time

import torch

from gradviz_lab import attribution as a
from gradviz_lab.data import make_shapes
from gradviz_lab.evaluate import evaluate_methods
from gradviz_lab.evaluate.report import edge_map, random_map
from gradviz_lab.models import load_lab_model

SEED = 2026  # fresh: training used 0, the cards 12345


def main(n: int = 100) -> None:
    shapes = make_shapes(n, SEED)
    x, labels, masks = shapes.images.double(), shapes.labels, shapes.masks[:, 0]
    blur_ig = lambda m, x, t: a.integrated_gradients(m, x, t, steps=16, baseline="blur")  # noqa: E731
    common = {
        "random (chance)": random_map,
        "edges (no model)": edge_map,
        "saliency": lambda m, x, t: a.saliency(m, x, t),
        "integrated gradients (blur)": blur_ig,
        "grad-cam (default layer)": lambda m, x, t: a.gradcam(m, x, t),
    }
    vit_only = {
        "attention, last block": lambda m, x, t: a.attention_map(m, x, t),
        "attention, first block": lambda m, x, t: a.attention_map(m, x, t, block=0),
        "attention rollout": lambda m, x, t: a.attention_rollout(m, x, t),
        "gradient rollout": lambda m, x, t: a.gradient_rollout(m, x, t),
    }
    for name, methods in (("shapes", common), ("shapes-vit", {**common, **vit_only})):
        model = load_lab_model(name).double()
        start = time.perf_counter()
        table = evaluate_methods(model, x, labels, masks, methods, randomisation=False)
        print(f"\n{name} ({n} images of make_shapes(seed={SEED}), float64; {time.perf_counter() - start:.0f} s)")
        print(table)


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
