"""Reproducible training of the lab models: ``gradviz train digits|digits-robust|shapes|shapes-tagged|shapes-softplus|shapes-vit``.

Each recipe is a few epochs of AdamW with a one-cycle learning-rate schedule (warm-up, then cosine
decay) on the CPU, seeded end to end (initialisation, data, shuffling, augmentation), with
deterministic kernels and one thread: the same command with the same torch gives the same weights.
The shapes models train with BatchNorm, which is then folded into their convolutions. The weights go to ``OUT/NAME.pt``
and a model card (accuracy, recipe, time, checksum) to ``OUT/NAME.json``, where OUT is ``--out`` or,
by default, ``lab-models/`` in the current directory: never the installed package, and never over a
file that is not an earlier ``gradviz train`` output. Load them with
``load_lab_model(NAME, weights_dir=OUT)``; the shipped weights stay as they are.

What each model is evaluated on:
- digits: the 1,000 shipped MNIST test digits (never seen in training);
- digits-robust (the digits recipe with PGD adversarial training): the same digits, clean and
  under FGSM and PGD attacks at several epsilons, and how well its input gradients follow the
  strokes (``attacks.stroke_correlation``);
- shapes, shapes-softplus, shapes-vit: 1,000 fresh shapes from a seed used nowhere in training;
- shapes-tagged: the same fresh shapes with and without the mark: a model that learned the mark
  instead of the circle loses most of its circles when the mark is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import attacks
from .data import SHAPE_CLASSES, TAGGED_CLASS, load_digits, make_shapes
from .evaluate.report import accuracy  # the kit's one accuracy: eval mode, the model left as it was
from .models import LAB_MODELS, ShapesCNN, build_lab_model, lab_weights_path, load_lab_model
from .threads import lab_threads
from .train_data import (  # noqa: F401  (the batches' making lives there; its names are part of this module's)
    SHAPES_TRAIN_SEED,
    adversarial_batch,
    add_noise,
    batches,
    random_affine,
    recipe_batches,
    toward_baseline,
    training_data,
)
from .training_loop import train_batches


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights (recorded in the model card)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    n_train: int  # digits: n evenly spaced images of the shipped 4,000 (balanced); shapes: images generated
    augment: str  # "affine" (small random rotation, scale, shift) or "none"
    tag_prob: float = 0.0  # shapes only: probability that a circle carries the mark
    batch_norm: bool = False  # shapes only: train with BatchNorm, then fold it into the convs
    # Optional smoothing (off in the shipped recipes; see ``add_noise`` and ``toward_baseline``).
    noise: float = 0.0  # largest std of the Gaussian noise added to an image (std drawn in [0, noise])
    baseline_mixup: float = 0.0  # probability that an image is moved toward its baseline
    mixup_baseline: str = "blur"  # that baseline: "blur" or "zeros" (as in integrated gradients)
    # PGD adversarial training (Madry et al. 2018; off when adversarial_epsilon is 0): every batch
    # is replaced by its L-infinity PGD attack at this epsilon (pixel units of [0, 1]).
    adversarial_epsilon: float = 0.0
    adversarial_steps: int = 0  # PGD steps per batch (step size 2.5 * epsilon / steps, random start)
    # shapes-vit only: its CNN trunk (conv_proj.0) starts from this shipped lab model's features
    trunk_from: str = ""
    seed: int = 0
    # One thread: bitwise reproducible, and on a shared 2-core machine much faster than two
    # threads fighting other processes for the cores.
    threads: int = 1


SHAPES_RECIPE = Recipe(
    epochs=6, batch_size=64, lr=3e-3, weight_decay=1e-4, n_train=6000, augment="none", batch_norm=True
)
RECIPES: dict[str, Recipe] = {
    "digits": Recipe(epochs=30, batch_size=64, lr=5e-3, weight_decay=1e-4, n_train=4000, augment="affine"),
    "shapes": SHAPES_RECIPE,
    "shapes-tagged": dataclasses.replace(SHAPES_RECIPE, tag_prob=1.0),
    "shapes-softplus": SHAPES_RECIPE,  # only the activation differs (models.SoftplusShapesCNN)
}
# The hybrid vision transformer (vision_transformer.ShapesViT): its CNN trunk starts from the shipped
# shapes CNN (a plain ViT stays at chance on these images within the time), then everything trains
# together; a lower peak rate than the CNN's and the usual ViT weight decay.
RECIPES["shapes-vit"] = Recipe(epochs=3, batch_size=64, lr=1e-3, weight_decay=0.05, n_train=6000, augment="none",
                               trunk_from="shapes")
# The digits recipe, each batch replaced by its PGD attack (lesson 09: adversarial examples).
RECIPES["digits-robust"] = dataclasses.replace(RECIPES["digits"], adversarial_epsilon=0.15, adversarial_steps=5)
# The attack the robust model's card reports (and the tests check), at these epsilons.
ADVERSARIAL_EPSILONS = (0.05, 0.1, 0.15, 0.2)
EVALUATION_PGD_STEPS = 20
SHAPES_TEST_SEED = 12345  # fresh images: no training run uses this seed
SHAPES_TEST_SIZE = 1000


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate(name: str, model: nn.Module) -> dict[str, float | str]:
    """The accuracies recorded in the model card (see the module docstring)."""
    if name == "digits":
        images, labels = load_digits("test")
        return {"accuracy": accuracy(model, images, labels), "evaluated_on": "shipped MNIST test split (1,000)"}
    if name == "digits-robust":
        return evaluate_robustness(model)
    plain = make_shapes(SHAPES_TEST_SIZE, SHAPES_TEST_SEED)
    result: dict[str, float | str] = {
        "accuracy": accuracy(model, plain.images, plain.labels),
        "evaluated_on": f"make_shapes({SHAPES_TEST_SIZE}, seed={SHAPES_TEST_SEED})",
    }
    if name == "shapes-tagged":
        tagged = make_shapes(SHAPES_TEST_SIZE, SHAPES_TEST_SEED, tag_prob=1.0)
        is_tagged_class = plain.labels == SHAPE_CLASSES.index(TAGGED_CLASS)
        with_tag = accuracy(model, tagged.images[is_tagged_class], tagged.labels[is_tagged_class])
        without_tag = accuracy(model, plain.images[is_tagged_class], plain.labels[is_tagged_class])
        result.update(
            accuracy_with_tag=accuracy(model, tagged.images, tagged.labels),
            tagged_class=TAGGED_CLASS,
            tagged_class_accuracy_with_tag=with_tag,
            tagged_class_accuracy_without_tag=without_tag,
            tagged_class_drop_points=100 * (with_tag - without_tag),
        )
    return result


def evaluate_robustness(model: nn.Module) -> dict:
    """Clean accuracy, accuracy under attack at each of ``ADVERSARIAL_EPSILONS`` (L-infinity PGD,
    20 steps, random start seeded 0; and FGSM), and how well the input gradients follow the
    strokes, all on the 1,000 shipped test digits."""
    images, labels = load_digits("test")
    under_pgd, under_fgsm = {}, {}
    steps = EVALUATION_PGD_STEPS
    for epsilon in ADVERSARIAL_EPSILONS:
        attacked = attacks.pgd(model, images, epsilon=epsilon, steps=steps, labels=labels)
        under_pgd[str(epsilon)] = accuracy(model, attacked, labels)
        under_fgsm[str(epsilon)] = accuracy(model, attacks.fgsm(model, images, epsilon=epsilon, labels=labels), labels)
    return {
        "accuracy": accuracy(model, images, labels),
        "evaluated_on": "shipped MNIST test split (1,000)",
        "pgd_accuracy": under_pgd,
        "pgd_attack": f"L-infinity PGD, {steps} steps of 2.5 * epsilon / {steps}, random start (seed 0), untargeted, on the labels",
        "fgsm_accuracy": under_fgsm,
        "gradient_stroke_correlation": float(attacks.stroke_correlation(model, images, labels).mean()),
    }


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """Deterministic kernels and a fixed thread count (a CPU sum split over a different number of
    threads rounds differently), restored afterwards."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with lab_threads(threads=threads):
            yield
    finally:
        torch.use_deterministic_algorithms(previous)


def model_to_train(name: str, recipe: Recipe) -> nn.Module:
    if recipe.trunk_from:
        return vit_with_trunk(name, recipe.trunk_from)
    if not recipe.batch_norm:
        return build_lab_model(name)
    if not (isinstance(LAB_MODELS[name], type) and issubclass(LAB_MODELS[name], ShapesCNN)):
        raise ValueError(f"batch_norm=True is for the shapes models, not {name!r}")
    return LAB_MODELS[name](batch_norm=True)


@torch.no_grad()
def vit_with_trunk(name: str, trunk_from: str) -> nn.Module:
    """A fresh hybrid ViT whose CNN trunk (``conv_proj.0``) holds the convolutions of the shipped
    lab model ``trunk_from`` (loaded and sha-checked as usual); the rest is torchvision's init."""
    model = build_lab_model(name)
    trunk = getattr(getattr(model, "conv_proj", None), "0", None)
    if trunk is None:
        raise ValueError(f"trunk_from is for the hybrid ViT (shapes-vit), not {name!r}")
    trunk.load_state_dict(load_lab_model(trunk_from).features.state_dict())
    return model


@torch.no_grad()
def fold_batch_norm(trained: ShapesCNN) -> ShapesCNN:
    """The same function as ``trained`` (in eval mode), without its BatchNorm modules.

    In eval mode BatchNorm is a fixed affine map per channel, y = s (z - mu) + beta with
    s = gamma / sqrt(var + eps), so it merges into the conv before it (Ioffe & Szegedy 2015):
    W' = s W,  b' = s (b - mu) + beta. The result has only conv, activation, pooling and linear
    layers, and is of the same class as ``trained`` (``ShapesCNN`` or ``SoftplusShapesCNN``).
    """
    layers = list(trained.features)
    pairs = [(conv, bn) for conv, bn in zip(layers, layers[1:]) if isinstance(bn, nn.BatchNorm2d)]
    plain = type(trained)()
    convs = [m for m in plain.features if isinstance(m, nn.Conv2d)]
    if len(pairs) != len(convs) or not all(isinstance(conv, nn.Conv2d) for conv, _ in pairs):
        raise ValueError("expected a ShapesCNN(batch_norm=True): one BatchNorm after every conv")
    for target, (conv, bn) in zip(convs, pairs):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        target.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        target.bias.copy_((conv.bias - bn.running_mean) * scale + bn.bias)
    plain.classifier.load_state_dict(trained.classifier.state_dict())
    return plain.eval()


def fit(name: str, recipe: Recipe, progress: bool = True) -> nn.Module:
    """Train lab model ``name`` with ``recipe`` from a seeded initialisation; returns it in eval mode,
    with any BatchNorm folded away (so it is exactly the architecture ``load_lab_model`` builds)."""
    images, labels = training_data(name, recipe)
    torch.manual_seed(recipe.seed)
    model = model_to_train(name, recipe)
    generator = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = recipe.epochs * math.ceil(len(images) / recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=steps)
    with tqdm(total=steps, desc=f"train {name}", unit="step", disable=not progress) as bar:
        for epoch in range(recipe.epochs):

            def shown(_number: int, loss: torch.Tensor, epoch: int = epoch) -> None:
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")

            train_batches(model, recipe_batches(model, images, labels, recipe, generator), optimizer,
                          schedule=schedule, after_step=shown)
    model.eval()
    return fold_batch_norm(model) if recipe.batch_norm else model


def check_recipe(recipe: Recipe) -> None:
    """A clear error for a recipe ``fit`` cannot follow."""
    if recipe.augment not in ("affine", "none"):
        raise ValueError(f"augment must be 'affine' or 'none', got {recipe.augment!r}")
    if not (math.isfinite(recipe.noise) and recipe.noise >= 0):
        raise ValueError(f"noise must be a finite std >= 0, got {recipe.noise!r}")
    if not 0 <= recipe.baseline_mixup <= 1:
        raise ValueError(f"baseline_mixup must be a probability in [0, 1], got {recipe.baseline_mixup!r}")
    if recipe.mixup_baseline not in ("blur", "zeros"):
        raise ValueError(f"mixup_baseline must be 'blur' or 'zeros', got {recipe.mixup_baseline!r}")
    if not (math.isfinite(recipe.adversarial_epsilon) and recipe.adversarial_epsilon >= 0):
        raise ValueError(f"adversarial_epsilon must be a finite number >= 0, got {recipe.adversarial_epsilon!r}")
    if recipe.adversarial_epsilon > 0 and recipe.adversarial_steps < 1:
        raise ValueError(f"adversarial training needs adversarial_steps >= 1, got {recipe.adversarial_steps!r}")
    if not (math.isfinite(recipe.lr) and recipe.lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {recipe.lr!r}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


DEFAULT_OUT = Path("lab-models")  # relative: in the folder the command runs from
_PACKAGE_DIR = Path(__file__).resolve().parent


def check_out_dir(name: str, out_dir: Path) -> None:
    """Refuse a destination inside the installed package, or one whose NAME.pt is not an
    earlier ``gradviz train`` output (its card beside it records the same sha256)."""
    resolved = out_dir.resolve()
    if resolved == _PACKAGE_DIR or _PACKAGE_DIR in resolved.parents:
        raise ValueError(
            f"refusing to write into the installed package ({out_dir}): the shipped weights stay as they "
            f"are; give --out a folder of your own (default: {DEFAULT_OUT}/ in the current directory)"
        )
    weights, card = out_dir / f"{name}.pt", out_dir / f"{name}.json"
    if weights.exists():
        try:
            recorded = json.loads(card.read_text()).get("weights_sha256")
        except (OSError, ValueError):
            recorded = None
        if recorded != sha256(weights):
            raise ValueError(
                f"refusing to replace {weights}: it is not the output of an earlier `gradviz train` "
                f"(no model card beside it records its checksum); move it away or choose another --out"
            )


def train_lab_model(
    name: str,
    recipe: Recipe | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Train, evaluate and save lab model ``name`` into ``out_dir`` (default ``lab-models/`` in the
    current directory); returns the model card written beside the weights."""
    if name not in LAB_MODELS:
        raise ValueError(f"unknown lab model {name!r}; choose one of {', '.join(LAB_MODELS)}")
    recipe = recipe or RECIPES[name]
    check_recipe(recipe)
    out_dir = DEFAULT_OUT if out_dir is None else Path(out_dir)
    check_out_dir(name, out_dir)  # before the minutes of training, not after
    with deterministic(recipe.threads):
        start, start_cpu = time.perf_counter(), time.process_time()
        model = fit(name, recipe, progress)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
        metrics = evaluate(name, model)
    path = lab_weights_path(name, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    card = {
        "model": name,
        "architecture": type(model).__name__,
        **metrics,
        "recipe": dataclasses.asdict(recipe),
        "optimiser": "AdamW, one-cycle learning-rate schedule (max lr = recipe lr), cross-entropy loss",
        "train_seconds": round(seconds, 1),  # wall clock: longer when other processes share the CPU
        "train_cpu_seconds": round(cpu_seconds, 1),
        "torch": torch.__version__,
        # The kernels PyTorch chose for this CPU: retraining reproduces the weights bit for bit only
        # with the same torch release *and* the same kernels (another CPU rounds sums differently).
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "command": f"gradviz train {name}",
        "weights_sha256": sha256(path),
    }
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


# --------------------------------------------------------------------------------------------
# The command line: gradviz train NAME
# --------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=list(LAB_MODELS), help="which lab model to train")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default ./{DEFAULT_OUT}; never the shipped weights)")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--n-train", type=int, default=None, help="override the number of training images")
    parser.add_argument("--seed", type=int, default=None, help="override the recipe's seed")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default from the recipe)")
    parser.add_argument("--lr", type=float, default=None, help="override the recipe's peak learning rate")
    parser.add_argument("--noise", type=float, default=None, metavar="SIGMA",
                        help="train on noisy copies, std drawn in [0, SIGMA] (default 0: off)")
    parser.add_argument("--baseline-mixup", type=float, default=None, metavar="P",
                        help="move a fraction P of the images toward their baseline, labels mixed alike (default 0: off)")
    parser.add_argument("--mixup-baseline", choices=("blur", "zeros"), default=None,
                        help="the baseline --baseline-mixup moves toward (default blur)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    # The options are named after the Recipe fields they override (argparse: --n-train -> n_train).
    fields = ("epochs", "n_train", "seed", "threads", "lr", "noise", "baseline_mixup", "mixup_baseline")
    overrides = {field: getattr(args, field) for field in fields if getattr(args, field) is not None}
    for field in ("epochs", "n_train", "seed", "threads"):
        value = overrides.get(field)
        if value is not None and value < (0 if field == "seed" else 1):
            raise SystemExit(f"gradviz train: --{field.replace('_', '-')} must be positive, got {value}")
    recipe = dataclasses.replace(RECIPES[args.name], **overrides)
    try:
        check_recipe(recipe)
        check_out_dir(args.name, args.out)
    except ValueError as error:
        raise SystemExit(f"gradviz train: {error}") from None
    card = train_lab_model(args.name, recipe, args.out, progress=not args.quiet)
    path = lab_weights_path(args.name, args.out)
    print(f"{args.name}: accuracy {100 * card['accuracy']:.2f}% on {card['evaluated_on']}")
    if "tagged_class_drop_points" in card:
        print(
            f"  {card['tagged_class']} with the mark {100 * card['tagged_class_accuracy_with_tag']:.1f}%, "
            f"without {100 * card['tagged_class_accuracy_without_tag']:.1f}% "
            f"(drop {card['tagged_class_drop_points']:.1f} points)"
        )
    if "pgd_accuracy" in card:
        under_attack = ", ".join(f"{100 * a:.1f}% at {e}" for e, a in card["pgd_accuracy"].items())
        print(f"  under PGD (L-infinity, {EVALUATION_PGD_STEPS} steps): {under_attack}")
    print(f"  trained in {card['train_seconds']} s ({card['train_cpu_seconds']} s of CPU time)")
    print(f"  weights {path}, card {path.with_suffix('.json')}")
    print(f"  load them with models.load_lab_model({args.name!r}, weights_dir={str(args.out)!r})")
    return 0
