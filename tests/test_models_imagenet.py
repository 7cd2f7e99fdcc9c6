"""ImageNet models through torchvision, offline: random weights, cached weights, and the clear
message when pretrained weights are missing. No test touches the network: torch's cache is
redirected to a temporary folder and every way out (probe, download) is replaced."""

from __future__ import annotations

from urllib.error import URLError

import pytest
import torch
import torchvision

from gradviz_lab import models
from gradviz_lab.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageNetClassifier,
    WeightsUnavailableError,
    cached_weights_path,
    imagenet_model,
    imagenet_preprocess,
    imagenet_weights_available,
)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """torch's hub cache is an empty temporary folder, and the network is off limits."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("the test tried to use the network")

    monkeypatch.setattr(models, "_can_reach", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path / "hub" / "checkpoints"


def test_cache_path_is_torchvisions_file_name(empty_cache):
    assert cached_weights_path("resnet18") == empty_cache / "resnet18-f37072fd.pth"
    assert cached_weights_path("vgg19").name == "vgg19-dcbb9e9d.pth"
    assert not imagenet_weights_available("resnet18")


def test_offline_message_says_how_to_get_the_weights(empty_cache, monkeypatch):
    # offline by default: not even a connection is attempted
    monkeypatch.setattr(models, "_can_reach", lambda host, **kwargs: pytest.fail("network used"))
    with pytest.raises(WeightsUnavailableError) as caught:
        imagenet_model("resnet18")
    message = str(caught.value)
    assert "resnet18-f37072fd.pth" in message  # the file to copy
    assert str(empty_cache) in message  # where to put it
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert "pretrained=False" in message  # the random-weights way out
    assert "allow_download=True" in message  # the online way
    assert isinstance(caught.value, RuntimeError)
    error = caught.value  # one message, no chained traceback behind it
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_unreachable_host_gives_the_message_without_trying_to_download(empty_cache, monkeypatch):
    monkeypatch.setattr(models, "_can_reach", lambda host, **kwargs: False)
    with pytest.raises(WeightsUnavailableError, match="cannot be reached"):
        imagenet_model("alexnet", allow_download=True)


def test_failed_download_gives_the_message(empty_cache, monkeypatch):
    monkeypatch.setattr(models, "_can_reach", lambda host, **kwargs: True)

    def failing_download(url, dst, **kwargs):
        raise URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", failing_download)
    with pytest.raises(WeightsUnavailableError, match="download failed.*no route to host"):
        imagenet_model("resnet18", allow_download=True)


def test_cached_weights_load_without_network(empty_cache):
    torch.manual_seed(3)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    empty_cache.mkdir(parents=True)
    torch.save(reference, empty_cache / "resnet18-f37072fd.pth")
    assert imagenet_weights_available("resnet18")
    model = imagenet_model("resnet18")
    assert isinstance(model, ImageNetClassifier) and not model.training
    assert model.weights_name == "ResNet18_Weights.IMAGENET1K_V1"
    for name, tensor in model.net.state_dict().items():
        assert torch.equal(tensor, reference[name])


def test_a_corrupt_cached_file_is_named(empty_cache):
    empty_cache.mkdir(parents=True)
    (empty_cache / "resnet18-f37072fd.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="resnet18-f37072fd.pth exists but could not be read"):
        imagenet_model("resnet18")


def test_random_weights_are_seeded_and_leave_the_global_rng_alone(empty_cache):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = imagenet_model("resnet18", pretrained=False, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    b = imagenet_model("resnet18", pretrained=False, seed=5)
    c = imagenet_model("resnet18", pretrained=False, seed=6)
    assert torch.equal(a.net.conv1.weight, b.net.conv1.weight)
    assert not torch.equal(a.net.conv1.weight, c.net.conv1.weight)
    assert a.weights_name is None and not a.training


def test_model_normalises_inside_and_knows_the_class_names(empty_cache):
    model = imagenet_model("alexnet", pretrained=False)
    assert len(model.categories) == 1000 and model.categories[0] == "tench"
    assert model.categories[285] == "Egyptian cat"
    x = torch.rand(2, 3, 64, 64)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), model.net((x - mean) / std), atol=1e-5)
    # the lecture's layer names live under .net
    assert "net.features.10" in dict(model.named_modules())
    assert not any(name.startswith("mean") for name in model.state_dict())  # not persistent


def test_unknown_model_lists_the_choices():
    with pytest.raises(ValueError, match="vgg16, vgg19, alexnet, resnet18, resnet50"):
        imagenet_model("inception_v3", pretrained=False)


def test_preprocess_resizes_the_shorter_side_then_crops_the_centre():
    image = torch.zeros(3, 300, 400)
    image[:, :, 200:] = 1.0  # right half white
    out = imagenet_preprocess(image)
    assert out.shape == (3, 224, 224)
    # 300x400 -> 256x341; crop columns 58..282 of 341; the white edge at 341/2 = 170.7 lands at
    # column 170.7 - 58 = 112.7 of the crop
    assert float(out[0, 100, 100]) == 0.0 and float(out[0, 100, 125]) == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < float(out[0, 100, 113]) < 1.0  # the blurred edge itself
    batch = imagenet_preprocess(torch.rand(2, 3, 240, 240), resize=64, crop=32)
    assert batch.shape == (2, 3, 32, 32) and 0 <= float(batch.min()) and float(batch.max()) <= 1


def test_preprocess_errors():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        imagenet_preprocess(torch.rand(1, 28, 28))
    with pytest.raises(TypeError, match="float"):
        imagenet_preprocess(torch.zeros(3, 10, 10, dtype=torch.uint8))
    with pytest.raises(ValueError, match="crop"):
        imagenet_preprocess(torch.rand(3, 10, 10), resize=8, crop=16)
