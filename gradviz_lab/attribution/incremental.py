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

It applies to models whose first layers form a *chain* of such layers from the input (each
layer's only input is the previous one) that holds every convolution of the model: the lab
models, torchvision VGG and AlexNet. The chain is read from the model's ``torch.fx`` trace; the
rest of the network (pooling to a vector, the classifier) runs as usual on the full map at the
end of the chain. Anything else (a residual connection as in ResNet, an operation that mixes
positions such as a flip or an interpolation, a model fx cannot trace, hooks, batch norm or
dropout in train mode) falls back to full recomputation; ``occlusion_path`` says which and why.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from .. import hooks

# Layers whose output at a position depends only on the input at that position.
ELEMENTWISE_MODULES = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Softplus, nn.Sigmoid, nn.Tanh,
    nn.Identity, nn.Dropout, nn.Dropout2d, nn.BatchNorm2d,
)
ELEMENTWISE_FUNCTIONS = {
    F.relu, torch.relu, F.leaky_relu, F.gelu, F.silu, F.softplus, torch.sigmoid, torch.tanh,
    operator.add, operator.sub, operator.mul, operator.truediv, torch.add, torch.sub, torch.mul,
    torch.div,
}
ELEMENTWISE_METHODS = {"relu", "sigmoid", "tanh", "add", "sub", "mul", "div"}


@dataclass(frozen=True)
class OcclusionPath:
    """Which computation ``occlusion`` uses for a model, and why.

    incremental: True when only the changed regions are recomputed (this module), False for full
    recomputation of every occluded image. reason: one sentence. chain: the layers recomputed
    incrementally, in order (empty on the full path)."""

    incremental: bool
    reason: str
    chain: tuple[str, ...] = ()


@dataclass(frozen=True)
class Axis:
    """One axis (rows or columns) of a sliding-window layer."""

    kernel: int
    stride: int
    padding: int
    dilation: int

    def changed_outputs(self, first_in: torch.Tensor, stop_in: torch.Tensor, size: int):
        """Outputs [first, stop) that read one of the inputs [first_in, stop_in), clipped to the
        output size (its projective field). With dilation d > 1 an output at the edge of the
        interval may step over the changed rows between two taps: recomputing it costs a little
        and changes nothing."""
        k, s, p, d = self.kernel, self.stride, self.padding, self.dilation
        first = -((-(first_in + p - d * (k - 1))) // s)  # ceil division
        stop = (stop_in - 1 + p) // s + 1
        first, stop = first.clamp(0, size), stop.clamp(0, size)
        return first, torch.maximum(first, stop)

    def output_size(self, size: int, ceil_mode: bool = False) -> int:
        """Outputs of the layer on ``size`` inputs (torch's formula)."""
        span = size + 2 * self.padding - self.dilation * (self.kernel - 1) - 1
        outputs = (-(-span // self.stride) if ceil_mode else span // self.stride) + 1
        if ceil_mode and (outputs - 1) * self.stride >= size + self.padding:
            outputs -= 1  # the last window would start in the padding: torch drops it
        return outputs

    def rows_read(self, outputs: int) -> int:
        """How many input rows ``outputs`` consecutive outputs read."""
        return (outputs - 1) * self.stride + self.dilation * (self.kernel - 1) + 1


@dataclass
class Step:
    """One layer of the chain: ``full`` runs it on the whole map (as the model does), ``box`` on
    a box read with its padding already applied. rows/cols: Axis for a sliding-window layer,
    None for an element-wise one. pad: the value of the padding (sliding-window layers)."""

    name: str
    full: Callable[[torch.Tensor], torch.Tensor]
    box: Callable[[torch.Tensor], torch.Tensor]
    rows: Axis | None = None
    cols: Axis | None = None
    pad: float = 0.0


class NotAChain(Exception):
    """Why the model is not a chain of local layers (the reason ``occlusion_path`` reports)."""


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def window_step(name: str, module: nn.Module) -> Step:
    """A Step for a convolution or a pooling layer, or NotAChain saying why it is not one."""
    if isinstance(module, nn.Conv2d):
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            raise NotAChain(f"layer {name!r} pads with {module.padding!r}/{module.padding_mode!r}, "
                            "not with numbers of zeros")
        geometry = zip(module.kernel_size, module.stride, module.padding, module.dilation)
        rows, cols = (Axis(*g) for g in geometry)
        conv = lambda t: F.conv2d(t, module.weight, module.bias, module.stride, 0, module.dilation,
                                  module.groups)
        return Step(name, module, conv, rows, cols, 0.0)
    if isinstance(module, nn.MaxPool2d):
        if module.return_indices:
            raise NotAChain(f"layer {name!r} returns indices")
        k, s, p, d = (_pair(v) for v in (module.kernel_size, module.stride or module.kernel_size,
                                          module.padding, module.dilation))
        rows, cols = Axis(k[0], s[0], p[0], d[0]), Axis(k[1], s[1], p[1], d[1])
        pool = lambda t: F.max_pool2d(t, k, s, 0, d)  # -inf padding, applied when reading the box
        return Step(name, module, pool, rows, cols, float("-inf"))
    if isinstance(module, nn.AvgPool2d):
        k, s, p = (_pair(v) for v in (module.kernel_size, module.stride or module.kernel_size,
                                       module.padding))
        if module.ceil_mode or (max(p) > 0 and not module.count_include_pad):
            raise NotAChain(f"layer {name!r} divides by a count that changes near the border")
        rows, cols = Axis(k[0], s[0], p[0], 1), Axis(k[1], s[1], p[1], 1)
        pool = lambda t: F.avg_pool2d(t, k, s, 0, divisor_override=module.divisor_override)
        return Step(name, module, pool, rows, cols, 0.0)
    raise NotAChain(f"layer {name!r} ({type(module).__name__}) mixes positions in a way "
                    "the incremental engine does not follow")


def elementwise_step(gm: fx.GraphModule, node: fx.Node, previous: fx.Node) -> Step | None:
    """A Step for an element-wise node whose only varying input is ``previous``; None if the
    node is not element-wise (constants must not vary over space: a (1, C, 1, 1) mean is fine)."""
    if node.op == "call_module":
        module = gm.get_submodule(node.target)
        if not isinstance(module, ELEMENTWISE_MODULES) or node.kwargs or len(node.args) != 1:
            return None
        if isinstance(module, nn.BatchNorm2d) and (module.training or module.running_mean is None):
            raise NotAChain(f"batch norm {node.target!r} is in train mode (it mixes the images)")
        if isinstance(module, (nn.Dropout, nn.Dropout2d)) and module.training:
            raise NotAChain(f"dropout {node.target!r} is in train mode (random)")
        return Step(str(node.target), module, module)
    if node.op == "call_function" and node.target in ELEMENTWISE_FUNCTIONS:
        function = node.target
    elif node.op == "call_method" and node.target in ELEMENTWISE_METHODS:
        function = getattr(torch.Tensor, node.target)
    else:
        return None
    constants = {}
    for i, arg in enumerate(node.args):
        if arg is previous:
            continue
        value = _constant(gm, arg)
        if value is None:
            return None
        constants[i] = value
    if len(constants) != len(node.args) - 1:
        return None
    if any(isinstance(v, fx.Node) for v in node.kwargs.values()):
        return None

    def apply(t: torch.Tensor) -> torch.Tensor:
        args = [constants.get(i, t) for i in range(len(node.args))]
        return function(*args, **node.kwargs)

    return Step(node.name, apply, apply)


def _constant(gm: fx.GraphModule, arg) -> object | None:
    """A number, or a buffer/parameter constant over space (fx get_attr); None otherwise."""
    if isinstance(arg, (int, float)):
        return arg
    if isinstance(arg, fx.Node) and arg.op == "get_attr":
        value = gm
        for part in arg.target.split("."):
            value = getattr(value, part)
        if isinstance(value, torch.Tensor) and (value.dim() < 2 or value.shape[-2:] == (1, 1)):
            return value
    return None


@dataclass
class Chain:
    steps: list[Step]
    rest: fx.GraphModule  # the network after the chain, taking the chain's last output


def trace_chain(model: nn.Module) -> Chain:
    """The chain of local layers from the input, and the rest of the network; NotAChain if the
    model is not of that form."""
    if hooks.count_hooks(model):
        raise NotAChain(f"the model has {hooks.count_hooks(model)} hook(s) registered, which a "
                        "traced copy would skip")
    try:
        gm = fx.symbolic_trace(model)
    except Exception as error:  # noqa: BLE001 - any tracing failure means: use the full path
        raise NotAChain(f"torch.fx cannot trace the model ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:120]})") from None
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise NotAChain(f"the model takes {len(placeholders)} inputs, not one")
    steps: list[Step] = []
    node, why_stop = placeholders[0], ""
    in_chain = {node}
    while True:
        users = list(node.users)
        if len(users) != 1:
            why_stop = f"{node.name!r} feeds {len(users)} layers (a branch or a skip connection)"
            break
        user = users[0]
        if user.op == "call_module" and isinstance(gm.get_submodule(user.target),
                                                   (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            if len(user.args) != 1 or user.kwargs:
                break
            step = window_step(str(user.target), gm.get_submodule(user.target))
        else:
            step = elementwise_step(gm, user, node)
            if step is None:
                why_stop = f"{user.format_node()} is not a convolution, pooling or element-wise layer"
                break
        steps.append(step)
        node = user
        in_chain.add(node)
    convs = [n.target for n in gm.graph.nodes if n.op == "call_module" and n not in in_chain
             and isinstance(gm.get_submodule(n.target), nn.Conv2d)]
    convs += [n.name for n in gm.graph.nodes if n.op == "call_function"
              and n.target in (F.conv2d, torch.conv2d)]
    if convs:
        raise NotAChain(f"convolution {convs[0]!r} is not in a chain from the input: {why_stop}")
    if not any(step.rows for step in steps):
        raise NotAChain(f"no convolution or pooling layer follows the input: {why_stop}")
    return Chain(steps, rest_of_network(gm, in_chain, node))


def rest_of_network(gm: fx.GraphModule, chain: set[fx.Node], end: fx.Node) -> fx.GraphModule:
    """A GraphModule running the nodes after the chain, given the chain's last output."""
    rest = fx.Graph()
    env = {end: rest.placeholder("chain_output")}
    for node in gm.graph.nodes:
        if node not in chain:
            env[node] = rest.node_copy(node, lambda n: env[n])
    return fx.GraphModule(gm, rest)


# --- propagating the changed boxes ---------------------------------------------------------------


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


def changed_regions(model: nn.Module, image_size: tuple[int, int], window: tuple[int, int],
                    start: tuple[int, int]) -> list[tuple[str, tuple[int, int], tuple[int, int],
                                                          tuple[int, int]]]:
    """Where hiding the window at ``start`` (row, column) changes each sliding-window layer's
    output: (layer, its map size (h, w), changed rows [r0, r1), changed columns [c0, c1)), in
    order, by the projection of ``Axis.changed_outputs`` alone (no forward pass). The model must
    be a chain (``occlusion_path(model).incremental``)."""
    steps = trace_chain(model).steps
    (height, width), regions = image_size, []
    rows = (torch.tensor([start[0]]), torch.tensor([start[0] + window[0]]))
    cols = (torch.tensor([start[1]]), torch.tensor([start[1] + window[1]]))
    for step in steps:
        if step.rows is None:
            continue
        ceil_mode = bool(getattr(step.full, "ceil_mode", False))
        height, width = step.rows.output_size(height, ceil_mode), step.cols.output_size(width,
                                                                                       ceil_mode)
        rows, cols = step.rows.changed_outputs(*rows, height), step.cols.changed_outputs(*cols, width)
        regions.append((step.name, (height, width), (int(rows[0]), int(rows[1])),
                        (int(cols[0]), int(cols[1]))))
    return regions


def occlusion_path(model: nn.Module, incremental: bool = True) -> OcclusionPath:
    """Which computation ``occlusion(model, ..., incremental=incremental)`` uses, and why."""
    if not incremental:
        return OcclusionPath(False, "incremental=False: every occluded image is recomputed")
    try:
        chain = trace_chain(model)
    except NotAChain as why:
        return OcclusionPath(False, f"full recomputation: {why}")
    names = tuple(step.name for step in chain.steps)
    return OcclusionPath(True, f"incremental: {len(names)} layers from the input form a chain of "
                         "convolution, pooling and element-wise layers", names)
