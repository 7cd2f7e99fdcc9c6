"""Not a speed benchmark: how well lab models suit the evaluation of issue 7, side by side.

For the shapes models (``shapes``, ``shapes-tagged``, ``shapes-softplus``) in each weights folder
given (default: the shipped ``data/models``) it prints
- integrated gradients' relative completeness error |delta| / |F(x) - F(x')| at 64 Gauss-Legendre
  steps, in float64, over 8 images (mean and worst), with the blur and the black baseline;
- deletion AUC of the ground-truth mask and of a random map (16 images; a low AUC is good), with
  the removed pixels set to black, to the blurred image, or imputed from the remaining pixels
  (``baseline="impute"``), and insertion AUC (high is good);
- the fraction of 200 images that keep their class under Gaussian noise of std 0.05 and 0.15.

Compare the shipped models with ones trained by, for example,

    gradviz train shapes --out runs/smooth --epochs 12 --lr 5e-3 --noise 0.05 --baseline-mixup 0.3
    .venv/bin/python benchmarks/measure_lab_models.py data/models runs/smooth

(about 3 minutes of training per model on one core, then about a minute of measuring per folder).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from gradviz_lab import attribution
from gradviz_lab.data import make_shapes
from gradviz_lab.evaluate import completeness_gap, deletion_curve, insertion_curve, random_map
from gradviz_lab.models import lab_weights_path, load_lab_model, shipped_models_dir

EVAL_SEED = 2024  # the images of tests/test_evaluate_lab_models.py


def completeness(model: torch.nn.Module, tagged: bool, baseline: str) -> tuple[float, float]:
    shapes = make_shapes(8, EVAL_SEED, tag_prob=1.0 if tagged else 0.0)
    model, x, y = model.double(), shapes.images.double(), shapes.labels
    ig = attribution.integrated_gradients(model, x, y, baseline=baseline, steps=64)
    relative = completeness_gap(model, x, ig, target=y, baseline=baseline)
    model.float()
    return relative.mean().item(), relative.max().item()


def faithfulness(model: torch.nn.Module) -> dict[str, tuple[float, float]]:
    shapes = make_shapes(16, EVAL_SEED)
    x, y, mask = shapes.images, shapes.labels, shapes.masks[:, :1].float()
    noise = random_map(model, x, seed=0)
    auc = lambda curve, saliency, **fill: curve(model, x, saliency, y, steps=16, **fill).auc.mean().item()  # noqa: E731
    deletion = {
        f"deletion {label}": tuple(auc(deletion_curve, m, baseline=fill) for m in (mask, noise))
        for label, fill in (("to black", 0.0), ("to blur", "blur"), ("imputed", "impute"))
    }
    return {**deletion, "insertion from blur": (auc(insertion_curve, mask), auc(insertion_curve, noise))}


def noise_robustness(model: torch.nn.Module, sigma: float) -> float:
    shapes = make_shapes(200, EVAL_SEED)
    noise = torch.randn(shapes.images.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return (model(shapes.images + sigma * noise).argmax(1) == shapes.labels).float().mean().item()


def main(folders: list[str]) -> None:
    torch.set_num_threads(1)
    for folder in folders or [str(shipped_models_dir())]:
        for name in ("shapes", "shapes-tagged", "shapes-softplus"):
            if not lab_weights_path(name, folder).is_file():
                print(f"{folder}: no {name} weights, skipped")
                continue
            model = load_lab_model(name, weights_dir=folder)
            print(f"== {name} from {folder}")
            for baseline in ("blur", "zeros"):
                mean, worst = completeness(model, name == "shapes-tagged", baseline)
                print(f"  IG relative |delta|, 64 steps, {baseline:5} baseline: mean {mean:.1e}, worst {worst:.1e}")
            for kind, (truth, noise) in faithfulness(model).items():
                print(f"  {kind:19} AUC: mask {truth:.3f}, random map {noise:.3f}")
            print("  keep their class under noise: " + ", ".join(
                f"std {sigma}: {100 * noise_robustness(model, sigma):.0f}%" for sigma in (0.05, 0.15)))


if __name__ == "__main__":
    main(sys.argv[1:])
