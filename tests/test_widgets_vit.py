"""The lesson 10 dashboard (gradviz_lab.widgets.vit), driven headlessly: the map on show is the
package function's map for the settings on show, each knob a method has changes it (and a knob it
has not is greyed out and changes nothing), a setting a method cannot follow is an error in the
dashboard, and the model is left exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_same_state, snapshot
from torch import nn
from torchvision.models import VisionTransformer

from gradviz_lab import attribution, viz
from gradviz_lab.widgets import vit_dashboard
from gradviz_lab.widgets.vit import MEAN_OVER_HEADS, VIT_METHODS, VitDashboard

CLASSES = ["a", "b", "c"]


def tiny_vit(seed: int = 0) -> VisionTransformer:
    """3 blocks of 2 heads on a 3x3 grid of 4-pixel patches; query/key weights scaled up so that
    the heads attend sharply and differently, and a random classifier (torchvision starts it at
    zero: every gradient would be zero)."""
    torch.manual_seed(seed)
    model = VisionTransformer(12, 4, num_layers=3, num_heads=2, hidden_dim=8, mlp_dim=16,
                              num_classes=3)
    with torch.no_grad():
        for block in model.encoder.layers:
            block.self_attention.in_proj_weight.mul_(4.0)
        nn.init.normal_(model.heads.head.weight)
    return model.double().eval()


def images() -> torch.Tensor:
    return torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def as_2d(t: torch.Tensor, mode: str = "magnitude") -> np.ndarray:
    return viz.to_2d(t.detach())[0] if mode == "magnitude" else viz.to_2d(t.detach(), mode=mode)[0]


def reference(method: str, model, index: int, target: int, block: int = -1,
              head: int | None = None) -> np.ndarray:
    """The package function's map of image ``index`` for these settings: what must be on show."""
    x = images()[index : index + 1]
    if method == "attention":
        return as_2d(attribution.attention_map(model, x, target, block=block, head=head))
    if method == "attention-rollout":
        return as_2d(attribution.attention_rollout(model, x, target))
    if method == "gradient-rollout":
        return as_2d(attribution.gradient_rollout(model, x, target))
    if method == "gradcam":
        layer = f"encoder.layers.encoder_layer_{block % 3}.ln_1"
        return as_2d(attribution.gradcam(model, x, target, layer=layer))
    if method == "integrated-gradients":  # a caller's model: the registry's black baseline, 32 steps
        ig = attribution.integrated_gradients(model, x, target, baseline=torch.zeros_like(x), steps=32)
        return as_2d(ig, mode="signed")
    return viz.to_2d(attribution.saliency(model, x, target).detach(), reduce="max")[0]


@pytest.fixture
def dash() -> VitDashboard:
    return vit_dashboard(tiny_vit(), images(), CLASSES)


def test_the_knobs_are_the_models_blocks_and_heads(dash):
    assert dash.last_error is None, dash.last_error
    assert [v for _, v in dash.knobs["block"].options] == [0, 1, 2]
    assert dash.knobs["block"].value == 2  # the last block
    assert [v for _, v in dash.knobs["head"].options] == [MEAN_OVER_HEADS, 0, 1]
    assert [v for _, v in dash.knobs["method"].options] == list(VIT_METHODS)


@pytest.mark.parametrize("method", list(VIT_METHODS))
def test_the_map_on_show_is_the_package_functions_map(dash, method):
    settings = {"block": 1, "head": 1} if method == "attention" else {"block": 1}
    dash.set(method=method, image=2, target=1, **settings)
    assert dash.last_error is None, dash.last_error
    expected = reference(method, dash.model, 2, 1, block=1, head=1)
    assert dash.last_map.shape == (12, 12)
    np.testing.assert_allclose(dash.last_map, expected, rtol=1e-6, atol=1e-9)  # maps are float32 (viz.as_numpy)
    assert dash.last_explanations[0].target == 1


def test_each_head_and_the_mean_over_heads_is_its_own_map(dash):
    shown = {}
    for head in (MEAN_OVER_HEADS, 0, 1):
        dash.set(method="attention", block=0, head=head)
        shown[head] = dash.last_map.copy()
        expected = reference("attention", dash.model, 0, 0, block=0,
                             head=None if head == MEAN_OVER_HEADS else head)
        np.testing.assert_allclose(shown[head], expected, rtol=1e-6, atol=1e-9)  # maps are float32 (viz.as_numpy)
    assert not np.allclose(shown[0], shown[1])
    # the mean over heads is the mean of the heads' maps (bilinear upsampling is linear)
    np.testing.assert_allclose(shown[MEAN_OVER_HEADS], (shown[0] + shown[1]) / 2, rtol=1e-6)  # float32 maps
    assert "head 1" in next(iter(dash.last_maps))


def test_changing_the_block_changes_attention_and_gradcam(dash):
    for method in ("attention", "gradcam"):
        dash.set(method=method, block=0)
        first = dash.last_map.copy()
        dash.set(block=2)
        assert dash.last_error is None, dash.last_error
        assert not np.allclose(first, dash.last_map), method


def test_a_knob_the_method_has_not_is_greyed_out_and_changes_nothing(dash):
    expected_enabled = {"attention": {"block", "head"}, "gradcam": {"block"}}
    for method in VIT_METHODS:
        dash.set(method=method)
        enabled = {k for k in ("block", "head") if not dash.knobs[k].disabled}
        assert enabled == expected_enabled.get(method, set()), method
    dash.set(method="attention-rollout", block=2, head=MEAN_OVER_HEADS)
    before, misses = dash.last_map.copy(), dash.cache.misses
    dash.set(block=0, head=1)  # rollout runs through every block and head: nothing to recompute
    assert dash.cache.misses == misses
    np.testing.assert_array_equal(dash.last_map, before)


def test_attention_is_the_same_for_every_class_and_gradient_rollout_is_not(dash):
    for method, same in (("attention", True), ("attention-rollout", True), ("gradient-rollout", False)):
        dash.set(method=method, target=0)
        first = dash.last_map.copy()
        dash.set(target=2)
        assert np.array_equal(first, dash.last_map) == same, method
        assert ("same for every target" in dash.caption.value) == same, method


def test_going_back_to_a_setting_comes_from_the_cache(dash):
    dash.set(method="gradient-rollout", image=1)
    first, misses = dash.last_map.copy(), dash.cache.misses
    dash.set(method="saliency")
    dash.set(method="gradient-rollout")
    assert dash.cache.misses == misses + 1  # saliency only
    np.testing.assert_array_equal(dash.last_map, first)


def test_the_model_is_left_as_it_was():
    model = tiny_vit()
    model.train()
    model.encoder.layers[0].eval()
    model.heads.head.weight.requires_grad_(False)
    model.conv_proj.weight.grad = torch.full_like(model.conv_proj.weight, 0.5)
    calls = []
    model.encoder.ln.register_forward_hook(lambda m, i, o: calls.append("ln"))
    before = snapshot(model)
    dash = vit_dashboard(model, images(), CLASSES)
    for method in VIT_METHODS:
        dash.set(method=method, image=1)
        assert dash.last_error is None, (method, dash.last_error)
    assert_same_state(before, snapshot(model))
    for block in model.encoder.layers:  # the attention's own forward, not the kit's explicit one
        assert "forward" not in vars(block.self_attention)
        assert isinstance(block.self_attention, nn.MultiheadAttention)
    assert calls  # the user's hook still runs


class GridTransformer(nn.Module):
    """A transformer that is no torchvision ViT, on a 2x3 grid of patches: 6 patch tokens make no
    square grid, so the attention maps cannot be laid out without a ``reshape``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        mixed, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return self.head(mixed[:, 0])


def test_a_setting_a_method_cannot_follow_is_an_error_in_the_dashboard():
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(1))
    dash = vit_dashboard(GridTransformer().eval(), x, CLASSES)  # opens on raw attention
    assert isinstance(dash.last_error, ValueError)
    assert "square grid" in str(dash.last_error) and "ValueError" in dash.error.value
    assert "reshape" in dash.error.value  # the way out, said
    dash.set(method="saliency")  # needs no grid: the error goes
    assert dash.last_error is None and dash.error.value == ""
    assert dash.last_map.shape == (8, 12)
    dash.set(method="gradcam")  # not a torchvision ViT: no block knob, Grad-CAM's default layer
    assert dash.knobs["block"].disabled and dash.knobs["head"].disabled
    assert dash.last_error is None and "default layer" in next(iter(dash.last_maps))
    dash.set(method="attention-rollout")
    assert isinstance(dash.last_error, ValueError) and "square grid" in str(dash.last_error)


def test_a_model_without_attention_is_refused_with_a_clear_error():
    cnn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="no nn.MultiheadAttention"):
        vit_dashboard(cnn.double().eval(), images(), CLASSES)


def test_the_static_view_is_one_line_and_a_png_can_be_saved(dash, tmp_path, monkeypatch):
    text = dash._repr_mimebundle_()["text/plain"]
    assert text.startswith("VitDashboard: run this cell in JupyterLab") and "\n" not in text
    monkeypatch.chdir(tmp_path)
    dash.set(method="gradient-rollout")
    path = dash.save_png()
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.name.startswith("vit") and "gradient-rollout" in path.name


def test_the_shapes_vit_gallery():
    dash = vit_dashboard()  # shapes-vit and the shapes gallery
    assert dash.last_error is None, dash.last_error
    assert len(dash.knobs["block"].options) == 4 and len(dash.knobs["head"].options) == 5
    dash.set(method="gradcam", image=5)
    assert dash.last_error is None, dash.last_error
    # the last block's tokens: attribution's own default layer for a ViT
    x = dash.images[5:6]
    target = dash.last_explanations[0].target
    np.testing.assert_allclose(dash.last_map, as_2d(attribution.gradcam(dash.model, x, target)),
                               rtol=1e-5, atol=1e-7)
    assert "encoder_layer_3.ln_1" in next(iter(dash.last_maps))
