"""``gradviz explain``: the figure for one image, model, method and target, written to a PNG.

    $ gradviz explain shapes:5 --model shapes --method gradcam --target square --out cam.png
    $ gradviz explain cat.jpg --model vgg19 --method smoothgrad --sigma 0.2 --n-samples 25
    $ gradviz explain --list --model digits            # the shipped examples: digits:0 ...

The knobs are the dashboards' sliders, and the figure is drawn by the same code
(``gradviz_lab.widgets.recipes``), so a slide shows what the live dashboard showed.

This module only parses arguments: ``gradviz --help`` imports it to build its parser, so torch
and matplotlib are imported when the command runs, not before.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from . import methods

# Kept here (not imported from the modules that define them) so that --help imports no torch;
# tests/test_explain.py checks they match models.py and widgets/gallery.py. The methods and their
# knobs come from the registry, gradviz_lab.methods, which imports no torch either.
LAB_MODELS = ("digits", "digits-robust", "shapes", "shapes-tagged", "shapes-softplus", "shapes-vit")
IMAGENET_MODELS = ("vgg16", "vgg19", "alexnet", "resnet18", "resnet50", "vit_b_16")
METHOD_NAMES = methods.names()  # as the command was built; ``methods.names()`` is the live list
BASELINES = methods.BASELINES
PHOTOS = ("cat", "coffee", "rocket", "astronaut", "cat_and_coffee")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``gradviz explain``; the knobs have the dashboards' names."""
    parser.add_argument(
        "image",
        nargs="?",
        help="an image file, or a shipped example: GALLERY:N (e.g. shapes:5, digits:3; see "
        "--list) or a shipped photo name (cat, coffee, rocket, astronaut, cat_and_coffee)",
    )
    parser.add_argument(
        "--model",
        default="shapes",
        choices=LAB_MODELS + IMAGENET_MODELS,
        help="lab model or ImageNet model (default: shapes)",
    )
    parser.add_argument(
        "--method", default="gradcam", choices=methods.names(), help="default: gradcam"
    )
    parser.add_argument(
        "--target",
        default=None,
        help="class name or index to explain (default: the predicted class)",
    )
    parser.add_argument(
        "--out", default="explanation.png", help="PNG file to write (default: explanation.png)"
    )
    parser.add_argument(
        "--force", action="store_true", help="replace the --out file if it exists"
    )
    parser.add_argument(
        "--dpi", type=float, default=200, help="resolution of the PNG (default: 200, for slides)"
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="gradcam: opacity of the map over the image (default 0.5)",
    )
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="ImageNet models: use random weights when pretrained ones are unavailable",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the shipped examples of --model and exit"
    )
    knobs = parser.add_argument_group("method knobs (the dashboards' sliders)")
    for name in methods.knob_names():
        knobs.add_argument(_option(name), **_knob_option(name))


# how a knob's kind is read from the command line; a "choice" knob lists its choices instead
_KNOB_TYPES = {"int": int, "float": float, "name": str, "choice": None}


def _knob_option(name: str) -> dict:
    """argparse settings of the option of knob ``name``, from the registry: its type or choices,
    and a help line per method that has it ("occlusion, integrated-gradients: what replaces ...")."""
    having = [(m.name, m.knob(name)) for m in methods.REGISTRY.values() if name in m.defaults]
    helps: dict[str, list[str]] = {}
    for method, knob in having:
        default = "" if knob.default is None or knob.kind == "name" else f" (default {knob.default})"
        helps.setdefault(knob.help + default, []).append(method)
    first = having[0][1]
    option = {"help": "; ".join(f"{', '.join(ms)}: {text}" for text, ms in helps.items())}
    if first.kind == "choice":
        option["choices"] = first.choices
    else:
        option["type"] = _KNOB_TYPES[first.kind]
    return option


OVERLAID = ("gradcam",)  # the methods whose map is drawn over the image, at --alpha


def run(args: argparse.Namespace) -> int:
    """Write the figure; a wrong argument is one line on stderr and exit status 2."""
    try:
        return _run(args)
    except (ValueError, TypeError, OSError, RuntimeError) as error:  # OSError: the file system
        print(f"gradviz explain: error: {error}", file=sys.stderr)
        return 2


def is_index(text: str) -> bool:
    """"12" is a class or image index; "²" or "٣" (digits to str.isdigit) are not."""
    return text.isascii() and text.isdigit()


def _option(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def check_options(args: argparse.Namespace, knobs: dict[str, dict]) -> None:
    """Refuse options the chosen method would silently ignore (``knobs``: each method's knobs,
    ``recipes.METHODS``), and an --out or --dpi that cannot be written, before any work is done."""
    knobs_of_method = knobs[args.method]
    every_knob = dict.fromkeys(k for method_knobs in knobs.values() for k in method_knobs)
    foreign = [k for k in every_knob if getattr(args, k, None) is not None and k not in knobs_of_method]
    if foreign:
        raise ValueError(
            f"{', '.join(map(_option, foreign))} {'is' if len(foreign) == 1 else 'are'} not a knob "
            f"of {args.method}; its knobs are {', '.join(map(_option, knobs_of_method)) or 'none'}"
        )
    if args.channel is not None and args.layer is None:
        raise ValueError("--channel needs --layer: it picks a channel of that layer")
    if args.alpha is not None and args.method not in OVERLAID:
        raise ValueError(f"--alpha sets the opacity of an overlay; {args.method} draws no overlay "
                         f"(only {', '.join(OVERLAID)} does)")
    if not (math.isfinite(args.dpi) and args.dpi > 0):
        raise ValueError(f"--dpi must be a positive number, got {args.dpi}")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise ValueError(f"{args.out} exists; pass --force to replace it, or choose another --out")
    if not out.parent.is_dir():
        raise ValueError(f"cannot write {args.out}: folder {str(out.parent)!r} does not exist "
                         "(or is not a folder)")


def _run(args: argparse.Namespace) -> int:
    from .viz import save_png
    from .widgets.recipes import METHODS, explain, explanation_figure, gallery, gallery_defaults

    if not args.list:
        check_options(args, METHODS)
    examples = gallery(args.model, random_weights=args.random_weights)
    if args.list:
        for i, name in enumerate(examples.image_names):
            print(f"{args.model}:{i}  {name}")
        return 0
    if args.image is None:
        raise ValueError("which image? give a file, a photo name or GALLERY:N (see --list)")
    image = _cli_image(args.image, args.model, examples)
    given = {k: v for k in METHODS[args.method] if (v := getattr(args, k, None)) is not None}
    knobs = {**gallery_defaults(args.method, args.model), **given}  # as the model's dashboards
    target = int(args.target) if args.target is not None and is_index(args.target) else args.target
    explanation = explain(
        examples.model, image, args.method, target, class_names=examples.class_names, **knobs
    )
    alpha = 0.5 if args.alpha is None else args.alpha
    figure = explanation_figure(image, explanation, alpha=alpha)
    path = save_png(figure, args.out, dpi=args.dpi, overwrite=args.force)
    print(f"wrote {path} ({explanation.method}, target {explanation.target_name})")
    if explanation.note:
        print(explanation.note)
    return 0


def _cli_image(spec: str, model_name: str, examples):
    """GALLERY:N, a shipped photo name or a file, as a (C, H, W) image the model takes."""
    from . import data, models

    gallery_name, _, index = spec.rpartition(":")
    if gallery_name and is_index(index) and not Path(spec).exists():
        if gallery_name != model_name:
            raise ValueError(
                f"image {spec!r} is from the {gallery_name} gallery but --model is {model_name}"
            )
        count = len(examples.images)
        if int(index) >= count:
            raise ValueError(f"{gallery_name} has {count} examples: 0 to {count - 1}")
        return examples.images[int(index)]
    source = data.photo_path(spec) if spec in PHOTOS else spec
    if model_name in IMAGENET_MODELS:
        return models.imagenet_preprocess(data.load_image(source))
    height, width = examples.images.shape[-2:]
    image = data.load_image(source, (int(height), int(width)))
    if examples.images.shape[1] == 1:  # the digits model reads greyscale
        image = image.mean(dim=0, keepdim=True)
    return image
