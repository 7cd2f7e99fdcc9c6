"""Reading what the layers compute: a layer's outputs, every module's shape or output, the
modules running, and the attention weights of a transformer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

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
