"""The networks the lessons explain: small lab CNNs with shipped weights, and ImageNet models.

Lab models (trained by ``gradviz train NAME``, weights shipped in ``data/models/NAME.pt``, each
checked on loading against the sha256 its model card ``NAME.json`` records):

- ``"digits"``: a LeNet-style CNN for the shipped MNIST digits, 1x28x28 -> 10 logits.
- ``"shapes"``: a small VGG-like CNN for ``make_shapes`` images, 3x64x64 -> 5 logits. Its last
  convolutions are followed by global average pooling and one linear layer, so its class
  activation map (CAM, Zhou et al. 2016) equals Grad-CAM up to a positive scale.
- ``"shapes-tagged"``: the same CNN trained on the tagged shapes, where every circle carries a small
  magenta mark: it learns the mark instead of the shape (a "Clever Hans" model).
- ``"shapes-softplus"``: the shapes CNN with a smooth softplus in place of every ReLU, trained the
  same way. It exists for integrated gradients (lesson 06): without the ReLU kinks the path
  integrand is smooth, so the quadrature converges much faster. It has no ReLU to hook, so
  deconvnet and guided backprop do not apply to it.
- ``"shapes-vit"``: a tiny vision transformer for the same images, built from torchvision's
  ``VisionTransformer`` (``gradviz_lab.vision_transformer``): attention maps and rollout
  (``attribution.attention``), Grad-CAM on its tokens. GELU, no ReLU: deconvnet and guided backprop
  do not apply to it either.

Every model here takes images in [0, 1] directly (normalisation, if any, is inside the model) and,
except ``"shapes-softplus"`` and ``"shapes-vit"``, uses separate ``nn.ReLU`` modules (never
functional relu), so guided backprop and deconvnet can hook them. ``imagenet_model(name)`` wraps
torchvision's VGG16/19, AlexNet, ResNet18/50 and ViT-B/16 the same way, with pretrained weights
when torch's cache has them and a clear message when it does not.

The lab models' architectures are in ``gradviz_lab.architectures`` (re-exported here).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
from pathlib import Path
from urllib.error import URLError

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_positive_int

# The lab models' architectures live in their own module; their names are part of this one's.
from .architectures import (  # noqa: F401
    LAB_MODELS,
    SHAPES_PLAN,
    DigitsCNN,
    ShapesCNN,
    Softplus4,
    SoftplusShapesCNN,
    vgg_features,
)
from .data import MAX_IMAGE_PIXELS
from .shipped import shipped_dir

# --------------------------------------------------------------------------------------------
# Lab models: shipped weights, verified on loading
# --------------------------------------------------------------------------------------------


class WeightsMismatchError(ValueError):
    """A weights file is not the one its model card records (changed, replaced or corrupted)."""


def shipped_models_dir() -> Path:
    """The folder of the shipped lab-model weights and cards (``data/models``)."""
    return shipped_dir("data") / "models"


def _check_lab_name(name: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"a lab model's name must be a string ({', '.join(LAB_MODELS)}), got {name!r}")
    if name not in LAB_MODELS:
        raise ValueError(f"unknown lab model {name!r}; choose one of {', '.join(LAB_MODELS)}")


def build_lab_model(name: str) -> nn.Module:
    """The lab model's architecture with fresh (untrained) weights."""
    _check_lab_name(name)
    return LAB_MODELS[name]()


def lab_weights_path(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Where the weights of lab model ``name`` live: the shipped ``data/models/NAME.pt`` by
    default, ``weights_dir/NAME.pt`` for weights you trained (``gradviz train NAME --out DIR``)."""
    _check_lab_name(name)
    return (shipped_models_dir() if weights_dir is None else Path(weights_dir)) / f"{name}.pt"


def _verified_bytes(name: str, path: Path, shipped: bool) -> bytes:
    """The bytes of ``path``, checked against the sha256 its model card records.

    Shipped weights must have a card and match it. A folder of your own needs no card (a
    state dict you saved yourself loads as it is), but a card beside the weights is checked too.
    The bytes are read once and then loaded from memory, so the file checked is the file loaded.
    """
    raw = path.read_bytes()
    card_path = path.with_suffix(".json")
    recorded = json.loads(card_path.read_text()).get("weights_sha256") if card_path.is_file() else None
    if recorded is None and not shipped:
        return raw
    found = hashlib.sha256(raw).hexdigest()
    if found != recorded:
        what = f"no checksum in {card_path}" if recorded is None else f"{card_path.name} records {recorded[:12]}..."
        fix = (
            "the shipped file was changed or replaced: get it back by reinstalling the kit "
            "(`pip install --force-reinstall gradviz-lab`) or, in a clone, with `git checkout -- data/models`"
            if shipped else
            f"the weights and their card come from different runs: retrain with `gradviz train {name} --out {path.parent}`"
        )
        raise WeightsMismatchError(
            f"refusing to load {path}: its sha256 is {found[:12]}..., but {what}; {fix}. "
            f"To load weights you trained yourself, pass weights_dir=THEIR_FOLDER."
        )
    return raw


def load_lab_model(
    name: str, *, device: str | torch.device = "cpu", weights_dir: str | os.PathLike | None = None
) -> nn.Module:
    """A trained lab model (a name of ``LAB_MODELS``), in eval mode, on ``device``.

    By default the shipped weights, verified against the sha256 in their model card
    (``WeightsMismatchError`` if they differ); ``weights_dir`` loads ``weights_dir/NAME.pt``
    instead, e.g. the folder ``gradviz train`` wrote. The state dict is read with
    ``torch.load(..., weights_only=True)``: tensors only, no pickled code. Its accuracy and
    training settings are in the JSON file beside it (``lab_model_card``).
    """
    device = torch_device(device)
    path = lab_weights_path(name, weights_dir)
    if not path.is_file():
        hint = (
            "the shipped weights are missing: reinstall the kit, or in a clone `git checkout -- data/models`"
            if weights_dir is None else f"train them with `gradviz train {name} --out {weights_dir}`"
        )
        raise FileNotFoundError(f"no weights for lab model {name!r} at {path}; {hint}")
    raw = _verified_bytes(name, path, shipped=weights_dir is None)
    try:
        state = torch.load(io.BytesIO(raw), map_location=device, weights_only=True)
    except (EOFError, RuntimeError) as error:  # empty or truncated (pickled code stays refused)
        raise ValueError(
            f"{path} could not be read as weights ({type(error).__name__}: {str(error) or 'the file ends early'}); "
            f"it may be empty or truncated: restore it, or retrain with `gradviz train {name}`"
        ) from None
    model = build_lab_model(name).to(device)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:  # missing/unexpected keys or shapes: an older architecture
        raise ValueError(
            f"the weights in {path} do not fit the {type(model).__name__} architecture; retrain them "
            f"with `gradviz train {name}` ({error})"
        ) from None
    return model.eval()


def torch_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, with a clear error for a name torch does not know ("gpu")."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device {device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:0' or 'mps'"
        ) from None


def lab_model_card(name: str, weights_dir: str | os.PathLike | None = None) -> dict:
    """Accuracy and training settings recorded beside the weights (``NAME.json``)."""
    path = lab_weights_path(name, weights_dir).with_suffix(".json")
    if not path.is_file():
        raise FileNotFoundError(f"no model card for {name!r} at {path}; run `gradviz train {name}`")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------------------------
# ImageNet models through torchvision
# --------------------------------------------------------------------------------------------

IMAGENET_MODELS = ("vgg16", "vgg19", "alexnet", "resnet18", "resnet50", "vit_b_16")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WEIGHTS_HOST = "download.pytorch.org"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither in torch's cache nor downloadable right now."""


class ImageNetClassifier(nn.Module):
    """A torchvision ImageNet network that takes [0, 1] images, like every model of the kit.

    forward(x) = net((x - mean) / std). The torchvision network is ``.net``, so its layers have
    dotted names such as ``"net.features.35"`` (VGG19's last conv ReLU, the lecture's Grad-CAM
    layer). ``.categories`` holds the 1,000 class names.
    """

    def __init__(self, net: nn.Module, categories: list[str], weights_name: str | None) -> None:
        super().__init__()
        self.net = net
        self.categories = list(categories)
        self.weights_name = weights_name  # e.g. "VGG19_Weights.IMAGENET1K_V1"; None = random
        # Buffers move with .to(device) but are not parameters (nothing to train or hook).
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def _imagenet_weights(name: str):
    from torchvision.models import get_model_weights

    if name not in IMAGENET_MODELS:
        raise ValueError(f"unknown ImageNet model {name!r}; choose one of {', '.join(IMAGENET_MODELS)}")
    # IMAGENET1K_V1 for all six: the weights of the original papers and the lecture, all with
    # the same standard preprocessing (resize 256, centre crop 224).
    return get_model_weights(name).IMAGENET1K_V1


def cached_weights_path(name: str) -> Path:
    """Where torchvision keeps the pretrained file of ``name``: torch.hub.get_dir()/checkpoints/."""
    url = _imagenet_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def imagenet_weights_available(name: str) -> bool:
    """True if the pretrained weights of ``name`` are already in torch's cache (no network used)."""
    return cached_weights_path(name).is_file()


def _can_reach(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """A quick connection test, so an offline machine fails in seconds instead of hanging."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _unavailable(name: str, reason: str) -> WeightsUnavailableError:
    weights = _imagenet_weights(name)
    path = cached_weights_path(name)
    size = weights.meta.get("_file_size")
    size_text = f", {size:.0f} MB" if size else ""
    return WeightsUnavailableError(
        f"Pretrained weights for {name} ({weights}) are not available: {reason}.\n"
        f"To get them, either run imagenet_model({name!r}, allow_download=True) once on a machine that is online "
        f"(torchvision downloads {weights.url}{size_text}), or copy the file {path.name} into "
        f"{path.parent}/ (torch's cache; set TORCH_HOME to move it).\n"
        f"For code paths that need no trained weights: imagenet_model({name!r}, pretrained=False) "
        f"gives random weights."
    )


def _pretrained_state_dict(name: str, allow_download: bool) -> dict[str, torch.Tensor]:
    path = cached_weights_path(name)
    if not path.is_file():
        if not allow_download:
            raise _unavailable(name, f"{path} does not exist and allow_download=False")
        if not _can_reach(_WEIGHTS_HOST):
            raise _unavailable(name, f"{path} does not exist and {_WEIGHTS_HOST} cannot be reached")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # torchvision's file names carry the start of the file's sha256: check it, as torch.hub does.
            hash_prefix = torch.hub.HASH_REGEX.search(path.name).group(1)
            torch.hub.download_url_to_file(
                _imagenet_weights(name).url, os.fspath(path), hash_prefix=hash_prefix, progress=True
            )
        except (URLError, OSError, RuntimeError) as error:  # RuntimeError: hash mismatch
            raise _unavailable(name, f"the download failed ({error})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which file, not a pickle traceback
        raise WeightsUnavailableError(
            f"{path} exists but could not be read as {name} weights ({error}); delete it and "
            f"download it again"
        ) from None


def imagenet_model(
    name: str,
    pretrained: bool = True,
    *,
    allow_download: bool = False,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> ImageNetClassifier:
    """A torchvision ImageNet classifier (vgg16, vgg19, alexnet, resnet18, resnet50, vit_b_16), in
    eval mode, taking (B, 3, H, W) images in [0, 1] (normalisation inside; see
    ``imagenet_preprocess``).

    ``pretrained=True`` loads torchvision's IMAGENET1K_V1 weights from torch's cache. The kit is
    offline by design, so nothing is downloaded unless you ask with ``allow_download=True`` (on a
    machine that is online); otherwise a missing file raises
    ``WeightsUnavailableError`` saying how to get them. ``pretrained=False`` gives random weights
    (reproducible from ``seed``), for running code paths without the real weights.
    """
    from torchvision.models import get_model

    weights = _imagenet_weights(name)
    categories = weights.meta["categories"]  # shipped inside torchvision: no download
    if pretrained:
        state = _pretrained_state_dict(name, allow_download)
        net = get_model(name, weights=None)
        net.load_state_dict(state)
    else:
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(seed)
            net = get_model(name, weights=None)
    model = ImageNetClassifier(net, categories, str(weights) if pretrained else None)
    return model.to(device).eval()


def imagenet_preprocess(image: torch.Tensor, resize: int = 256, crop: int = 224) -> torch.Tensor:
    """The standard ImageNet input: shorter side to ``resize``, then the central ``crop`` square.

    Takes a (3, H, W) or (B, 3, H, W) float image in [0, 1] and keeps values in [0, 1]: the mean/std
    normalisation is done inside ``ImageNetClassifier``.
    """
    if not isinstance(image, torch.Tensor) or image.dim() not in (3, 4) or image.shape[-3] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a (3, H, W) or (B, 3, H, W) tensor, got {shape}")
    if not image.is_floating_point():
        raise TypeError(f"image must be a float tensor in [0, 1], got dtype {image.dtype}")
    check_positive_int(resize, "resize")
    check_positive_int(crop, "crop")
    if crop > resize:
        raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
    batch = image if image.dim() == 4 else image[None]
    height, width = batch.shape[-2:]
    scale = resize / min(height, width)
    size = (max(resize, round(height * scale)), max(resize, round(width * scale)))
    if len(batch) * size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"resize={resize} makes {len(batch)} image(s) of {size[0]:,}x{size[1]:,} pixels, more "
            f"than the kit's {MAX_IMAGE_PIXELS:,} in all; use a smaller resize (ImageNet models "
            "are trained at 256 then crop 224)"
        )
    batch = F.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - crop) // 2, (size[1] - crop) // 2
    batch = batch[..., top : top + crop, left : left + crop].clamp(0.0, 1.0)
    return batch if image.dim() == 4 else batch[0]
