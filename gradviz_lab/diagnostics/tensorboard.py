"""TensorBoard logging (``torch.utils.tensorboard``; needs the optional ``tensorboard`` package,
only for lesson 08): losses, gradient histograms and saliency images while training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import hooks
from .._checks import check_model, check_number, check_positive_int
from ..evaluate.report import accuracy
from ..training_loop import train_batches
from .gradient_flow import _check_batch, _recorded_parameters


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
    from ..attribution import saliency
    from ..viz import colorize

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
    step = 0  # counts the steps of every epoch
    try:
        writer.add_images("inputs", probe.cpu(), 0, dataformats="NCHW")
        for epoch in range(epochs):
            order = torch.randperm(len(images), generator=generator).split(batch_size)

            def log_step(number: int, loss: torch.Tensor, epoch: int = epoch, first: int = step,
                         last: int = len(order) - 1) -> None:
                writer.add_scalar("loss/train", loss.item(), first + number)
                if number == last:  # the epoch's last batch: its gradients
                    _log_epoch_gradients(writer, model, (watched[0], watched[-1]), epoch)

            train_batches(model, ((images[i], labels[i]) for i in order), optimizer, before_step=log_step)
            step += len(order)
            writer.add_scalar("accuracy/train", accuracy(model, images, labels, batch_size=512), epoch)
            for name, p in model.named_parameters():
                writer.add_histogram(f"weights/{name}", p.detach().cpu(), epoch)
            log_saliency_images(writer, model, probe, epoch)
    finally:
        writer.close()
    return log_dir


def _log_epoch_gradients(
    writer: Any, model: nn.Module, norm_names: tuple[str, str], epoch: int
) -> None:
    log_gradient_histograms(writer, model, epoch)
    parameters = dict(model.named_parameters())
    for name in dict.fromkeys(norm_names):
        writer.add_scalar(f"grad_norm/{name}", parameters[name].grad.norm().item(), epoch)
