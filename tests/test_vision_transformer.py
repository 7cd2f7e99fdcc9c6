"""Vision transformers (issue 20): the shapes-vit lab model, token layers in the CAM pipeline,
channels-last layers refused, attention maps, attention rollout and gradient-weighted rollout.

References are written afresh here: the ViT's attention is recomputed from its parameters by a
forward pass of our own (not through hooks.attention_weights), and rollout is a plain loop."""

from __future__ import annotations

import dataclasses
import math
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from gradviz_lab import hooks, methods
from gradviz_lab.attribution import (
    attention_map,
    attention_per_layer,
    attention_rollout,
    gradcam,
    gradient_rollout,
    guided_backprop,
    integrated_gradients,
    layer_gradients,
    occlusion,
    saliency,
    smoothgrad,
)
from gradviz_lab.attribution.attention import gradient_rollout_matrix, rollout_matrix
from gradviz_lab.attribution.cam import cam_layers, default_cam_layer
from gradviz_lab.attribution.layouts import channels_last, tokens_to_maps
from gradviz_lab.data import make_shapes
from gradviz_lab.hooks import NoReLUWarning
from gradviz_lab.models import build_lab_model, lab_model_card, load_lab_model

torchvision = pytest.importorskip("torchvision")

LAST_LN_1 = "encoder.layers.encoder_layer_3.ln_1"


def random_vit(seed: int = 0, hybrid: bool = False) -> nn.Module:
    """A plain torchvision VisionTransformer of shapes-vit's sizes (linear patch embedding, as
    torchvision's pretrained ViTs), or shapes-vit itself (hybrid: a CNN trunk as patch embedding),
    with random weights everywhere, the zero-initialised head included (so every score depends on
    the image), in float64."""
    torch.manual_seed(seed)
    if hybrid:
        model = build_lab_model("shapes-vit")
    else:
        model = torchvision.models.VisionTransformer(64, 8, 4, 4, 64, 128, num_classes=5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model.double().eval()


def images(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- an independent forward pass and rollout ----------------------------------------------------


def attention_by_hand(vit, x) -> list[np.ndarray]:
    """Each block's attention (B, heads, T, T), from the parameters, by a forward pass written here."""
    with torch.no_grad():
        p = vit.patch_size
        patches = vit.conv_proj(x).flatten(2).transpose(1, 2)  # (B, N, D)
        tokens = torch.cat([vit.class_token.expand(len(x), -1, -1), patches], 1) + vit.encoder.pos_embedding
        assert patches.shape[1] == (64 // p) ** 2
        found = []
        for block in vit.encoder.layers:
            mha = block.self_attention
            h, d = mha.num_heads, mha.embed_dim // mha.num_heads
            y = block.ln_1(tokens)
            qkv = y @ mha.in_proj_weight.T + mha.in_proj_bias
            q, k, v = (t.reshape(len(x), -1, h, d).permute(0, 2, 1, 3) for t in qkv.split(mha.embed_dim, -1))
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1)
            found.append(a.numpy())
            mixed = (a @ v).permute(0, 2, 1, 3).reshape(len(x), -1, mha.embed_dim)
            tokens = tokens + mha.out_proj(mixed)
            tokens = tokens + block.mlp(block.ln_2(tokens))
        return found


def rollout_by_hand(attentions: list[np.ndarray]) -> np.ndarray:
    """Abnar & Zuidema, image by image, as a loop: average the heads, add the identity, renormalise
    the rows, multiply on the left."""
    batch, _, tokens, _ = attentions[0].shape
    result = np.zeros((batch, tokens - 1))
    for b in range(batch):
        joint = np.eye(tokens)
        for a in attentions:
            step = a[b].mean(axis=0) + np.eye(tokens)
            step = step / step.sum(axis=1, keepdims=True)
            joint = step @ joint
        result[b] = joint[0, 1:]
    return result


@pytest.mark.parametrize("hybrid", [False, True], ids=["plain", "hybrid"])
def test_attention_read_through_hooks_is_the_attention_computed_from_the_parameters(hybrid):
    vit, x = random_vit(hybrid=hybrid), images()
    ours = attention_per_layer(vit, x)
    assert list(ours) == [f"encoder.layers.encoder_layer_{i}.self_attention" for i in range(4)]
    for got, expected in zip(ours.values(), attention_by_hand(vit, x)):
        assert got.shape == (2, 4, 65, 65)
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
        np.testing.assert_allclose(got.sum(-1).numpy(), 1.0, atol=1e-12)  # rows are distributions


def test_rollout_equals_an_independent_rollout_written_afresh():
    vit, x = random_vit(), images()
    ours = attention_rollout(vit, x, upsample=False)  # (B, 1, 8, 8)
    expected = rollout_by_hand(attention_by_hand(vit, x)).reshape(2, 1, 8, 8)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-12)
    assert attention_rollout(vit, x).shape == (2, 1, 64, 64)


def test_rollout_and_gradient_rollout_by_hand_on_a_tiny_fixed_attention():
    a = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]]]], dtype=torch.float64)  # (B=1, heads=1, 2, 2)
    # one block: 0.5 A + 0.5 I = [[.75, .25], [0, 1]] (rows sum to 1 already)
    torch.testing.assert_close(rollout_matrix([a])[0], torch.tensor([[0.75, 0.25], [0.0, 1.0]], dtype=torch.float64))
    # two blocks: that matrix squared
    torch.testing.assert_close(rollout_matrix([a, a])[0], torch.tensor([[0.5625, 0.4375], [0.0, 1.0]], dtype=torch.float64))
    # heads are averaged *before* the product: a second head of the identity halves the mixing
    two_heads = torch.cat([a, torch.eye(2, dtype=torch.float64).view(1, 1, 2, 2)], 1)
    torch.testing.assert_close(rollout_matrix([two_heads])[0], torch.tensor([[0.875, 0.125], [0.0, 1.0]], dtype=torch.float64))
    # Chefer: (grad * A)^+ = [[0.5, 0], [0, 1]], R = I + that R_0 = [[1.5, 0], [0, 2]]
    grad = torch.tensor([[[[1.0, -1.0], [2.0, 1.0]]]], dtype=torch.float64)
    torch.testing.assert_close(gradient_rollout_matrix([a], [grad])[0], torch.tensor([[1.5, 0.0], [0.0, 2.0]], dtype=torch.float64))
    # two layers: R_2 = R_1 + W R_1 = [[1.5 + .75, 0], [0, 2 + 2]]
    torch.testing.assert_close(gradient_rollout_matrix([a, a], [grad, grad])[0],
                               torch.tensor([[2.25, 0.0], [0.0, 4.0]], dtype=torch.float64))


def test_gradient_rollout_uses_the_gradient_of_the_target_wrt_the_attention():
    vit, x = random_vit(), images(1)
    target = 2
    # d logit / d A_l in the whole network (A_l also shapes the later blocks' q and k): the
    # network written out again, each attention plus a zero offset whose gradient is that of A_l
    offsets = [torch.zeros(1, 4, 65, 65, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    p = vit.conv_proj(x).flatten(2).transpose(1, 2)
    tokens = torch.cat([vit.class_token.expand(1, -1, -1), p], 1) + vit.encoder.pos_embedding
    a_list = []
    for block, offset in zip(vit.encoder.layers, offsets):
        mha = block.self_attention
        h, d = mha.num_heads, mha.embed_dim // mha.num_heads
        q, k, v = ((block.ln_1(tokens) @ mha.in_proj_weight.T + mha.in_proj_bias)
                   .reshape(1, -1, 3, h, d).permute(2, 0, 3, 1, 4))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), -1) + offset
        a_list.append(a)
        tokens = tokens + mha.out_proj((a @ v).permute(0, 2, 1, 3).reshape(1, -1, mha.embed_dim))
        tokens = tokens + block.mlp(block.ln_2(tokens))
    logits = vit.heads(vit.encoder.ln(tokens)[:, 0])
    grads = torch.autograd.grad(logits[0, target], offsets)
    tokens = a_list[0].shape[-1]
    relevance = np.eye(tokens)
    for a, g in zip(a_list, grads):
        weighted = np.clip(a.detach().numpy()[0] * g.numpy()[0], 0, None).mean(axis=0)
        relevance = relevance + weighted @ relevance
    ours = gradient_rollout(vit, x, target, upsample=False)
    np.testing.assert_allclose(ours.numpy().ravel(), relevance[0, 1:], rtol=1e-8, atol=1e-12)
    # a class-dependent map, unlike rollout
    assert not torch.allclose(ours, gradient_rollout(vit, x, 0, upsample=False))


def test_attention_map_is_the_class_token_row_of_one_block_and_head():
    vit, x = random_vit(), images()
    by_hand = attention_by_hand(vit, x)
    one = attention_map(vit, x, block=1, head=3, upsample=False)
    np.testing.assert_allclose(one.numpy().reshape(2, 64), by_hand[1][:, 3, 0, 1:], atol=1e-12)
    mean = attention_map(vit, x, upsample=False)  # the last block, the mean over heads
    np.testing.assert_allclose(mean.numpy().reshape(2, 64), by_hand[-1][:, :, 0, 1:].mean(1), atol=1e-12)


def test_hooked_attention_gives_the_fused_kernels_outputs_and_is_removed_also_on_error():
    vit, x = random_vit(), images()
    with torch.no_grad():
        plain = vit(x)
        with hooks.attention_weights(vit) as records:
            hooked = vit(x)
    torch.testing.assert_close(hooked, plain, atol=1e-12, rtol=0)
    assert len(records) == 4
    mhas = [m for m in vit.modules() if isinstance(m, nn.MultiheadAttention)]
    assert not any("forward" in m.__dict__ for m in mhas)
    with pytest.raises(RuntimeError, match="boom"):
        with hooks.attention_weights(vit):
            raise RuntimeError("boom")
    assert not any("forward" in m.__dict__ for m in mhas)
    # a forward the user had put on the instance comes back as it was
    own = mhas[0].forward
    mhas[0].forward = own
    with hooks.attention_weights(vit):
        assert mhas[0].__dict__["forward"] is not own
    assert mhas[0].__dict__["forward"] is own


def mixed_state_vit():
    """A ViT in a state every call must leave alone: train mode with an eval block, a frozen
    parameter, grads set and None, a hook of the user's own."""
    vit = random_vit()
    vit.train()
    vit.encoder.layers.encoder_layer_1.eval()
    vit.conv_proj.weight.requires_grad_(False)
    vit.heads.head.weight.grad = torch.full_like(vit.heads.head.weight, 0.5)
    calls = []
    vit.encoder.layers.encoder_layer_2.register_forward_hook(lambda m, i, o: calls.append(1))
    return vit, calls


def _every_vit_call():
    return {
        "attention_map": lambda m, x: attention_map(m, x, block=0, head=1),
        "attention_rollout": lambda m, x: attention_rollout(m, x),
        "gradient_rollout": lambda m, x: gradient_rollout(m, x, 1),
        "gradcam": lambda m, x: gradcam(m, x, 1),
        "attention_per_layer": lambda m, x: attention_per_layer(m, x),
        "head out of range": lambda m, x: attention_map(m, x, head=4),
        "block out of range": lambda m, x: attention_map(m, x, block=4),
        "channels last reshape error": lambda m, x: gradcam(m, x, 1, layer=LAST_LN_1, reshape=lambda t: t),
    }


@pytest.mark.parametrize("call", list(_every_vit_call()))
def test_the_model_leaves_every_call_as_it_came_also_when_it_raises(call, model_state):
    vit, calls = mixed_state_vit()
    x = images()
    before = model_state.snapshot(vit)
    try:
        _every_vit_call()[call](vit, x)
    except (ValueError, TypeError):
        assert "range" in call or "error" in call
    else:
        assert "range" not in call and "error" not in call
    model_state.assert_same_state(before, model_state.snapshot(vit))
    assert not any("forward" in m.__dict__ for m in vit.modules())
    n = len(calls)
    vit(x)
    assert len(calls) == n + 1  # the user's hook still runs


def test_bad_input_gets_a_clear_error():
    vit, x = random_vit(), images()
    with pytest.raises(ValueError, match="head 4 is out of range: this layer has 4 heads"):
        attention_map(vit, x, head=4)
    with pytest.raises(ValueError, match="block -5 is out of range: the model has 4 attention layers"):
        attention_map(vit, x, block=-5)
    with pytest.raises(TypeError, match="head must be an int"):
        attention_map(vit, x, head=1.0)
    with pytest.raises(ValueError, match="empty list"):
        rollout_matrix([])
    with pytest.raises(ValueError, match="empty list"):
        gradient_rollout_matrix([], [])
    with pytest.raises(ValueError, match="head_fusion"):
        attention_rollout(vit, x, head_fusion="median")
    cnn = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(3))
    cnn(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="no nn.MultiheadAttention"):
        attention_rollout(cnn, torch.rand(1, 3, 8, 8))


class TokenNet(nn.Module):
    """A token model that is no torchvision ViT: 1 class token + a 2 x 3 grid of patch tokens."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Conv2d(3, 4, kernel_size=4, stride=4)  # 8 x 12 image -> 2 x 3 patches
        self.cls = nn.Parameter(torch.randn(1, 1, 4))
        self.mix = nn.Linear(4, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), self.embed(x).flatten(2).transpose(1, 2)], 1)
        tokens = torch.tanh(self.mix(tokens))
        return self.head(tokens.mean(1))


def test_a_non_square_token_grid_needs_reshape_and_works_with_it():
    net, x = TokenNet().eval(), torch.rand(2, 3, 8, 12)
    with pytest.raises(ValueError, match="no square grid.*reshape="):
        gradcam(net, x, 0, layer="mix")
    cam = gradcam(net, x, 0, layer="mix", upsample=False, reshape=lambda t: tokens_to_maps(t, (2, 3)))
    acts, grads = layer_gradients(net, x, "mix", 0)
    maps, dmaps = tokens_to_maps(acts, (2, 3)), tokens_to_maps(grads, (2, 3))
    expected = torch.relu((dmaps.mean((2, 3), keepdim=True) * maps).sum(1, keepdim=True))
    torch.testing.assert_close(cam, expected)


def test_tokens_to_maps_drops_the_class_token_and_lays_patches_row_major():
    tokens = torch.arange(2 * 7 * 2, dtype=torch.float64).view(2, 7, 2)  # B=2, 1 + 2*3 tokens, D=2
    maps = tokens_to_maps(tokens, (2, 3))
    assert maps.shape == (2, 2, 2, 3)
    # image 0, feature 1, patch (row 1, col 0) is token 1 + 3 = 4: value 4 * 2 + 1
    assert maps[0, 1, 1, 0] == 9.0
    assert maps[1, 0, 0, 0] == tokens[1, 1, 0]
    with pytest.raises(ValueError, match="2\\*3"):
        tokens_to_maps(tokens[:, :6], (2, 3))


def test_gradcam_on_vit_tokens_is_gradcam_of_the_patch_grid():
    vit, x = random_vit(), images()
    assert default_cam_layer(vit, x) == LAST_LN_1
    layers = cam_layers(vit, x)
    assert layers[0] == "conv_proj" and layers[-1] == LAST_LN_1  # nothing after the last attention
    hybrid = random_vit(hybrid=True)
    assert default_cam_layer(hybrid, x) == LAST_LN_1
    assert cam_layers(hybrid, x)[:2] == ["conv_proj.0.0", "conv_proj.0.1"]  # the trunk's maps come first
    acts, grads = layer_gradients(vit, x, LAST_LN_1, 3)
    maps, dmaps = acts[:, 1:].transpose(1, 2).reshape(2, 64, 8, 8), grads[:, 1:].transpose(1, 2).reshape(2, 64, 8, 8)
    expected = torch.relu((dmaps.mean((2, 3), keepdim=True) * maps).sum(1, keepdim=True))
    torch.testing.assert_close(gradcam(vit, x, 3, upsample=False), expected)
    # after the last attention only the class token reaches the head: the patch map is zero
    assert gradcam(vit, x, 3, layer="encoder.layers.encoder_layer_3", upsample=False).abs().max() == 0


def test_convnext_channels_last_layers_are_refused_and_defaults_are_channel_first():
    from torchvision.models import convnext_tiny

    torch.manual_seed(0)
    net = convnext_tiny(weights=None).eval()
    x = torch.rand(1, 3, 64, 64)
    shapes = {}
    with torch.no_grad(), hooks.forward_shapes(net) as recorded:
        net(x)
    shapes = dict(recorded)
    listed = cam_layers(net, x)
    widths = {96, 192, 384, 768}
    # at 64 x 64 a channels-first map is (1, C, s, s) with C a stage width; channels last (1, s, s, C)
    assert listed and all(shapes[n][1] in widths and shapes[n][2] == shapes[n][3] for n in listed)
    # between each CNBlock's two permutes: block.1 (the permute), .2 LayerNorm, .3 Linear, .4 GELU, .5 Linear
    last_inside = [n for n in shapes if re.search(r"\.block\.[1-5]$", n)]
    assert len(last_inside) == 90 and all(shapes[n][1] == shapes[n][2] for n in last_inside)
    assert not set(last_inside) & set(listed)
    assert all(channels_last(net, n) for n in last_inside)
    assert default_cam_layer(net, x) == "features.7.2"
    with pytest.raises(ValueError, match="channels last"):
        gradcam(net, x, 0, layer="features.7.2.block.2")
    fixed = gradcam(net, x, 0, layer="features.7.2.block.2", reshape=lambda a: a.permute(0, 3, 1, 2), upsample=False)
    assert fixed.shape == (1, 1, 2, 2)


def test_input_space_methods_work_on_the_vit_and_integrated_gradients_completes():
    vit, x = random_vit(), images()
    for method in (saliency, occlusion):
        out = method(vit, x, 1)
        assert out.shape[0] == 2 and torch.isfinite(out).all()
    assert smoothgrad(vit, x, 1, n_samples=3).shape == x.shape
    attributions = integrated_gradients(vit, x, 1, steps=64)
    with torch.no_grad():
        gain = vit(x)[:, 1] - vit(torch.zeros_like(x))[:, 1]
    np.testing.assert_allclose(attributions.sum((1, 2, 3)).numpy(), gain.numpy(), rtol=0.02)


def test_guided_backprop_on_a_gelu_network_warns_that_it_is_the_plain_gradient():
    vit, x = random_vit(), images()
    with pytest.warns(NoReLUWarning, match="GELU"):
        guided = guided_backprop(vit, x, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = saliency(vit, x, 1, reduce="max")
    torch.testing.assert_close(guided.abs().amax(1, keepdim=True), plain)
    # the hybrid has ReLUs in its trunk: the rule changes those only, and says so
    with pytest.warns(NoReLUWarning, match="GELU activations besides its nn.ReLU modules"):
        partial = guided_backprop(random_vit(hybrid=True), x, 1)
    assert partial.shape == x.shape


def test_the_registry_lists_the_attention_maps_outside_the_every_model_views():
    for name in ("attention", "attention-rollout", "gradient-rollout"):
        assert name in methods.names() and name not in methods.names("compare")
        function = methods.get(name).load()
        assert function(random_vit(), images(1), None, **methods.get(name).defaults).shape == (1, 1, 64, 64)


# --- the shipped model ---------------------------------------------------------------------------


def test_shipped_vit_is_a_torchvision_vit_at_least_95_percent_on_fresh_shapes():
    model = load_lab_model("shapes-vit")
    assert isinstance(model, torchvision.models.VisionTransformer)
    assert default_cam_layer(model, make_shapes(1, 777).images) == LAST_LN_1
    assert (model.patch_size, len(model.encoder.layers), model.hidden_dim) == (8, 4, 64)
    shapes = make_shapes(600, 777)  # a seed neither training (0) nor the card (12345) uses
    with torch.no_grad():
        accuracy = float((model(shapes.images).argmax(1) == shapes.labels).float().mean())
    assert accuracy >= 0.95
    card = lab_model_card("shapes-vit")
    assert card["accuracy"] >= 0.95 and abs(card["accuracy"] - accuracy) <= 0.03


def test_gradviz_train_shapes_vit_is_deterministic_and_loads_as_a_vit(tmp_path, monkeypatch):
    from gradviz_lab import train

    monkeypatch.setattr(train, "SHAPES_TEST_SIZE", 50)
    recipe = dataclasses.replace(train.RECIPES["shapes-vit"], epochs=1, n_train=64)
    cards = [train.train_lab_model("shapes-vit", recipe, tmp_path / run, progress=False) for run in ("a", "b")]
    assert cards[0]["weights_sha256"] == cards[1]["weights_sha256"]
    assert cards[0]["architecture"] == "ShapesViT"
    model = load_lab_model("shapes-vit", weights_dir=tmp_path / "a")
    assert isinstance(model, torchvision.models.VisionTransformer) and not model.training


def test_the_explain_recipes_of_the_attention_maps_are_the_functions():
    from gradviz_lab.widgets import recipes

    vit, x = random_vit(), images(1)
    expected = {
        "attention": attention_map(vit, x, 2, block=1, head=0),
        "attention-rollout": attention_rollout(vit, x, 2, head_fusion="max"),
        "gradient-rollout": gradient_rollout(vit, x, 2),
    }
    knobs = {"attention": {"block": 1, "head": 0}, "attention-rollout": {"head_fusion": "max"}}
    for method, reference in expected.items():
        result = recipes.explain(vit, x[0], method, 2, **knobs.get(method, {}))
        ((_, got),) = result.maps.items()
        np.testing.assert_allclose(np.asarray(got), reference[0, 0].numpy(), atol=1e-6)
