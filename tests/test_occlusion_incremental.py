"""Incremental occlusion (attribution/incremental.py) against full recomputation.

The oracle is the kit's own full path (``incremental=False``), which runs the model on every
occluded image: the incremental path must give the same drops for every window position
(``per_position=True`` compares each position, corners and borders included), at the same
batch size (the classifier's matrix product may sum in another order for another number of rows:
the full path itself differs by an ulp between batch sizes). The incremental path adds up the
same numbers, but a vectorised kernel may sum a box in another order than the whole map. Bounds
tested, relative to the largest |clean logit|:
- float64: 16 eps (3.6e-15). Measured: exactly 0 natively (AVX-512) and with the default (SSE4.1)
  kernels; 1.2e-16 (one ulp) with AVX2 kernels (tests/emulate_cpu.py avx2).
- float32: 1e-5. Measured: about 1e-6 at most.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from gradviz_lab import hooks, models
from gradviz_lab.attribution import occlusion, occlusion_path
from gradviz_lab.attribution.incremental import Axis
from gradviz_lab.attribution.perturbation import auto_batch_size


def seeded(model: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model.eval()


def imagenet(name: str) -> nn.Module:
    """A torchvision network with random weights in the kit's ImageNet wrapper (normalisation
    first: an element-wise step with constants in the chain)."""
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)(weights=None)
    return models.ImageNetClassifier(net, [str(i) for i in range(1000)], None).eval()


def assert_same_drops(model, x, window, stride, **knobs):
    model = model.to(x.dtype)
    knobs.setdefault("batch_size", 16)
    fast = occlusion(model, x, window=window, stride=stride, per_position=True, **knobs)
    full = occlusion(model, x, window=window, stride=stride, per_position=True,
                     incremental=False, **knobs)
    assert fast.shape == full.shape
    with torch.no_grad():
        scale = model(x).abs().max()
    bound = 16 * torch.finfo(torch.float64).eps if x.dtype == torch.float64 else 1e-5
    assert (fast - full).abs().max() <= bound * scale, ((fast - full).abs().max(), scale)
    assert full.abs().max() > 0  # the windows do change the scores: a comparison with content


WINDOWS = [
    ((8, 8), 3),        # about the lesson's settings: corners and borders
    ((5, 7), (3, 2)),   # non-square window and stride, the last window pushed to the border
    ((4, 4), 9),        # a stride longer than the window (gaps between windows)
    ((1, 1), 5),        # one pixel
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ["digits", "shapes", "shapes-softplus"])
def test_lab_models_equal_full_recomputation(name, dtype):
    model = models.load_lab_model(name)
    assert occlusion_path(model).incremental
    channels, side = (1, 28) if name == "digits" else (3, 40)
    x = torch.rand(2, channels, side, side, generator=torch.Generator().manual_seed(1), dtype=dtype)
    for window, stride in WINDOWS:
        assert_same_drops(model, x, window, stride)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sizes_not_divisible_by_the_pooling_and_an_image_baseline(dtype):
    model = models.load_lab_model("shapes")
    x = torch.rand(2, 3, 41, 35, generator=torch.Generator().manual_seed(2), dtype=dtype)
    blurred = F.avg_pool2d(x, 5, 1, 2)
    assert_same_drops(model, x, (9, 6), (4, 5))
    assert_same_drops(model, x, (9, 6), (4, 5), baseline=blurred)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name, side", [("vgg11", 64), ("vgg16", 48), ("alexnet", 79)])
def test_torchvision_networks_equal_full_recomputation(name, side, dtype):
    model = imagenet(name)
    path = occlusion_path(model)
    assert path.incremental and path.chain[0] == "sub" and path.chain[-1].startswith("net.features")
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(3), dtype=dtype)
    assert_same_drops(model, x, (16, 12), (20, 9), target=[1, 2])


@pytest.mark.slow
def test_vgg16_at_224_equals_full_recomputation():
    model = imagenet("vgg16")
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert_same_drops(model, x, (32, 32), 192)  # the four corners


def geometry_net() -> nn.Module:
    """Every sliding-window option the engine follows: stride, padding, dilation, groups,
    non-square kernels, max pooling with padding, dilation and ceil_mode, average pooling."""
    layers = OrderedDict(
        conv1=nn.Conv2d(2, 6, (3, 5), stride=(2, 1), padding=(1, 2)),
        act1=nn.LeakyReLU(0.1, inplace=True),
        pool1=nn.MaxPool2d(3, stride=2, padding=1, dilation=1, ceil_mode=True),
        conv2=nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3),
        bn=nn.BatchNorm2d(6),
        act2=nn.Tanh(),
        pool2=nn.AvgPool2d((2, 3), stride=(2, 1), padding=(1, 1)),
        conv3=nn.Conv2d(6, 4, 1, stride=3),  # a 1x1 kernel with a stride: some rows are never read
        gap=nn.AdaptiveMaxPool2d(1),
        flat=nn.Flatten(),
        fc=nn.Linear(4, 3),
    )
    model = seeded(nn.Sequential(layers), 5)
    model.bn.running_mean.uniform_(-0.5, 0.5)
    model.bn.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_layer_geometry_equals_full_recomputation(dtype):
    model = geometry_net()
    assert occlusion_path(model).incremental
    x = torch.randn(2, 2, 37, 30, generator=torch.Generator().manual_seed(6), dtype=dtype)
    for window, stride in WINDOWS:
        assert_same_drops(model, x, window, stride, target=[0, 2])


@pytest.mark.parametrize("kernel, stride, padding, dilation",
                         [(3, 1, 1, 1), (3, 2, 0, 1), (5, 3, 2, 2), (1, 3, 0, 1), (2, 2, 1, 1),
                          (11, 4, 2, 1)])
def test_changed_outputs_are_the_outputs_that_read_a_changed_input(kernel, stride, padding,
                                                                    dilation):
    """The projection formula against its definition: output o reads inputs o*s - p + d*j, j < k.
    Every reader is inside [first, stop); every output there spans the changed rows (its first and
    last tap enclose one of them), and with dilation 1 it reads one."""
    axis, size_in = Axis(kernel, stride, padding, dilation), 23
    size_out = (size_in + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    starts = torch.arange(size_in)
    for length in (1, 2, 5, 9):
        first, stop = axis.changed_outputs(starts, (starts + length).clamp(max=size_in), size_out)
        for a in range(size_in):
            b = min(a + length, size_in)
            taps = [[o * stride - padding + dilation * j for j in range(kernel)]
                    for o in range(size_out)]
            reads = [o for o in range(size_out) if any(a <= t < b for t in taps[o])]
            spans = [o for o in range(size_out) if taps[o][0] < b and taps[o][-1] >= a]
            assert set(reads) <= set(range(int(first[a]), int(stop[a])))
            assert list(range(int(first[a]), int(stop[a]))) == spans
            if dilation == 1:
                assert reads == spans


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        y = self.conv2(torch.relu(self.conv1(x))) + x
        return self.fc(y.mean(dim=(2, 3)))


class Flipping(nn.Module):
    """A functional call that moves pixels (a flip) between two convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.conv2(torch.flip(self.conv1(x), dims=[3])).amax(dim=(2, 3))


class Branching(nn.Module):
    """Control flow on the values: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        y = self.conv(x)
        return (y if y.mean() > 0 else -y).mean(dim=(2, 3))


def test_the_fallback_is_taken_and_reported():
    cases = {
        "resnet18": (imagenet("resnet18"), "skip connection"),
        "residual": (seeded(Residual(), 7), "skip connection"),
        "flip": (seeded(Flipping(), 8), "flip"),
        "control flow": (seeded(Branching(), 9), "cannot trace"),
        "train-mode batch norm": (geometry_net().train(), "train mode"),
    }
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    for label, (model, words) in cases.items():
        model = model.double()
        path = occlusion_path(model)
        assert not path.incremental and words in path.reason and path.chain == (), (label, path)
        inputs = x[:, :2] if label == "train-mode batch norm" else x
        default = occlusion(model, inputs, target=0, window=12, stride=14)
        assert torch.equal(default, occlusion(model, inputs, target=0, window=12, stride=14,
                                              incremental=False)), label
    assert "incremental=False" in occlusion_path(models.load_lab_model("digits"), False).reason


def test_a_hooked_model_falls_back_and_its_hook_runs():
    model = models.load_lab_model("digits")
    calls = []
    handle = model.features[0].register_forward_hook(lambda m, i, o: calls.append(len(o)))
    try:
        path = occlusion_path(model)
        assert not path.incremental and "hook" in path.reason
        occlusion(model, torch.rand(1, 1, 28, 28), window=14, stride=14)
        assert sum(calls) == 1 + 4  # the clean image and the 4 occluded copies
    finally:
        handle.remove()


def state(model: nn.Module) -> list:
    return [
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        [t.detach().clone() for t in [*model.parameters(), *model.buffers()]],
        hooks.count_hooks(model),
    ]


def assert_occlusion_leaves_the_model_and_the_input(**knobs) -> None:
    """occlusion(**knobs) on geometry_net with a frozen weight and a grad set: the input, the
    modes, requires_grad, the grads, the weights and buffers and the hooks are as they were."""
    model = geometry_net().double()
    model.conv1.weight.requires_grad_(False)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    x = torch.randn(2, 2, 30, 30, dtype=torch.float64)
    x_before, before = x.clone(), state(model)
    occlusion(model, x, **knobs)
    after = state(model)
    assert torch.equal(x, x_before)  # conv1 is followed by an in-place LeakyReLU
    assert after[0] == before[0] and after[1] == before[1] and after[4] == before[4]
    for a, b in zip(after[2] + after[3], before[2] + before[3]):
        assert (a is None and b is None) or torch.equal(a, b)


def test_the_model_and_the_input_are_left_as_they_were():
    assert_occlusion_leaves_the_model_and_the_input(window=6, stride=4)


def test_batch_size_does_not_change_the_result_and_the_default_depends_on_the_model():
    model = models.load_lab_model("shapes").double()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    maps = [occlusion(model, x, window=8, stride=4, batch_size=b) for b in (None, 1, 7, 500)]
    assert all(torch.allclose(maps[0], other, rtol=0, atol=1e-14) for other in maps[1:])
    image = torch.zeros(1, 3, 224, 224)
    assert auto_batch_size(3 * 64 * 224 * 224, image) < auto_batch_size(64 * 16 * 16, image)
    assert auto_batch_size(64 * 16 * 16, image) <= 64 and auto_batch_size(10**12, image) == 1


def test_bad_knob():
    model = models.load_lab_model("digits")
    with pytest.raises(TypeError, match="incremental"):
        occlusion(model, torch.rand(1, 1, 28, 28), incremental="yes")


def test_gradcam_probes_the_default_layer_once_per_model_and_shape():
    """The default layer is found by a forward pass; a second call on the same model and image
    shape reuses the answer (one forward pass, not two), the cache keeps no model alive and
    leaves no hook, and a replaced layer or another image size is probed again."""
    import gc
    import weakref

    from gradviz_lab.attribution import gradcam
    from gradviz_lab.attribution.cam import _DEFAULT_LAYERS

    model = models.load_lab_model("shapes")
    forwards = []
    x = torch.rand(1, 3, 32, 32)
    first = gradcam(model, x)
    handle = model.register_forward_pre_hook(lambda m, i: forwards.append(1))
    try:
        again = gradcam(model, x)
        assert len(forwards) == 1 and torch.equal(first, again)
        assert torch.equal(again, gradcam(model, x, layer="features.9"))
        forwards.clear()
        gradcam(model, torch.rand(1, 3, 40, 40))
        assert len(forwards) == 2  # another shape: probed again
        model.features[9] = nn.ReLU()
        forwards.clear()
        gradcam(model, torch.rand(1, 3, 40, 40))
        assert len(forwards) == 2  # another module: probed again
    finally:
        handle.remove()
    assert hooks.count_hooks(model) == 0
    alive = weakref.ref(model)
    del model, handle
    gc.collect()
    assert alive() is None and all(m is not None for m in _DEFAULT_LAYERS.keys())


@pytest.mark.parametrize("make, size", [(geometry_net, (37, 30)),
                                        (lambda: models.load_lab_model("shapes"), (40, 40))])
def test_changed_regions_hold_every_changed_activation(make, size):
    """The projected region of each layer (no forward pass) against the activations that really
    change when the window is hidden: every changed value lies inside, the map sizes agree, and
    the region is not much larger than what changes (random weights change almost everything
    they can)."""
    from gradviz_lab.attribution.incremental import changed_regions

    model = make().double()
    channels = next(model.parameters()).shape[1]
    x = torch.rand(1, channels, *size, generator=torch.Generator().manual_seed(12),
                   dtype=torch.float64) + 0.5
    for start in [(0, 0), (9, 13), (size[0] - 7, size[1] - 5)]:
        hidden = x.clone()
        hidden[:, :, start[0]:start[0] + 7, start[1]:start[1] + 5] = 0.0
        outputs = {}
        for image in (x, hidden):
            with hooks.forward_outputs(model) as seen, torch.no_grad():
                model(image)
            for name, out, _ in seen:
                outputs.setdefault(name, []).append(out.clone())
        for name, shape, (r0, r1), (c0, c1) in changed_regions(model, size, (7, 5), start):
            clean, occluded = outputs[name]
            assert tuple(clean.shape[-2:]) == shape, name
            changed = (clean != occluded).any(dim=1)[0].nonzero()
            assert changed.numel() > 0
            assert r0 <= int(changed[:, 0].min()) and int(changed[:, 0].max()) < r1, name
            assert c0 <= int(changed[:, 1].min()) and int(changed[:, 1].max()) < c1, name
            assert (r1 - r0) - (int(changed[:, 0].max()) - int(changed[:, 0].min()) + 1) <= 2


def test_a_forward_pass_that_raises_leaves_no_function_mode_behind():
    """relu_backward_rule watches only the model's forward passes for functional relus (a
    function mode, entered by a hook on the model and left by another): when the forward pass
    raises, the mode is left all the same."""
    from gradviz_lab.attribution import guided_backprop

    class Raising(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.relu = nn.Conv2d(1, 2, 3), nn.ReLU()

        def forward(self, x):
            y = F.relu(self.relu(self.conv(x)))
            raise RuntimeError("boom")

    stack = torch._C._len_torch_function_stack()
    with pytest.raises(RuntimeError, match="boom"):
        guided_backprop(seeded(Raising(), 13), torch.rand(1, 1, 8, 8))
    assert torch._C._len_torch_function_stack() == stack


class Viewing(nn.Module):
    """A classifier that flattens with .view, which needs a contiguous tensor (the engine's boxes
    are channels last in memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 5, 3, stride=2)
        self.fc = nn.Linear(5 * 7 * 7, 3)

    def forward(self, x):
        y = self.conv2(torch.relu(self.conv1(x)))
        return self.fc(y.view(y.size(0), -1))


def test_a_model_that_views_the_chain_output_works():
    model = seeded(Viewing(), 14)
    assert occlusion_path(model).incremental
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    assert_same_drops(model, x, (5, 3), 2, target=[0, 2])
