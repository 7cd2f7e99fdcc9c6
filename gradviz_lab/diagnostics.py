"""Training diagnostics: does the gradient reach the first layers, and what does TensorBoard show?

Gradient flow. Back-propagation multiplies the gradient by one Jacobian per layer. Through a
sigmoid, whose slope is at most 1/4, with PyTorch's default initialisation, each layer shrinks it
by a factor of about 7, so ten layers from the loss the first layer's weights receive almost no
gradient and stop learning: the *vanishing gradient*. ReLU with He initialisation (slope 1
where active, weights scaled for it; with the default initialisation ReLU alone is not enough),
batch normalisation (rescales each layer) and residual connections (x + f(x): an identity path)
keep it alive. A per-layer plot of |gradient| shows this at a glance.

- ``deep_mlp(kind, depth)``          the demo networks: sigmoid, relu, batchnorm, residual
- ``record_gradient_flow(model)``    per-layer mean/max/norm of the gradient at every backward
- ``measure_gradient_flow(...)``     one backward on one batch, the model left as it was
- ``train_steps(...)``               a short training loop that records the gradient flow
- ``plot_gradient_flow(flows)``      the per-layer plot, several networks side by side

TensorBoard (``torch.utils.tensorboard``; needs the optional ``tensorboard`` package, only for
this lesson: ``pip install 'gradviz-lab[tensorboard]'``):

- ``summary_writer(log_dir)``, ``log_gradient_histograms``, ``log_saliency_images``
- ``train_with_tensorboard(...)``    losses, gradient histograms and saliency images per epoch
- ``tensorboard_command(log_dir)``   the shell command that opens the logs in a browser
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from . import hooks
from ._checks import (
    check_choice,
    check_finite,
    check_model,
    check_number,
    check_positive_int,
)

MLP_KINDS = ("sigmoid", "relu", "batchnorm", "residual")
STATISTICS = ("mean_abs", "max_abs", "norm")

# --------------------------------------------------------------------------------------------
# The demo networks
# --------------------------------------------------------------------------------------------


class ResidualBlock(nn.Module):
    """h -> h + act(W h + b): the identity path carries the gradient past the activation."""

    def __init__(self, width: int, activation: nn.Module) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.activation = activation

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.activation(self.linear(h))


def _activation(name: str) -> nn.Module:
    return nn.Sigmoid() if name == "sigmoid" else nn.ReLU()


def _hidden_layer(kind: str, act: str, fan_in: int, width: int, first: bool) -> list[nn.Module]:
    """One hidden layer of ``deep_mlp``; the first is never residual (its input is the image)."""
    if kind == "residual" and not first:
        return [ResidualBlock(width, _activation(act))]
    norm = [nn.BatchNorm1d(width)] if kind == "batchnorm" else []
    return [nn.Linear(fan_in, width), *norm, _activation(act)]


def deep_mlp(
    kind: str = "sigmoid",
    depth: int = 10,
    width: int = 64,
    *,
    activation: str | None = None,
    in_features: int = 28 * 28,
    num_classes: int = 10,
    init: str = "default",
    seed: int = 0,
) -> nn.Sequential:
    """A deep fully connected classifier for (B, 1, 28, 28) digits: ``depth`` hidden layers.

    kind        "sigmoid"    Linear -> Sigmoid, repeated: the gradient vanishes
                "relu"       Linear -> ReLU
                "batchnorm"  Linear -> BatchNorm1d -> activation
                "residual"   the first layer, then blocks h + activation(Linear(h))
    activation  for "batchnorm" / "residual": "relu" (default) or "sigmoid", to show that the fix,
                not the activation, is what keeps a sigmoid network's gradient alive.
    init        "default": PyTorch's own initialisation, under which a deep plain ReLU network's
                gradient also shrinks, more slowly; "kaiming": He et al. (2015) weights, std
                sqrt(2 / fan_in), made for ReLU, and zero biases.
    The weights come from ``seed`` (the caller's random state is left alone): the same arguments
    always give the same network. Returns an ``nn.Sequential`` in train mode.
    """
    check_choice(kind, "kind", MLP_KINDS)
    check_positive_int(depth, "depth")
    check_positive_int(width, "width")
    check_positive_int(in_features, "in_features")
    check_positive_int(num_classes, "num_classes")
    check_choice(init, "init", ("default", "kaiming"))
    if activation is not None and kind in ("sigmoid", "relu"):
        raise ValueError(
            f"activation is set by kind={kind!r}; pass activation only with 'batchnorm' or 'residual'"
        )
    act = (
        kind
        if kind in ("sigmoid", "relu")
        else check_choice(activation or "relu", "activation", ("relu", "sigmoid"))
    )
    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(seed)
        layers = [nn.Flatten(), *_hidden_layer(kind, act, in_features, width, first=True)]
        for _ in range(depth - 1):
            layers += _hidden_layer(kind, act, width, width, first=False)
        model = nn.Sequential(*layers, nn.Linear(width, num_classes))
        if init == "kaiming":
            for module in model.modules():
                if isinstance(module, nn.Linear):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    nn.init.zeros_(module.bias)
    return model


# --------------------------------------------------------------------------------------------
# Recording the gradient flow
# --------------------------------------------------------------------------------------------


@dataclass
class GradientFlow:
    """Per-layer gradient statistics, one row per backward pass, one column per parameter.

    For the gradient g of each recorded parameter (its ``.grad`` after the backward pass):
    ``mean_abs`` = mean |g|, ``max_abs`` = max |g|, ``norm`` = ||g||_2. Each is a (steps, layers)
    tensor; ``names`` are the parameters' names, input side first. NaN marks a parameter that
    got no gradient in that pass.
    """

    names: list[str]
    rows: list[dict[str, tuple[float, float, float]]] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.rows)

    def _column(self, index: int) -> torch.Tensor:
        nan = (float("nan"),) * 3
        values = [[row.get(name, nan)[index] for name in self.names] for row in self.rows]
        return torch.tensor(values, dtype=torch.float64).reshape(len(self.rows), len(self.names))

    @property
    def mean_abs(self) -> torch.Tensor:
        return self._column(0)

    @property
    def max_abs(self) -> torch.Tensor:
        return self._column(1)

    @property
    def norm(self) -> torch.Tensor:
        return self._column(2)

    def statistic(self, name: str) -> torch.Tensor:
        """``mean_abs``, ``max_abs`` or ``norm`` by name."""
        return getattr(self, check_choice(name, "statistic", STATISTICS))


def _recorded_parameters(model: nn.Module, weights_only: bool) -> list[tuple[str, nn.Parameter]]:
    """The parameters whose gradient is watched: by default one weight matrix/kernel per layer
    (biases and batch-norm scales, which are 1-D, are left out, as in the usual plot)."""
    chosen = [
        (name, p)
        for name, p in model.named_parameters()
        if p.requires_grad and (p.dim() > 1 or not weights_only)
    ]
    if not chosen:
        raise ValueError(
            "the model has no trainable parameters to record (requires_grad=False everywhere?)"
        )
    return chosen


def _gradient_statistics(grad: torch.Tensor) -> tuple[float, float, float]:
    g = grad.detach().abs().double()
    return g.mean().item(), g.max().item(), g.pow(2).sum().sqrt().item()


@contextmanager
def record_gradient_flow(model: nn.Module, weights_only: bool = True) -> Iterator[GradientFlow]:
    """Inside this block, every backward pass adds one row of per-layer gradient statistics.

        with record_gradient_flow(model) as flow:
            for images, labels in batches:
                optimizer.zero_grad()
                F.cross_entropy(model(images), labels).backward()   # one row recorded here
                optimizer.step()
        flow.mean_abs   # (steps, layers)

    How: a hook on each watched parameter runs right after autograd has written its ``.grad``
    (``hooks.gradient_arrivals``) and reads that ``.grad``; the row is closed when the backward
    pass ends (``hooks.at_end_of_backward``). The hooks are removed when the block ends, also on an
    exception. Without ``zero_grad`` between passes ``.grad`` accumulates, and so do the
    recorded numbers.
    """
    check_model(model)
    watched = _recorded_parameters(model, weights_only)
    flow = GradientFlow(names=[name for name, _ in watched])
    pending: dict[str, tuple[float, float, float]] = {}

    def close_row() -> None:
        if pending:
            flow.rows.append(dict(pending))
            pending.clear()

    def on_gradient(name: str, param: torch.Tensor) -> None:
        if name in pending:  # a pass that failed half-way never ran its callback
            close_row()
        if not pending:  # the first watched gradient of this backward pass:
            hooks.at_end_of_backward(close_row)  # its row is complete when the pass ends
        pending[name] = _gradient_statistics(param.grad)

    try:
        with hooks.gradient_arrivals(watched, on_gradient):
            yield flow
    finally:
        close_row()


def _check_batch(images: torch.Tensor, labels: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("images and labels must be torch tensors")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor, got dtype {images.dtype}")
    if labels.dim() != 1 or labels.dtype != torch.int64:
        raise TypeError(
            f"labels must be a 1-D int64 tensor, got shape {tuple(labels.shape)} and dtype {labels.dtype}"
        )
    if len(images) != len(labels) or len(images) == 0:
        raise ValueError(
            f"images ({len(images)}) and labels ({len(labels)}) must be non-empty and of equal length"
        )
    check_finite(images, "images")


def measure_gradient_flow(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    weights_only: bool = True,
) -> GradientFlow:
    """The gradient flow of one backward pass of ``loss_fn(model(images), labels)``.

    The model runs in whatever mode it is in (a fresh network is in train mode) and is left
    exactly as it was: parameters' ``.grad``, batch-norm statistics, modes. Returns a
    ``GradientFlow`` with one row.
    """
    check_model(model)
    _check_batch(images, labels)
    with hooks.preserved_state(model), torch.enable_grad():
        for p in model.parameters():
            p.grad = None  # measure this batch's gradient alone (restored on exit)
        with record_gradient_flow(model, weights_only) as flow:
            loss_fn(model(images), labels).backward()
    return flow


@dataclass
class TrainingRun:
    """What ``train_steps`` returns: the loss at every step and the recorded gradient flow."""

    losses: list[float]
    flow: GradientFlow


@contextmanager
def _train_mode(model: nn.Module) -> Iterator[None]:
    """model.train() inside the block; every module's own flag restored afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.train()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def _batches(n: int, batch_size: int, steps: int, seed: int) -> Iterator[torch.Tensor]:
    """``steps`` index batches drawn from seeded random permutations of range(n)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    start = 0
    for _ in range(steps):
        if start + batch_size > n:
            order, start = torch.randperm(n, generator=generator), 0
        yield order[start : start + batch_size]
        start += batch_size


def train_steps(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int = 300,
    *,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.9,
    seed: int = 0,
    weights_only: bool = True,
) -> TrainingRun:
    """Train with SGD for ``steps`` mini-batches of cross-entropy and record the gradient flow.

    The model's weights change (that is the point); its train/eval flags are restored and the
    parameters' ``.grad`` are cleared afterwards. Mini-batches come from a seeded permutation, so
    a run is reproducible. Returns ``TrainingRun(losses, flow)``.
    """
    check_model(model)
    _check_batch(images, labels)
    check_positive_int(steps, "steps")
    batch_size = min(check_positive_int(batch_size, "batch_size"), len(images))
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=check_number(lr, "lr", 0.0),
        momentum=check_number(momentum, "momentum", 0.0),
    )
    losses: list[float] = []
    with _train_mode(model), torch.enable_grad(), record_gradient_flow(model, weights_only) as flow:
        try:
            for index in _batches(len(images), batch_size, steps, seed):
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(images[index]), labels[index])
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
        finally:
            optimizer.zero_grad(set_to_none=True)
    return TrainingRun(losses, flow)


# --------------------------------------------------------------------------------------------
# The plot
# --------------------------------------------------------------------------------------------


def plot_gradient_flow(
    flows: GradientFlow | Mapping[str, GradientFlow],
    statistic: str = "mean_abs",
    font_size: float = 12.0,
) -> Figure:
    """Left: |gradient| per layer, input side first, averaged over the recorded steps (solid:
    ``statistic``, dashed: max |g|). Right: the first layer's ``statistic`` at every step.

    flows: one ``GradientFlow`` or ``{label: flow}`` to compare networks on the same axes.
    Log scale: a vanishing gradient is a straight line falling towards the input.
    """
    if isinstance(flows, GradientFlow):
        flows = {"model": flows}
    if not isinstance(flows, Mapping) or not all(
        isinstance(f, GradientFlow) for f in flows.values()
    ):
        raise TypeError("flows must be a GradientFlow or a dict {label: GradientFlow}")
    check_choice(statistic, "statistic", STATISTICS)
    empty = [label for label, f in flows.items() if f.steps == 0]
    if not flows or empty:
        raise ValueError(f"no backward pass recorded for {empty or 'any flow'}: nothing to plot")
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    per_layer, over_time = fig.subplots(1, 2)
    for colour, (label, flow) in zip(_colours(len(flows)), flows.items()):
        layer = np.arange(1, len(flow.names) + 1)
        values = np.nanmean(flow.statistic(statistic).numpy(), axis=0)
        per_layer.plot(layer, values, "o-", color=colour, label=f"{label}: {statistic}")
        if statistic != "max_abs":
            per_layer.plot(
                layer,
                np.nanmean(flow.max_abs.numpy(), axis=0),
                "--",
                color=colour,
                alpha=0.6,
                label=f"{label}: max_abs",
            )
        over_time.plot(
            np.arange(flow.steps),
            flow.statistic(statistic)[:, 0].numpy(),
            color=colour,
            label=label,
        )
    per_layer.set(
        xlabel="layer (input -> output)", ylabel=f"{statistic} of the gradient", yscale="log"
    )
    over_time.set(xlabel="training step", ylabel=f"first layer's {statistic}", yscale="log")
    per_layer.set_title("gradient per layer (mean over steps)", fontsize=font_size)
    over_time.set_title("first layer during training", fontsize=font_size)
    for ax in (per_layer, over_time):
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=font_size * 0.75)
    return fig


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    return [colormaps["tab10"](i % 10) for i in range(n)]


# --------------------------------------------------------------------------------------------
# TensorBoard
# --------------------------------------------------------------------------------------------

TENSORBOARD_MISSING = (
    "TensorBoard logging needs the optional 'tensorboard' package (lesson 08 only): "
    "pip install 'gradviz-lab[tensorboard]'   (or: pip install tensorboard)"
)


def summary_writer(log_dir: str | Path) -> Any:
    """A ``torch.utils.tensorboard.SummaryWriter`` writing event files into ``log_dir``.

    Imported here, not at the top of the module, because tensorboard is optional: without it
    this raises an ImportError that says what to install.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:  # torch raises this when the tensorboard package is missing
        raise ImportError(TENSORBOARD_MISSING) from error
    return SummaryWriter(log_dir=str(log_dir))


def tensorboard_command(log_dir: str | Path = "runs") -> str:
    """The shell command that serves the logs under ``log_dir`` at http://localhost:6006.

    In a notebook: ``%load_ext tensorboard`` then ``%tensorboard --logdir runs``.
    """
    return f"tensorboard --logdir {Path(log_dir).as_posix()}"


def log_gradient_histograms(
    writer: Any, model: nn.Module, step: int, prefix: str = "gradients"
) -> int:
    """One histogram of ``.grad`` per parameter (``prefix/name``); returns how many were written.

    Call it after ``backward()`` and before ``zero_grad``. A histogram collapsing onto zero, epoch
    after epoch, in the first layers is the vanishing gradient again, seen from another angle.
    """
    written = 0
    for name, p in model.named_parameters():
        if p.grad is not None:
            writer.add_histogram(f"{prefix}/{name}", p.grad.detach().cpu(), step)
            written += 1
    return written


def saliency_pictures(model: nn.Module, images: torch.Tensor, target: Any = None) -> torch.Tensor:
    """Saliency maps (Simonyan et al. 2014) of ``images`` as coloured (B, 3, H, W) pictures in
    [0, 1], one robust scale per map (``gradviz_lab.viz.colorize``), ready for ``add_images``."""
    from .attribution import saliency
    from .viz import colorize

    maps = saliency(model, images, target)[:, 0].cpu()
    return torch.stack(
        [torch.from_numpy(colorize(m.numpy(), signed=False)).permute(2, 0, 1) for m in maps]
    )


def log_saliency_images(
    writer: Any,
    model: nn.Module,
    images: torch.Tensor,
    step: int,
    target: Any = None,
    tag: str = "saliency",
) -> torch.Tensor:
    """Write the saliency pictures of ``images`` at ``step`` under ``tag``; returns them.

    The model is explained in eval mode (batch-norm running statistics, no dropout) and left in
    the mode it was in.
    """
    with hooks.preserved_state(model):
        model.eval()
        pictures = saliency_pictures(model, images, target)
    writer.add_images(tag, pictures, step, dataformats="NCHW")
    return pictures


def _accuracy(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512
) -> float:
    with hooks.preserved_state(model), torch.no_grad():
        model.eval()
        correct = sum(
            int((model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum())
            for i in range(0, len(images), batch_size)
        )
    return correct / len(images)


def train_with_tensorboard(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    log_dir: str | Path = "runs/digits",
    *,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 0.05,
    momentum: float = 0.9,
    seed: int = 0,
    probe_images: torch.Tensor | None = None,
) -> Path:
    """Train with SGD and log to TensorBoard what a practitioner watches while training.

    Written into ``log_dir`` (view with ``tensorboard_command(log_dir)``):
    - scalars  ``loss/train`` at every step, ``accuracy/train`` and the first and last layer's
      gradient norm ``grad_norm/<name>`` at the end of each epoch;
    - histograms ``gradients/<name>`` and ``weights/<name>`` at the end of each epoch;
    - images  ``inputs`` (once) and ``saliency`` of ``probe_images`` (default: the first 8
      training images) at the end of each epoch, to watch the explanations sharpen.
    Returns the log directory. Needs the optional tensorboard package.
    """
    check_model(model)
    _check_batch(images, labels)
    check_positive_int(epochs, "epochs")
    batch_size = min(check_positive_int(batch_size, "batch_size"), len(images))
    probe = images[:8] if probe_images is None else probe_images
    log_dir = Path(log_dir)
    writer = summary_writer(log_dir)
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=check_number(lr, "lr", 0.0),
        momentum=check_number(momentum, "momentum", 0.0),
    )
    watched = [name for name, _ in _recorded_parameters(model, weights_only=True)]
    generator = torch.Generator().manual_seed(seed)
    try:
        writer.add_images("inputs", probe.cpu(), 0, dataformats="NCHW")
        with _train_mode(model), torch.enable_grad():
            step = 0
            for epoch in range(epochs):
                batches = torch.randperm(len(images), generator=generator).split(batch_size)
                for number, index in enumerate(batches):
                    optimizer.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(model(images[index]), labels[index])
                    loss.backward()
                    writer.add_scalar("loss/train", loss.item(), step)
                    if number == len(batches) - 1:  # the epoch's last batch: its gradients
                        _log_epoch_gradients(writer, model, (watched[0], watched[-1]), epoch)
                    optimizer.step()
                    step += 1
                optimizer.zero_grad(set_to_none=True)
                writer.add_scalar("accuracy/train", _accuracy(model, images, labels), epoch)
                for name, p in model.named_parameters():
                    writer.add_histogram(f"weights/{name}", p.detach().cpu(), epoch)
                log_saliency_images(writer, model, probe, epoch)
    finally:
        optimizer.zero_grad(set_to_none=True)
        writer.close()
    return log_dir


def _log_epoch_gradients(
    writer: Any, model: nn.Module, norm_names: tuple[str, str], epoch: int
) -> None:
    log_gradient_histograms(writer, model, epoch)
    parameters = dict(model.named_parameters())
    for name in dict.fromkeys(norm_names):
        writer.add_scalar(f"grad_norm/{name}", parameters[name].grad.norm().item(), epoch)


# --------------------------------------------------------------------------------------------
# `gradviz gradient-flow`: the vanishing-gradient demo from the command line
# --------------------------------------------------------------------------------------------


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
    from .data import load_digits
    from .viz import save_png

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
