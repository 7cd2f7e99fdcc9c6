"""Lesson 10's optional ImageNet section, offline: the lesson's own cell runs with the ViT-B/16
weights missing (it says so and how to get them, nothing downloaded) and with weights in torch's cache (a stand-in
file there: the cell loads it and draws its maps), and the package functions it calls work on
torchvision's ViT-B/16 itself, random weights at 224x224, with the token grid inferred."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import assert_same_state, snapshot
from torch import nn
from torchvision.models import VisionTransformer

from gradviz_lab import attribution, data, models, viz

LESSON = Path(__file__).parents[1] / "notebooks" / "10_vision_transformers.ipynb"
WEIGHTS_FILE = "vit_b_16-c867db91.pth"  # torchvision's IMAGENET1K_V1 file name
URL = f"https://download.pytorch.org/models/{WEIGHTS_FILE}"


def section_source() -> str:
    """The lesson's ImageNet cell, as it ships."""
    cells = json.loads(LESSON.read_text())["cells"]
    (source,) = ["".join(c["source"]) for c in cells
                 if c["cell_type"] == "code" and "def pretrained_vit_b_16" in "".join(c["source"])]
    return source


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """torch's hub cache is an empty temporary folder, and every way to the network fails."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("the lesson tried to use the network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    return tmp_path / "hub" / "checkpoints"


def run_section(capsys) -> tuple[dict, list, list[str]]:
    """Execute the cell with the names the lesson's earlier cells define; returns its namespace,
    what it displayed, and the lines it printed."""
    shown = []
    namespace = {"torch": torch, "data": data, "attribution": attribution, "viz": viz,
                 "display": shown.append}
    exec(compile(section_source(), str(LESSON), "exec"), namespace)
    return namespace, shown, capsys.readouterr().out.splitlines()


def test_missing_weights_say_so_clearly_and_download_nothing(offline_cache, capsys):
    namespace, shown, lines = run_section(capsys)
    assert namespace["vit_b16"] is None and shown == []
    assert lines[0].startswith("ImageNet section skipped: Pretrained weights for vit_b_16")
    text = "\n".join(lines)
    assert f"{offline_cache / WEIGHTS_FILE} does not exist" in text  # where the file must be
    assert URL in text  # where to get it


def small_vit_at_224() -> VisionTransformer:
    """A stand-in for vit_b_16: torchvision's class at ViT-B/16's image and patch size (a 14x14
    grid) and 1000 classes, one block of width 8, so that the test stays cheap."""
    model = VisionTransformer(224, 16, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16,
                              num_classes=1000)
    nn.init.normal_(model.heads.head.weight)  # torchvision starts it at zero: no gradient at all
    return model


def test_cached_weights_are_loaded_and_explained(offline_cache, monkeypatch, capsys):
    torch.manual_seed(0)
    saved = small_vit_at_224().state_dict()
    offline_cache.mkdir(parents=True)
    torch.save(saved, offline_cache / WEIGHTS_FILE)
    real_get_model = torchvision.models.get_model
    monkeypatch.setattr(torchvision.models, "get_model", lambda name, **kwargs: (
        small_vit_at_224() if name == "vit_b_16" else real_get_model(name, **kwargs)))
    namespace, shown, lines = run_section(capsys)
    assert lines == []  # nothing skipped
    model = namespace["vit_b16"]
    assert isinstance(model, models.ImageNetClassifier) and not model.training
    assert model.weights_name == "ViT_B_16_Weights.IMAGENET1K_V1"
    assert len(model.categories) == 1000 and model.categories[281] == "tabby"
    for key, value in model.net.state_dict().items():  # the file's weights, not a fresh init
        assert torch.equal(value, saved[key]), key
    assert len(shown) == 1  # the figure of the three maps for the two classes


@pytest.fixture(scope="module")
def vit_b_16():
    """torchvision's ViT-B/16 with random weights, as the kit wraps ImageNet models."""
    weights = torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torchvision.models.vit_b_16(weights=None)
        nn.init.normal_(net.heads.head.weight, std=0.02)
    return models.ImageNetClassifier(net, weights.meta["categories"], None).eval()


def test_the_sections_functions_on_vit_b_16_at_224(vit_b_16):
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    before = snapshot(vit_b_16)
    # the token layout is inferred from torchvision's ViT inside the wrapper: 1 + 14 x 14 tokens
    assert attribution.default_cam_layer(vit_b_16, x) == "net.encoder.layers.encoder_layer_11.ln_1"
    rollout = attribution.attention_rollout(vit_b_16, x, upsample=False)
    assert rollout.shape == (1, 1, 14, 14) and bool(torch.isfinite(rollout).all())
    # the class token's rollout over the patches: a share of one, less what stays on the class token
    assert 0 < float(rollout.sum()) < 1
    cam = attribution.gradcam(vit_b_16, x, 281, upsample=False)
    assert cam.shape == (1, 1, 14, 14) and float(cam.min()) >= 0
    assert_same_state(before, snapshot(vit_b_16))
