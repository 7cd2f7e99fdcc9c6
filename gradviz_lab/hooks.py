"""Every place where gradviz_lab touches module hooks, as context managers.

A hook is a function PyTorch calls when a module runs forward (or backward). Hooks are how we read
a layer's activations and change how a ReLU back-propagates. A hook that is never removed keeps
changing the model long after the demo that needed it, so each context manager here removes what
it added in a ``finally`` block, also when the code inside raises.

- ``preserved_state(model)``       the model leaves exactly as it came in (``ModelState``)
- ``training_mode(model, flag)``   train/eval flags set inside, every module's own restored
- ``captured_layer(model, name, module)`` a layer's outputs, kept so gradients can be taken w.r.t. them
- ``relu_backward_rule(model, rule)`` a new backward pass through every ``nn.ReLU``
- ``forward_shapes(model)``        the output shape of every module, in the order they finish
- ``forward_outputs(model)``       the output tensor of every module, in the order they finish
- ``running_modules(model)``       the modules whose forward pass is running (to find where it failed)
- ``attention_weights(model)``     every ``nn.MultiheadAttention``'s weights softmax(q k^T / sqrt(d)),
                                   per head, kept in the graph (vision transformers)
- ``count_hooks(model)``           how many module hooks are registered (for tests and lessons)
- ``outputs_replaced(modules, f)`` each module's output replaced by f(module, its input, output)
  (LRP's and DeepLIFT's rule nodes)
- ``gradient_arrivals(params, f)`` f(name, param) each time a parameter's ``.grad`` is written
- ``at_end_of_backward(f)``        f() once the running backward pass has finished
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ._warnings import warn

# The dicts in which nn.Module keeps its hooks (hook id -> function).
_HOOK_DICTS = (
    "_forward_pre_hooks",
    "_forward_hooks",
    "_backward_pre_hooks",
    "_backward_hooks",
)
_HOOK_SIDE_DICTS = (
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
)


def count_hooks(model: nn.Module) -> int:
    """Number of forward/backward hooks registered on the model and all its submodules."""
    return sum(len(getattr(m, d, {})) for m in model.modules() for d in _HOOK_DICTS)


# --- preserved_state -------------------------------------------------------------------------


@dataclass
class ModelState:
    """Everything an explanation could change in a model, as ``of(model)`` found it: the
    train/eval flag of every module, ``requires_grad`` of every parameter, every parameter's
    ``.grad`` (the same tensor, its values copied; None stays None), every buffer's values
    (BatchNorm statistics move when a model in train mode runs forward) and the ids of every
    module's hooks. ``restore()`` puts all of it back. (No method of the kit writes weights.)"""

    modes: list[tuple[nn.Module, bool]]
    requires_grad: list[tuple[nn.Parameter, bool]]
    grads: list[tuple[torch.Tensor, torch.Tensor] | None]
    buffers: list[tuple[torch.Tensor, torch.Tensor]]
    hook_ids: list[tuple[nn.Module, dict[str, set[int]]]]

    @classmethod
    def of(cls, model: nn.Module) -> ModelState:
        params = list(model.parameters())
        return cls(
            modes=_modes(model),
            requires_grad=[(p, p.requires_grad) for p in params],
            grads=[None if p.grad is None else _snapshot(p.grad) for p in params],
            buffers=[_snapshot(b) for b in model.buffers()],
            hook_ids=[(m, {d: set(getattr(m, d, {})) for d in _HOOK_DICTS}) for m in model.modules()],
        )

    def restore(self) -> int:
        """Put everything back; returns the number of hooks added since and now removed."""
        _restore_modes(self.modes)
        with torch.no_grad():
            for (p, flag), saved in zip(self.requires_grad, self.grads):
                p.requires_grad_(flag)
                p.grad = None if saved is None else _restored(*saved)
            for saved in self.buffers:
                _restored(*saved)
        return _remove_new_hooks(self.hook_ids)


@contextmanager
def preserved_state(model: nn.Module) -> Iterator[nn.Module]:
    """Restore, on exit, everything an explanation could change in the model (``ModelState``),
    also when the block raises. Module hooks added inside and not removed are removed, with a
    warning, since a leaked hook would silently change every later forward pass."""
    state = ModelState.of(model)
    try:
        yield model
    finally:
        leaked = state.restore()
        if leaked:
            warn(f"removed {leaked} hook(s) left on the model", RuntimeWarning)


@contextmanager
def training_mode(model: nn.Module, training: bool | None = None) -> Iterator[nn.Module]:
    """Every module's own train/eval flag restored on exit (not ``model.train(flag)``, which
    would give every submodule the top module's flag); with training=True or False, the block
    runs with ``model.train(training)``."""
    modes = _modes(model)
    if training is not None:
        model.train(training)
    try:
        yield model
    finally:
        _restore_modes(modes)


def _modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    return [(m, m.training) for m in model.modules()]


def _restore_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    for module, flag in modes:
        module.training = flag


def _snapshot(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return t, t.detach().clone()


def _restored(t: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    # Compare values, not version counters: batch norm updates its running statistics in place
    # without bumping their version. An untouched tensor is not written to, so a graph the user
    # built before the call can still back-propagate through it.
    if not torch.equal(t, values):
        t.copy_(values)
    return t


def _remove_new_hooks(hook_ids: list[tuple[nn.Module, dict[str, set[int]]]]) -> int:
    leaked = 0
    for module, before in hook_ids:
        for d, ids in before.items():
            hooks = getattr(module, d, {})
            for key in [k for k in hooks if k not in ids]:
                del hooks[key]
                for side in _HOOK_SIDE_DICTS:
                    getattr(module, side, {}).pop(key, None)
                leaked += 1
    return leaked


# --- reading a layer -------------------------------------------------------------------------


@dataclass
class LayerRecord:
    """What ``captured_layer`` saw: the layer's output at each call of the forward pass."""

    name: str
    outputs: list[torch.Tensor] = field(default_factory=list)


@contextmanager
def captured_layer(model: nn.Module, name: str, module: nn.Module) -> Iterator[LayerRecord]:
    """Keep each output of ``module`` so gradients can be taken with respect to it.

    The hook hands the rest of the network a *copy* of the output: an in-place operation after the
    layer (``ReLU(inplace=True)`` after a convolution) then changes the copy, and the kept tensor
    still holds the layer's own values, with gradients flowing back to it through the copy.
    """
    record = LayerRecord(name)

    def keep_output(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"layer {name!r} returns {type(output).__name__}, not a tensor")
        record.outputs.append(output)
        return output.clone()

    handle = module.register_forward_hook(keep_output)
    try:
        yield record
    finally:
        handle.remove()


@contextmanager
def _each_output(model: nn.Module, record: Callable[[str, torch.Tensor], None]) -> Iterator[None]:
    """Call ``record(name, output)`` for every tensor a submodule returns, as its forward ends."""
    handles = []
    for name, module in model.named_modules():
        if name:

            def hook(_m: nn.Module, _i: tuple, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor):
                    record(name, out)

            handles.append(module.register_forward_hook(hook))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def forward_shapes(model: nn.Module) -> Iterator[list[tuple[str, torch.Size]]]:
    """Record (name, output shape) of every submodule, in the order their forward passes end."""
    shapes: list[tuple[str, torch.Size]] = []
    with _each_output(model, lambda name, out: shapes.append((name, out.shape))):
        yield shapes


@contextmanager
def forward_outputs(model: nn.Module) -> Iterator[list[tuple[str, torch.Tensor, int]]]:
    """Record (name, output tensor, its version) of every submodule, in the order their forward
    passes end.

    The outputs are kept (not only their shapes), so ``is`` tells a container that returns its
    last child's output from a layer that makes a new tensor; the version (``Tensor._version``,
    raised by every in-place change) tells an in-place layer (``ReLU(inplace=True)``) from the
    layer whose output it overwrote. Use on one small input.
    """
    outputs: list[tuple[str, torch.Tensor, int]] = []
    with _each_output(model, lambda name, out: outputs.append((name, out, out._version))):
        yield outputs


@contextmanager
def running_modules(model: nn.Module) -> Iterator[list[tuple[str, nn.Module, tuple]]]:
    """The stack of submodules whose forward pass has started and not ended, as (name, module,
    shape of its first input). After an exception inside the forward pass, the last entry is the
    innermost layer that raised (a forward hook does not run when its module raises)."""
    running: list[tuple[str, nn.Module, tuple]] = []

    def enter(name: str) -> Callable[[nn.Module, tuple], None]:
        def hook(module: nn.Module, inputs: tuple) -> None:
            first = inputs[0] if inputs else None
            running.append((name, module, tuple(first.shape) if isinstance(first, torch.Tensor) else ()))

        return hook

    def leave(_module: nn.Module, _inputs: tuple, _output: object) -> None:
        running.pop()

    handles = []
    for name, module in model.named_modules():
        if name:
            handles += [module.register_forward_pre_hook(enter(name)),
                        module.register_forward_hook(leave)]
    try:
        yield running
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def attention_weights(model: nn.Module) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Record (name, A) for every ``nn.MultiheadAttention`` of the model each time it runs, with
    A = softmax(q k^T / sqrt(d)) of shape (B, heads, T, S): row t says how much token t reads of
    each token s, per head.

    torchvision's ViT asks its attention for no weights (``need_weights=False``: the fused kernel
    never forms A). Inside the block each attention module's ``forward`` is replaced, on the
    instance, by the same computation written out (``_explicit_attention``), so A exists, is
    recorded, and *is* the tensor the output is computed from: gradients w.r.t. it are the real
    ones (``torch.autograd.grad(score, A)``). On exit the instance attribute is removed again
    (or the one that was there put back), also when the block raises; the module's class,
    arguments and hooks are never touched. Outputs agree with the fused kernel up to float
    rounding.
    """
    records: list[tuple[str, torch.Tensor]] = []
    patched: list[tuple[nn.Module, object]] = []
    try:
        for name, module in model.named_modules():
            if isinstance(module, nn.MultiheadAttention):
                patched.append((module, module.__dict__.get("forward")))
                module.forward = _explicit_attention(module, lambda a, name=name: records.append((name, a)))
        yield records
    finally:
        for module, before in patched:
            del module.forward
            if before is not None:
                module.forward = before


def _explicit_attention(mha: nn.MultiheadAttention, record: Callable[[torch.Tensor], None]) -> Callable:
    """``mha.forward`` for batch-first attention without masks, with its weights formed and
    recorded: per head, A = softmax(q k^T / sqrt(d)), out = out_proj(concat_heads(A v))."""
    if not mha.batch_first or not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
        raise ValueError(
            "attention_weights reads batch-first attention with one input width, no bias_k/bias_v "
            "and no zero attention (as in torchvision's ViT); this MultiheadAttention is configured otherwise"
        )

    def forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise ValueError("attention_weights does not handle attention masks")
        batch, width, heads = query.shape[0], mha.embed_dim, mha.num_heads
        bias = (None, None, None) if mha.in_proj_bias is None else mha.in_proj_bias.chunk(3)
        split = lambda t: t.unflatten(-1, (heads, width // heads)).transpose(1, 2)  # noqa: E731  (B, h, T, d)
        q, k, v = (split(F.linear(t, w, b)) for t, w, b in zip((query, key, value), mha.in_proj_weight.chunk(3), bias))
        weights = torch.softmax(q @ k.transpose(-2, -1) / (width // heads) ** 0.5, dim=-1)
        record(weights)
        mixed = F.dropout(weights, mha.dropout, training=mha.training) @ v
        output = mha.out_proj(mixed.transpose(1, 2).reshape(batch, -1, width))
        if not need_weights:
            return output, None
        return output, weights.mean(dim=1) if average_attn_weights else weights

    return forward


# --- changing the backward pass of nn.ReLU ---------------------------------------------------

# rule(grad_output, relu_input) -> grad_input: what flows back through one ReLU.
ReluRule = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class _ReLUWithRule(torch.autograd.Function):
    """max(0, s) forward; ``rule(g, s)`` backward instead of the usual 1{s>0} g."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, rule: ReluRule) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(s)
        ctx.rule = rule
        return s.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (s,) = ctx.saved_tensors
        return ctx.rule(grad_output, s), None


class FunctionalReLUWarning(UserWarning):
    """The model calls relu as a function, which a hook on nn.ReLU modules cannot change."""


class NoReLUWarning(UserWarning):
    """The model has no ReLU at all (e.g. softplus activations): a ReLU rule changes nothing."""


_FUNCTIONAL_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu,
                     torch.Tensor.relu_}


class _FunctionalReLUSpy(TorchFunctionMode):
    """Counts relu calls made by the model's forward pass outside its nn.ReLU modules."""

    def __init__(self) -> None:
        super().__init__()
        self.inside_model = 0
        self.inside_relu_module = 0
        self.functional_calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _FUNCTIONAL_RELUS and self.inside_model and not self.inside_relu_module:
            self.functional_calls += 1
        return func(*args, **(kwargs or {}))


@contextmanager
def relu_backward_rule(model: nn.Module, rule: ReluRule) -> Iterator[None]:
    """Inside this block, back-propagation through every ``nn.ReLU`` of the model uses ``rule``.

    How: a forward pre-hook keeps the ReLU's input s (a copy when the ReLU works in place, since
    the ReLU is about to overwrite it), and a forward hook replaces the ReLU's output by
    ``_ReLUWithRule(s)``: the same values, a backward pass given by ``rule``. The original ReLU
    node is left out of the graph. This works with ``ReLU(inplace=True)`` and with one ReLU module
    called several times (each call keeps its own input).

    Limits, said plainly: only ``nn.ReLU`` modules are changed. A relu called as a function
    (``F.relu``, ``torch.relu``, ``x.relu()``) cannot be hooked; such calls are detected during
    the forward pass and reported with a ``FunctionalReLUWarning``, and through them the plain
    gradient flows. A model with no ReLU at all (no module, no functional call) gets a
    ``NoReLUWarning``: the block changes nothing. ReLU variants and other activations
    (``nn.ReLU6``, ``nn.LeakyReLU``, ``nn.Softplus``, ``clamp(min=0)``) are neither changed nor
    detected.
    """
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    kept_inputs: dict[int, list[torch.Tensor]] = {id(m): [] for m in relus}
    spy = _FunctionalReLUSpy()

    def keep_input(module: nn.Module, inputs: tuple) -> None:
        s = inputs[0]
        kept_inputs[id(module)].append(s.clone() if module.inplace else s)
        spy.inside_relu_module += 1

    def apply_rule(module: nn.Module, _inputs: tuple, _output: torch.Tensor) -> torch.Tensor:
        spy.inside_relu_module -= 1
        return _ReLUWithRule.apply(kept_inputs[id(module)].pop(), rule)

    # The spy watches the model's forward passes only: a function mode slows every torch call
    # it sees, and the backward pass and the code around the model need no watching.
    def enter_model(_module: nn.Module, _inputs: tuple) -> None:
        spy.inside_model += 1
        if spy.inside_model == 1:
            spy.__enter__()

    def leave_model(_module: nn.Module, _inputs: tuple, _output: object) -> None:
        if spy.inside_model == 1:
            spy.__exit__(None, None, None)
        spy.inside_model -= 1

    handles = [m.register_forward_pre_hook(keep_input) for m in relus]
    handles += [m.register_forward_hook(apply_rule) for m in relus]
    handles += [model.register_forward_pre_hook(enter_model),
                model.register_forward_hook(leave_model)]
    try:
        yield
    finally:
        if spy.inside_model:  # a forward pass raised: its leave_model hook did not run
            spy.__exit__(None, None, None)
            spy.inside_model = 0
        for handle in handles:
            handle.remove()
    if spy.functional_calls:
        warn(
            f"the model called relu as a function {spy.functional_calls} time(s) (F.relu, "
            "torch.relu or x.relu()); only nn.ReLU modules can be changed, so the plain gradient "
            "flowed through those calls. Use nn.ReLU modules for deconvnet/guided backprop.",
            FunctionalReLUWarning,
        )
    elif not relus:
        warn(
            f"{type(model).__name__} has no nn.ReLU module and calls no relu"
            f"{_activations_named(model)}, so the backward rule changed nothing: deconvnet and "
            "guided backprop are rules for ReLUs, and here they equal the plain gradient.",
            NoReLUWarning,
        )
    elif any(isinstance(m, nn.GELU) for m in model.modules()):  # a transformer with a ReLU part
        warn(
            f"{type(model).__name__} has GELU activations besides its nn.ReLU modules: the rule "
            "changes the ReLUs only, and through every GELU the plain gradient flows, so this is "
            "deconvnet/guided backprop on part of the network (its ReLU layers) only.",
            NoReLUWarning,
        )


def _activations_named(model: nn.Module) -> str:
    """" (its activations: GELU)" for a transformer's GELUs, else "" (lesson 06 prints the
    softplus model's message as it is)."""
    return " (its activations: GELU)" if any(isinstance(m, nn.GELU) for m in model.modules()) else ""


# --- watching gradients arrive (training diagnostics) -----------------------------------------


@contextmanager
def gradient_arrivals(
    parameters: list[tuple[str, torch.Tensor]],
    on_gradient: Callable[[str, torch.Tensor], None],
) -> Iterator[None]:
    """Call ``on_gradient(name, parameter)`` each time autograd has just written a parameter's
    ``.grad`` during a backward pass (``Tensor.register_post_accumulate_grad_hook``); removed on exit."""
    handles = [
        parameter.register_post_accumulate_grad_hook(lambda p, name=name: on_gradient(name, p))
        for name, parameter in parameters
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def at_end_of_backward(callback: Callable[[], None]) -> None:
    """Run ``callback`` once the backward pass now running has finished. Call it from inside a
    backward hook. (A private autograd call, the one PyTorch's own distributed training uses to
    learn that all gradients of a pass have arrived; there is no public equivalent.)"""
    torch.autograd.Variable._execution_engine.queue_callback(callback)


# --- replacing module outputs (the rule nodes of LRP and DeepLIFT) -----------------------------


@contextmanager
def outputs_replaced(
    modules: list[nn.Module],
    replace: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
) -> Iterator[None]:
    """Inside this block, each module's output is replaced by ``replace(module, a, output)``,
    where a is the module's first input as it was when the module started (a copy when the module
    works in place, as ``relu_backward_rule`` keeps it). A module called several times gets each
    call's own input. The hooks are removed on exit, also when the block raises."""
    kept: dict[int, list[torch.Tensor]] = {}

    def keep_input(module: nn.Module, inputs: tuple) -> None:
        a = inputs[0]
        kept.setdefault(id(module), []).append(a.clone() if getattr(module, "inplace", False) else a)

    def on_output(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return replace(module, kept[id(module)].pop(), output)

    handles = []
    for module in modules:
        handles += [module.register_forward_pre_hook(keep_input),
                    module.register_forward_hook(on_output)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
