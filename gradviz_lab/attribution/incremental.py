"""Incremental occlusion: recompute, layer by layer, only what the window changed.

Hiding a window changes a few pixels; a 3x3 convolution then changes a slightly larger region of
its output, a 2x2 pooling a region half as large, and so on down the network. Recomputing the
whole network for every window position (the plain way) redoes mostly the clean image's work.
Following Krypton (Nakandala, Kumar & Papakonstantinou, SIGMOD 2019, "Incremental and
approximate inference for faster occlusion-based deep CNN explanations"), this module
computes the clean activations once and then, for each window position, only a box around the
changed region of each layer's output, read from the changed box of the layer below and, around
it, from the clean activations.

Where the changed region goes, per axis (rows and columns separately). A sliding-window layer
(convolution or pooling) with kernel k, stride s, padding p and dilation d computes output o from
inputs o*s - p + d*j, j = 0..k-1. If inputs [a, b) changed, the outputs that read one of them are

    first = ceil((a + p - d (k - 1)) / s),     last = floor((b - 1 + p) / s)      (clipped)

(the region's *projective field*, the dual of the receptive field). An element-wise layer (ReLU,
batch norm in eval mode, x - mean, ...) keeps the region as it is. All positions of a batch get
a box of the same size (the largest region of that layer), so the boxes stack into one batch.
To compute an output box of n rows the layer reads (n - 1) s + d (k - 1) + 1 input rows, from
row first * s - p on: the padding is applied by hand (zeros for a convolution, -inf for max
pooling) and the layer runs with padding 0. The numbers are the same sums as the full layer's,
so the result equals full recomputation (exactly in float64; in float32 up to the rounding of a
convolution algorithm that may differ with the size of its input).

Which models it applies to (a *chain* from the input) is read in ``occlusion_chain``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .occlusion_chain import (  # noqa: F401  (re-exported: the names lessons and tests import from here)
    Axis,
    Chain,
    NotAChain,
    OcclusionPath,
    Step,
    changed_regions,
    occlusion_path,
    trace_chain,
)


class CleanMap:
    """A clean map (B, C, H, W) kept for reading boxes: padded by hand with ``pad`` as far as
    any box reads beyond the map (``top``/``left``: rows/columns added before row 0), and stored
    channels last as one row of C values per position, (B H' W', C), so that reading a box is
    one ``index_select`` of whole rows."""

    def __init__(self, clean: torch.Tensor, pad: float = 0.0, top: int = 0, bottom: int = 0,
                 left: int = 0, right: int = 0):
        padded = F.pad(clean, (left, right, top, bottom), value=pad) if top + bottom + left + \
            right else clean
        self.height, self.width, self.channels = padded.shape[-2], padded.shape[-1], clean.shape[1]
        self.rows = padded.permute(0, 2, 3, 1).reshape(-1, self.channels).contiguous()
        self.top, self.left = top, left


def read_box(clean: CleanMap, images: torch.Tensor, first_r: torch.Tensor, n_r: int,
             first_c: torch.Tensor, n_c: int, box: torch.Tensor | None = None,
             box_r: torch.Tensor | None = None, box_c: torch.Tensor | None = None) -> torch.Tensor:
    """(N, C, n_r, n_c), channels last in memory: for each n, rows first_r[n] + [0, n_r) and
    columns first_c[n] + [0, n_c) of the clean map of image images[n] (its padding outside the
    map), overwritten by the changed box (N, C, r, q) where it lies (its first row/column:
    box_r[n], box_c[n]).

    One gather of the clean values, one indexed copy of the box: each n has its own offset, so
    the box cannot be sliced in; its values outside the requested rows go to one spare row of
    the buffer, which is left out."""
    device = first_r.device
    rows = first_r[:, None] + clean.top + torch.arange(n_r, device=device)
    cols = first_c[:, None] + clean.left + torch.arange(n_c, device=device)
    where = (images[:, None, None] * clean.height + rows[:, :, None]) * clean.width + cols[:, None, :]
    total = where.numel()
    values = clean.rows.new_empty(total + (box is not None), clean.channels)
    torch.index_select(clean.rows, 0, where.view(-1), out=values[:total])
    if box is not None:
        local_r = box_r[:, None] - first_r[:, None] + torch.arange(box.shape[-2], device=device)
        local_c = box_c[:, None] - first_c[:, None] + torch.arange(box.shape[-1], device=device)
        inside = (((local_r >= 0) & (local_r < n_r))[:, :, None]
                  & ((local_c >= 0) & (local_c < n_c))[:, None, :])
        n = torch.arange(len(box), device=device)[:, None, None]
        target = torch.where(inside, (n * n_r + local_r[:, :, None]) * n_c + local_c[:, None, :],
                             total)  # the spare row
        values.index_copy_(0, target.view(-1), box.permute(0, 2, 3, 1).reshape(-1, clean.channels))
    return values[:total].view(len(images), n_r, n_c, clean.channels).permute(0, 3, 1, 2)


@dataclass
class BoxPlan:
    """Where each layer's box lies, per axis, for every window position along that axis."""

    size: int          # rows in the box (the same for every position)
    first: torch.Tensor  # (positions,) first row of the box in the layer's output


def plan_axis(starts: torch.Tensor, window: int, axes: list[Axis | None],
              sizes: list[int], cap: float = 1.0) -> list[BoxPlan]:
    """For windows [start, start + window) of the input, the box of each layer's output along
    one axis: the changed region's projection through the layers, as a fixed-size box.

    cap < 1 (approximate, see ``approximate.py``): a sliding-window layer's box holds at most
    ceil(cap * size) rows, centred on the changed region; the region is cut to the box (the rows
    cut off keep their clean values) before it is projected to the next layer. A cap at least as
    large as every region changes nothing."""
    first, stop = starts.clone(), starts + window
    plans = []
    for axis, size in zip(axes, sizes):
        if axis is not None:
            first, stop = axis.changed_outputs(first, stop, size)
        n = int((stop - first).max().clamp(min=1).clamp(max=size))
        if axis is not None and n > math.ceil(cap * size):
            n = math.ceil(cap * size)
            centred = first + ((stop - first - n).clamp(min=0) // 2)
            box_first = centred.clamp(max=size - n)
            first, stop = torch.maximum(first, box_first), torch.minimum(stop, box_first + n)
        plans.append(BoxPlan(n, first.clamp(max=size - n)))
    return plans


# --- running it ------------------------------------------------------------------------------


class IncrementalOcclusion:
    """The scores of occluded copies, computed incrementally, for one model and one batch x.

    Made once per ``occlusion`` call: it runs the chain on the clean images (keeping the input
    of each sliding-window layer and the chain's output) and plans the boxes of every layer for
    every window position; ``outputs(images, row, col)`` then returns the model's output for
    the copies of x[images] occluded at window (row, col). cap < 1: approximate (``plan_axis``).
    """

    def __init__(self, chain: Chain, x: torch.Tensor, fill: torch.Tensor,
                 window: tuple[int, int], row_starts: torch.Tensor, col_starts: torch.Tensor,
                 cap: float = 1.0):
        self.chain, self.window = chain, window
        self.fill = CleanMap(fill)
        self.row_starts, self.col_starts = row_starts.to(x.device), col_starts.to(x.device)
        clean_inputs: list[torch.Tensor | None] = []
        value = x.clone()  # a copy: a first in-place layer must not reach the caller's x
        sizes_r, sizes_c = [], []
        for step in chain.steps:
            clean_inputs.append(value if step.rows is not None else None)
            value = step.full(value)
            sizes_r.append(value.shape[-2])
            sizes_c.append(value.shape[-1])
        self.output_shape = value.shape
        self.clean_output = CleanMap(value)
        self.row_plans = plan_axis(row_starts, window[0], [s.rows for s in chain.steps], sizes_r,
                                   cap)
        self.col_plans = plan_axis(col_starts, window[1], [s.cols for s in chain.steps], sizes_c,
                                   cap)
        self.row_plans = [BoxPlan(p.size, p.first.to(x.device)) for p in self.row_plans]
        self.col_plans = [BoxPlan(p.size, p.first.to(x.device)) for p in self.col_plans]
        # Each sliding-window layer's clean input, padded as far as its boxes read beyond it.
        self.clean_inputs: list[CleanMap | None] = []
        for i, (step, clean) in enumerate(zip(chain.steps, clean_inputs)):
            if step.rows is None:
                self.clean_inputs.append(None)
                continue
            (top, bottom), (left, right) = (
                overhang(axis, plan, size)
                for axis, plan, size in ((step.rows, self.row_plans[i], clean.shape[-2]),
                                         (step.cols, self.col_plans[i], clean.shape[-1])))
            self.clean_inputs.append(CleanMap(clean, step.pad, top, bottom, left, right))

    def values_per_position(self) -> int:
        """Roughly how many numbers one occluded copy holds at once (for the batch size)."""
        largest = self.output_shape[1:].numel()
        for i, step in enumerate(self.chain.steps):
            if step.rows is not None:
                channels = self.clean_inputs[i].channels
                read = step.rows.rows_read(self.row_plans[i].size) * step.cols.rows_read(
                    self.col_plans[i].size)
                out = self.row_plans[i].size * self.col_plans[i].size * channels
                largest = max(largest, read * channels + out)
        return largest

    def outputs(self, images: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        """The model's output for x[images] with the window at (row_starts[row], col_starts[col])
        set to the baseline: the window's box, then each layer's box, then the rest.

        Every position of a chunk gets the same box size per layer (the largest region of that
        layer, ``BoxPlan``), so the boxes stack into one batch. Boxes cut to each position's own
        region (smaller near the border: AlexNet's arithmetic bound rises from 2.0x to 2.9x) were
        measured slower on a CPU: positions of one size class run in groups of 2 to 4, and a
        convolution that small costs mostly its fixed overhead (AlexNet 10.5 s against 7.3-9.3 s,
        1 thread)."""
        height, width = self.window
        box_r, box_c = self.row_starts[row], self.col_starts[col]
        box = read_box(self.fill, images, box_r, height, box_c, width)
        for i, step in enumerate(self.chain.steps):
            if step.rows is None:
                box = step.box(box)
                continue
            plan_r, plan_c = self.row_plans[i], self.col_plans[i]
            out_r, out_c = plan_r.first[row], plan_c.first[col]
            read = read_box(self.clean_inputs[i], images,
                            out_r * step.rows.stride - step.rows.padding,
                            step.rows.rows_read(plan_r.size),
                            out_c * step.cols.stride - step.cols.padding,
                            step.cols.rows_read(plan_c.size), box, box_r, box_c)
            box, box_r, box_c = step.box(read), out_r, out_c
        zeros = torch.zeros_like(box_r)
        n_r, n_c = self.output_shape[-2:]
        end = read_box(self.clean_output, images, zeros, n_r, zeros, n_c, box, box_r, box_c)
        return self.chain.rest(end.contiguous())  # the rest may .view() it, as models do


def overhang(axis: Axis, plan: BoxPlan, size: int) -> tuple[int, int]:
    """How many rows the boxes of ``plan`` read before row 0 and after the last row of a map of
    ``size`` rows (its padding)."""
    first = plan.first * axis.stride - axis.padding
    last = first + axis.rows_read(plan.size) - 1
    return max(0, -int(first.min())), max(0, int(last.max()) - (size - 1))
