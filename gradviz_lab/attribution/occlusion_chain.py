"""Which models incremental occlusion applies to: a *chain* of window and element-wise layers.

It applies to models whose first layers form a *chain* of such layers from the input (each
layer's only input is the previous one) that holds every convolution of the model: the lab
models, torchvision VGG and AlexNet. The chain is read from the model's ``torch.fx`` trace; the
rest of the network (pooling to a vector, the classifier) runs as usual on the full map at the
end of the chain. Anything else (a residual connection as in ResNet, an operation that mixes
positions such as a flip or an interpolation, a model fx cannot trace, hooks, batch norm or
dropout in train mode) falls back to full recomputation; ``occlusion_path`` says which and why.
"""

from __future__ import annotations

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
