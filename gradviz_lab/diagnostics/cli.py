"""``gradviz gradient-flow``: the vanishing-gradient demo from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .demo_nets import MLP_KINDS, deep_mlp
from .gradient_flow import measure_gradient_flow, train_steps
from .plot import plot_gradient_flow
from .tensorboard import tensorboard_command, train_with_tensorboard


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--depth", type=int, default=10, help="hidden layers of each network (default 10)"
    )
    parser.add_argument(
        "--steps", type=int, default=300, help="SGD steps per network (default 300)"
    )
    parser.add_argument(
        "--n-images", type=int, default=4000, help="training digits to use (default all 4000)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("gradient_flow.png"), help="where to write the plot"
    )
    parser.add_argument("--force", action="store_true", help="replace the --out file if it exists")
    parser.add_argument(
        "--tensorboard",
        type=Path,
        default=None,
        metavar="DIR",
        help="also log each network to DIR/<kind> for TensorBoard (needs the tensorboard package)",
    )
    parser.add_argument(
        "--epochs", type=int, default=2, help="epochs of the TensorBoard runs (default 2)"
    )


def run(args: Any) -> int:
    """Train the four deep networks on the shipped digits, print each first layer's gradient
    norm on one fixed batch, save the gradient-flow plot (and TensorBoard logs if asked)."""
    from ..data import load_digits
    from ..viz import save_png

    if args.out.exists() and not args.force:  # said now, not after minutes of training
        print(f"gradviz gradient-flow: error: {args.out} exists; pass --force to replace it, "
              "or choose another --out", file=sys.stderr)
        return 2
    images, labels = load_digits("train")
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[
        : args.n_images
    ]
    images, labels = images[chosen], labels[chosen]
    batch = (images[:256], labels[:256])
    first = {
        kind: measure_gradient_flow(deep_mlp(kind, args.depth), *batch).norm[0, 0].item()
        for kind in MLP_KINDS
    }
    print(f"first-layer gradient norm at initialisation (depth {args.depth}, 256 digits):")
    for kind, norm in first.items():
        print(f"  {kind:10s} {norm:.3e}   ({norm / first['sigmoid']:.1e} x sigmoid)")
    runs = {
        kind: train_steps(deep_mlp(kind, args.depth), images, labels, args.steps)
        for kind in MLP_KINDS
    }
    for kind, result in runs.items():
        print(
            f"  {kind:10s} loss {result.losses[0]:.3f} -> {np.mean(result.losses[-20:]):.3f} after {args.steps} steps"
        )
    figure = plot_gradient_flow({k: r.flow for k, r in runs.items()})
    print(f"wrote {save_png(figure, args.out, overwrite=args.force)}")
    if args.tensorboard is not None:
        for kind in MLP_KINDS:
            train_with_tensorboard(
                deep_mlp(kind, args.depth),
                images,
                labels,
                args.tensorboard / kind,
                epochs=args.epochs,
            )
        print(
            f"TensorBoard logs in {args.tensorboard}; view them with: {tensorboard_command(args.tensorboard)}"
        )
    return 0
