"""Occlusion sensitivity (Zeiler & Fergus 2014, "Visualizing and understanding convolutional
networks"): hide a patch, see how much the score drops."""

from __future__ import annotations

import torch
from torch import nn

from .. import hooks
from .._boundary import public
from .._checks import (
    check_batch_memory,
    check_flag,
    check_pair,
    check_positive_int,
)
from .._forward import checked_output, run_model
from ..targets import Target
from ._common import chunks, copies_of, finite_map
from .approximate import OcclusionApproximation, check_approximation, drill_down_chunks
from .baselines import make_baseline
from .incremental import IncrementalOcclusion, NotAChain, trace_chain

# Memory one batch of occluded copies may fill while a layer runs: about the size of a CPU's
# last-level cache times a few (larger batches only add cache misses on a CPU: measured, VGG16
# runs at the same speed from batch 1 to 16, ResNet-18 15% slower at 64 than at 16), and a
# quarter of a GiB on a GPU, where larger batches keep the device busy.
BATCH_BYTES = {"cpu": 64 * 2**20, "cuda": 2**30}
MAX_AUTO_BATCH = {"cpu": 64, "cuda": 256}


def auto_batch_size(values_per_copy: int, x: torch.Tensor) -> int:
    """How many occluded copies to run at once when the caller does not say: as many as fit
    BATCH_BYTES for the device when each copy holds ``values_per_copy`` numbers at once
    (its largest layer output and that layer's input), between 1 and MAX_AUTO_BATCH."""
    kind = "cuda" if x.device.type == "cuda" else "cpu"
    fits = BATCH_BYTES[kind] // max(1, values_per_copy * x.element_size())
    return int(min(MAX_AUTO_BATCH[kind], max(1, fits)))


def window_starts(size: int, window: int, stride: int) -> torch.Tensor:
    """First row (or column) of each window: 0, stride, 2 stride, ..., plus size - window when
    the stride skips the last rows, so that the last rows are covered too (with stride <= window
    every pixel is covered by at least one window; a longer stride leaves gaps)."""
    check_positive_int(size, "size")
    check_positive_int(window, "window")
    check_positive_int(stride, "stride")
    if window > size:
        raise ValueError(f"window {window} is larger than the size {size}")
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return torch.tensor(starts)


def window_covers(size: int, window: int, stride: int) -> torch.Tensor:
    """(positions, size) 0/1 matrix: does the window at each position cover each row?"""
    starts = window_starts(size, window, stride).view(-1, 1)
    pixels = torch.arange(size).view(1, -1)
    return ((pixels >= starts) & (pixels < starts + window)).float()


@public
def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    window: int | tuple[int, int] = (8, 8),
    stride: int | tuple[int, int] = 2,
    baseline: str | float | torch.Tensor = 0.0,
    batch_size: int | None = None,
    per_position: bool = False,
    incremental: bool = True,
    approximate: OcclusionApproximation | None = None,
) -> torch.Tensor:
    """How much the target score drops when a window of the image is replaced by the baseline.

        d_b(p) = y_c(x_b) - y_c(x_b with window p set to the baseline)
        map_b(i, j) = mean of d_b(p) over the windows p that cover pixel (i, j)

    window (h, w) and stride (an int or (sh, sw)) in pixels; the lecture uses a 32x32 window and
    stride 2 on 224x224 images. baseline: what fills the window, a name ("zeros", "black",
    "grey", "mean", "blur"), a value or an image (C, H, W) / (B, C, H, W): see
    ``gradviz_lab.attribution.baselines``. Pixels that no window covers (stride > window) get 0. The occluded
    copies run batch_size at a time under ``torch.inference_mode`` (no graph is built).
    Returns (B, 1, H, W), or with per_position=True the raw d_b(p) as (B, 1, rows, cols), one
    value per window position (see ``window_starts``).

    incremental=True (the default) recomputes, for each window, only the region of each layer
    that the window changes, starting from the clean image's activations (see
    ``gradviz_lab.attribution.incremental``): the same result, several times faster, for models
    whose convolutions form a chain from the input (the lab models, VGG, AlexNet); other models
    (ResNet, ...) are recomputed in full. ``occlusion_path(model)`` says which path runs and why.
    batch_size=None picks the number of copies per batch from the model's layer sizes and the
    device (``auto_batch_size``).

    approximate=None (the default) computes the exact map; an ``OcclusionApproximation(cap=...,
    coarse=..., refine=...)`` trades accuracy for speed: a cap on the region each layer
    recomputes, and a coarse-to-fine drill-down over the window positions
    (``gradviz_lab.attribution.approximate``).
    """
    (h, w), (sh, sw) = check_pair(window, "window"), check_pair(stride, "stride")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    check_flag(per_position, "per_position")
    check_flag(incremental, "incremental")
    height, width = x.shape[-2:]
    if h > height or w > width:
        raise ValueError(f"window {(h, w)} is larger than the image {(height, width)}")
    fill = make_baseline(x, baseline)
    # The window at position (p, q) covers pixel (i, j) iff rows[p, i] * cols[q, j] = 1.
    rows = window_covers(height, h, sh).to(x.device, x.dtype)
    cols = window_covers(width, w, sw).to(x.device, x.dtype)
    batch, n_positions = len(x), len(rows) * len(cols)
    if batch_size is not None:
        check_batch_memory(batch * n_positions, x, batch_size, "occluded copies")
    chain, why_full = None, "incremental=False"
    if incremental:
        try:
            chain = trace_chain(model)
        except NotAChain as why:
            chain, why_full = None, str(why)  # occlusion_path(model) says it too
    approximate = check_approximation(approximate, None if chain is not None else why_full)
    # made outside inference mode: an ordinary tensor, that callers may later change in place
    drops = torch.empty(batch * n_positions, dtype=x.dtype, device=x.device)
    with torch.inference_mode():
        with hooks.forward_shapes(model) as shapes:  # the layer sizes, for the batch size
            target, clean = target.fixed_with_scores(model, x)
        if chain is not None:
            engine = IncrementalOcclusion(chain, x, fill, (h, w), window_starts(height, h, sh),
                                          window_starts(width, w, sw),
                                          cap=approximate.cap if approximate else 1.0)
            per_copy = engine.values_per_position()
        else:
            per_copy = 2 * max((s[1:].numel() for _, s in shapes if len(s) > 1), default=1)
        if batch_size is None:
            batch_size = auto_batch_size(per_copy, x)
            check_batch_memory(batch * n_positions, x, batch_size, "occluded copies")
        items = chunks(batch * n_positions, batch_size)  # item = (image, position)
        if approximate is not None and approximate.drills_down:
            items = drill_down_chunks(approximate, drops, batch, len(rows), len(cols), batch_size)
        for chunk in items:
            chunk = chunk.to(x.device)
            images, position = chunk // n_positions, chunk % n_positions
            row, col = position // len(cols), position % len(cols)
            with copies_of(images, "occluded copies"):
                if chain is not None:
                    output = checked_output(model, engine.outputs(images, row, col))
                else:
                    covered = rows[row].unsqueeze(2) * cols[col].unsqueeze(1)  # (chunk, H, W) 0/1
                    occluded = torch.where(covered.unsqueeze(1) > 0, fill[images], x[images])
                    output = run_model(model, occluded)
                scores = target.for_copies(images)(output)
            drops[chunk] = clean[images] - scores
    drops = finite_map(drops, "occlusion").view(batch, len(rows), len(cols))
    if per_position:
        return drops.unsqueeze(1)
    # Sum of the drops of the windows covering each pixel, divided by how many windows do
    # (a stride longer than the window leaves pixels that no window covers: they get 0).
    total = rows.T @ drops @ cols
    count = rows.T @ torch.ones_like(drops[0]) @ cols
    return finite_map((total / count.clamp(min=1)).unsqueeze(1), "occlusion")
