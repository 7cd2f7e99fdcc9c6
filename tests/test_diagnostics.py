"""Training diagnostics: gradient-flow recorder, the vanishing-gradient demo, TensorBoard logging.

Oracles: statistics recomputed by hand from each parameter's ``.grad``; accumulation doubling
the numbers; the first logged loss recomputed from the seeded batch order; event files read back
with tensorboard's own ``EventAccumulator``.
"""

from __future__ import annotations

import copy
import io
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from conftest import assert_same_state, relu_cnn, snapshot

from gradviz_lab import diagnostics as diag
from gradviz_lab.data import load_digits
from gradviz_lab.hooks import count_hooks


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_digits("train")  # sorted by label: take a seeded mixed subset
    chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:256]
    assert len(labels[chosen].unique()) == 10
    return images[chosen], labels[chosen]


def small_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)
    )


def hand_statistics(grad: torch.Tensor) -> tuple[float, float, float]:
    """mean |g|, max |g|, ||g||_2 written out element by element in plain Python."""
    values = [abs(v) for v in grad.flatten().tolist()]
    return sum(values) / len(values), max(values), math.sqrt(sum(v * v for v in values))


def post_accumulate_hooks(model: nn.Module) -> int:
    return sum(len(p._post_accumulate_grad_hooks or {}) for p in model.parameters())


# --- the recorder ------------------------------------------------------------------------------


def test_recorded_norms_equal_norms_computed_by_hand_from_grad() -> None:
    model = small_mlp()
    x, y = (
        torch.randn(8, 1, 3, 4, generator=torch.Generator().manual_seed(1)),
        torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    expected = []
    with diag.record_gradient_flow(model) as flow:
        for _ in range(3):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            expected.append(
                [
                    hand_statistics(p.grad)
                    for n, p in model.named_parameters()
                    if n.endswith("weight")
                ]
            )
            optimizer.step()
    assert flow.names == ["1.weight", "3.weight", "5.weight"]
    assert flow.steps == 3
    for stat, column in (("mean_abs", 0), ("max_abs", 1), ("norm", 2)):
        hand = torch.tensor(
            [[layer[column] for layer in step] for step in expected], dtype=torch.float64
        )
        torch.testing.assert_close(flow.statistic(stat), hand, rtol=1e-6, atol=0)
    # the weights changed between steps, so the rows differ: one row per step, not a copy
    assert not torch.equal(flow.norm[0], flow.norm[2])
    assert post_accumulate_hooks(model) == 0


def test_every_parameter_with_weights_only_false_and_rows_complete_inside_the_block() -> None:
    model = small_mlp()
    x, y = torch.randn(4, 1, 3, 4), torch.tensor([0, 1, 2, 0])
    with diag.record_gradient_flow(model, weights_only=False) as flow:
        F.cross_entropy(model(x), y).backward()
        assert flow.steps == 1  # complete as soon as every watched parameter has reported
        hand = [hand_statistics(p.grad)[2] for p in model.parameters()]
    assert flow.names == [n for n, _ in model.named_parameters()]
    torch.testing.assert_close(
        flow.norm[0], torch.tensor(hand, dtype=torch.float64), rtol=1e-6, atol=0
    )


def test_without_zero_grad_the_recorded_gradient_accumulates() -> None:
    model = small_mlp()
    x, y = torch.randn(4, 1, 3, 4), torch.tensor([0, 1, 2, 0])
    with diag.record_gradient_flow(model) as flow:
        F.cross_entropy(model(x), y).backward()
        F.cross_entropy(model(x), y).backward()  # same batch, no step: .grad doubles
    torch.testing.assert_close(flow.mean_abs[1], 2 * flow.mean_abs[0])
    torch.testing.assert_close(flow.max_abs[1], 2 * flow.max_abs[0])


class TwoHeads(nn.Module):
    """A parameter that some backward passes never reach (head b is used only when asked)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 2)
        self.b = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, use_b: bool = False) -> torch.Tensor:
        return self.a(x) + (self.b(x) if use_b else 0)


def test_a_parameter_without_gradient_is_nan_and_rows_still_split_per_backward() -> None:
    model = TwoHeads()
    x = torch.randn(5, 3)
    with diag.record_gradient_flow(model) as flow:
        model(x).sum().backward()
        model(x).sum().backward()
        model(x, use_b=True).sum().backward()
    assert flow.names == ["a.weight", "b.weight"]
    assert flow.steps == 3
    assert torch.isnan(flow.norm[:2, 1]).all() and not torch.isnan(flow.norm[2]).any()
    # a.weight's gradient accumulates over the three passes: 1x, 2x, 3x the first
    torch.testing.assert_close(
        flow.norm[:, 0], flow.norm[0, 0] * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    )


def test_hooks_are_removed_when_the_block_raises() -> None:
    model = small_mlp()
    with pytest.raises(RuntimeError, match="boom"):
        with diag.record_gradient_flow(model) as flow:
            model(torch.randn(2, 1, 3, 4)).sum().backward()
            raise RuntimeError("boom")
    assert flow.steps == 1
    assert post_accumulate_hooks(model) == 0 and count_hooks(model) == 0
    model(torch.randn(2, 1, 3, 4)).sum().backward()  # no hook fires any more
    assert flow.steps == 1


def test_recorder_rejects_bad_input() -> None:
    frozen = small_mlp().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        with diag.record_gradient_flow(frozen):
            pass
    with pytest.raises(TypeError, match="nn.Module"):
        with diag.record_gradient_flow("model"):  # type: ignore[arg-type]
            pass
    with pytest.raises(ValueError, match="statistic must be one of"):
        diag.GradientFlow(names=["w"]).statistic("median")


# --- the demo networks -------------------------------------------------------------------------


def test_deep_mlp_layers_and_seeding() -> None:
    for kind in diag.MLP_KINDS:
        model = diag.deep_mlp(kind, depth=5, width=16)
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        assert len(linears) == 6, kind  # 5 hidden layers + the output layer
        assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert sum(isinstance(m, nn.Sigmoid) for m in diag.deep_mlp("sigmoid", 5).modules()) == 5
    assert sum(isinstance(m, nn.BatchNorm1d) for m in diag.deep_mlp("batchnorm", 5).modules()) == 5
    assert (
        sum(isinstance(m, diag.ResidualBlock) for m in diag.deep_mlp("residual", 5).modules()) == 4
    )
    assert (
        sum(
            isinstance(m, nn.Sigmoid)
            for m in diag.deep_mlp("residual", 5, activation="sigmoid").modules()
        )
        == 5
    )
    state = torch.random.get_rng_state()
    a, b, c = (
        diag.deep_mlp("relu", 3, seed=1),
        diag.deep_mlp("relu", 3, seed=1),
        diag.deep_mlp("relu", 3, seed=2),
    )
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    assert torch.equal(a[1].weight, b[1].weight) and not torch.equal(a[1].weight, c[1].weight)
    kaiming = diag.deep_mlp("relu", 3, width=512, init="kaiming")[3]
    assert abs(kaiming.weight.std().item() - math.sqrt(2 / 512)) < 0.05 * math.sqrt(2 / 512)
    assert torch.count_nonzero(kaiming.bias) == 0
    with pytest.raises(ValueError, match="kind must be one of"):
        diag.deep_mlp("tanh")
    with pytest.raises(ValueError, match="pass activation only with"):
        diag.deep_mlp("relu", activation="sigmoid")
    with pytest.raises(ValueError, match="depth must be >= 1"):
        diag.deep_mlp("relu", depth=0)


def test_sigmoid_first_layer_gradient_is_at_least_100x_smaller(digits) -> None:
    """The lesson's claim, on 256 real digits: depth 10, PyTorch's default initialisation."""
    images, labels = digits
    first = {
        kind: diag.measure_gradient_flow(diag.deep_mlp(kind, depth=10), images, labels)
        .norm[0, 0]
        .item()
        for kind in diag.MLP_KINDS
    }
    print("first-layer gradient norms:", {k: f"{v:.2e}" for k, v in first.items()})
    for kind in ("relu", "batchnorm", "residual"):
        assert first[kind] >= 100 * first["sigmoid"], (kind, first)
    # and the norm falls layer after layer towards the input: the straight line on a log plot
    norms = diag.measure_gradient_flow(diag.deep_mlp("sigmoid", depth=10), images, labels).norm[0]
    assert bool((norms[1:] > norms[:-1]).all())


def test_measure_gradient_flow_matches_a_manual_backward_and_leaves_the_model_alone(digits) -> None:
    images, labels = digits[0][:32], digits[1][:32]
    model = diag.deep_mlp("batchnorm", depth=3, width=16)
    existing = torch.full_like(model[1].weight, 7.0)
    model[1].weight.grad = existing
    before = copy.deepcopy(model.state_dict())
    flow = diag.measure_gradient_flow(model, images, labels)
    twin = copy.deepcopy(model)
    twin.zero_grad(set_to_none=True)
    F.cross_entropy(twin(images), labels).backward()
    hand = [hand_statistics(p.grad)[2] for n, p in twin.named_parameters() if p.dim() > 1]
    torch.testing.assert_close(
        flow.norm[0], torch.tensor(hand, dtype=torch.float64), rtol=1e-6, atol=0
    )
    assert model[1].weight.grad is existing and bool((existing == 7.0).all())
    assert all(p.grad is None for n, p in model.named_parameters() if n != "1.weight")
    for key, value in model.state_dict().items():  # BatchNorm running statistics included
        assert torch.equal(value, before[key]), key
    assert model.training and count_hooks(model) == 0 and post_accumulate_hooks(model) == 0


def test_train_steps_learns_records_every_step_and_is_reproducible(digits) -> None:
    images, labels = digits
    model = diag.deep_mlp("batchnorm", depth=4, width=32).eval()
    run = diag.train_steps(model, images, labels, steps=60, batch_size=32, lr=0.05)
    again = diag.train_steps(
        diag.deep_mlp("batchnorm", depth=4, width=32).eval(),
        images,
        labels,
        steps=60,
        batch_size=32,
        lr=0.05,
    )
    assert len(run.losses) == 60 and run.flow.steps == 60
    assert run.losses == again.losses  # same seed, same batches, same numbers
    assert np.mean(run.losses[-10:]) < 0.6 * np.mean(run.losses[:10])
    assert not model.training  # the eval flag came back
    assert all(p.grad is None for p in model.parameters())
    assert post_accumulate_hooks(model) == 0
    sigmoid = diag.train_steps(diag.deep_mlp("sigmoid", depth=10), images, labels, steps=30)
    assert (
        np.mean(sigmoid.losses[-10:]) > 2.0
    )  # the vanishing gradient: nothing learnt (chance: ln 10 = 2.3)


def test_train_steps_rejects_bad_batches() -> None:
    model = small_mlp()
    with pytest.raises(TypeError, match="int64"):
        diag.train_steps(model, torch.rand(4, 1, 3, 4), torch.tensor([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="equal length"):
        diag.train_steps(model, torch.rand(4, 1, 3, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="non-finite"):
        diag.train_steps(model, torch.full((3, 1, 3, 4), float("nan")), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        diag.train_steps(model, torch.rand(3, 1, 3, 4), torch.tensor([0, 1, 2]), steps=0)


def test_plot_gradient_flow_draws_each_network_per_layer_and_over_time() -> None:
    flows = {}
    for label, scale in (("a", 1.0), ("b", 1e-6)):
        flow = diag.GradientFlow(names=["w1", "w2", "w3"])
        flow.rows = [
            {n: (scale * (i + 1), scale * 10 * (i + 1), scale) for i, n in enumerate(flow.names)}
            for _ in range(4)
        ]
        flows[label] = flow
    fig = diag.plot_gradient_flow(flows)
    assert isinstance(fig, Figure)
    per_layer, over_time = fig.axes
    assert per_layer.get_yscale() == "log" and over_time.get_yscale() == "log"
    assert len(per_layer.lines) == 4 and len(over_time.lines) == 2  # mean + max per network
    np.testing.assert_allclose(per_layer.lines[2].get_ydata(), [1e-6, 2e-6, 3e-6])
    with pytest.raises(ValueError, match="no backward pass recorded"):
        diag.plot_gradient_flow(diag.GradientFlow(names=["w"]))
    with pytest.raises(TypeError, match="GradientFlow"):
        diag.plot_gradient_flow({"a": [1, 2]})  # type: ignore[dict-item]


# --- TensorBoard -------------------------------------------------------------------------------


def tiny_cnn() -> nn.Sequential:
    """conftest's relu_cnn for 1-channel digits (4 and 8 channels, 10 classes), layers named by
    index, in train mode (the mode a training run logs in), seeded with 0."""
    torch.manual_seed(0)
    return nn.Sequential(*relu_cnn(1, (4, 8), 10))


def test_tensorboard_events_are_written_and_read_back(tmp_path, digits) -> None:
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    images, labels = digits[0][:100], digits[1][:100]
    model = tiny_cnn()
    initial = copy.deepcopy(model)
    log_dir = diag.train_with_tensorboard(
        model, images, labels, tmp_path / "runs" / "cnn", epochs=2, batch_size=40, seed=3
    )
    assert log_dir == tmp_path / "runs" / "cnn"
    events = EventAccumulator(
        str(log_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0}
    )
    events.Reload()
    tags = events.Tags()

    losses = events.Scalars("loss/train")
    assert [e.step for e in losses] == list(range(6))  # 2 epochs x 3 batches (40 + 40 + 20)
    first_batch = torch.randperm(100, generator=torch.Generator().manual_seed(3))[:40]
    expected = F.cross_entropy(initial(images[first_batch]), labels[first_batch]).item()
    assert losses[0].value == pytest.approx(expected, rel=1e-5)

    accuracy = events.Scalars("accuracy/train")
    assert [e.step for e in accuracy] == [0, 1] and all(0.0 <= e.value <= 1.0 for e in accuracy)
    assert {"grad_norm/0.weight", "grad_norm/7.weight"} <= set(tags["scalars"])
    for name, _ in model.named_parameters():
        assert f"gradients/{name}" in tags["histograms"] and f"weights/{name}" in tags["histograms"]
    weights = events.Histograms("weights/7.bias")[-1].histogram_value  # last epoch = final weights
    assert weights.num == 10 and weights.sum == pytest.approx(model[7].bias.sum().item(), abs=1e-5)

    saliency = events.Images("saliency")
    assert [e.step for e in saliency] == [0, 1]
    picture = np.asarray(Image.open(io.BytesIO(saliency[-1].encoded_image_string)))
    assert picture.shape == (28, 8 * 28, 3)  # the first 8 images side by side
    # the last epoch's pictures are those of the trained model, written as bytes 0..255
    expected = hand_saliency_pictures(model, images[:8]).permute(2, 0, 3, 1).reshape(28, 8 * 28, 3)
    assert np.abs(picture.astype(float) - 255 * expected.numpy()).max() <= 1.0
    assert events.Images("inputs")[0].step == 0
    assert model.training and all(p.grad is None for p in model.parameters())


def hand_saliency_pictures(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """|d y_c / d x| for the predicted class c, the model in eval mode (one grey channel, so no max
    over channels), coloured by ``viz.colorize`` as (B, 3, H, W)."""
    from gradviz_lab.viz import colorize

    twin = copy.deepcopy(model).eval()
    x = images.clone().requires_grad_(True)
    output = twin(x)
    (grad,) = torch.autograd.grad(output.max(dim=1).values.sum(), x)
    return torch.stack(
        [torch.from_numpy(colorize(g.abs().numpy(), signed=False)).permute(2, 0, 1) for g in grad[:, 0]]
    )


class Recorder:
    """A stand-in for SummaryWriter that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def add_images(self, tag, pictures, step, dataformats):
        self.calls.append((tag, pictures, step, dataformats))

    def add_histogram(self, tag, values, step):
        self.calls.append((tag, values.clone(), step))


def dropout_cnn() -> nn.Sequential:
    """tiny_cnn with dropout on the logits: in train mode its saliency would be random."""
    return nn.Sequential(*tiny_cnn(), nn.Dropout(0.5))


def test_saliency_pictures_are_the_coloured_gradient_magnitude_in_eval_mode() -> None:
    model, images = dropout_cnn().eval(), torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(4))
    before = snapshot(model)
    pictures = diag.saliency_pictures(model, images)
    assert_same_state(before, snapshot(model))
    torch.testing.assert_close(pictures, hand_saliency_pictures(model, images))
    assert pictures.shape == (3, 3, 12, 12) and 0 <= pictures.min() and pictures.max() <= 1
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        diag.saliency_pictures(model, images[0])


def test_log_saliency_images_writes_the_pictures_in_eval_mode_and_leaves_the_model_as_it_was() -> None:
    writer, model = Recorder(), dropout_cnn().train()
    model[3].eval()  # a mixed state: train mode, one eval submodule, a frozen weight, a .grad
    model[7].weight.requires_grad_(False)
    model[0].weight.grad = torch.full_like(model[0].weight, 0.25)
    images = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(5))
    before = snapshot(model)
    pictures = diag.log_saliency_images(writer, model, images, step=5)
    assert_same_state(before, snapshot(model))  # modes, requires_grad, .grad, buffers, hooks
    torch.testing.assert_close(pictures, hand_saliency_pictures(model, images))
    assert len(writer.calls) == 1
    tag, written, step, dataformats = writer.calls[0]
    assert (tag, step, dataformats) == ("saliency", 5, "NCHW") and written is pictures


def test_log_gradient_histograms_writes_each_parameters_grad() -> None:
    writer, model = Recorder(), tiny_cnn()
    model(torch.rand(2, 1, 12, 12)).sum().backward()
    model[3].bias.grad = None  # a parameter without a gradient is skipped
    assert diag.log_gradient_histograms(writer, model, step=1) == 5
    expected = [(f"gradients/{n}", p.grad, 1) for n, p in model.named_parameters() if p.grad is not None]
    assert [(tag, step) for tag, _, step in writer.calls] == [(t, s) for t, _, s in expected]
    for (_, values, _), (tag, grad, _) in zip(writer.calls, expected):
        assert torch.equal(values, grad), tag


def test_missing_tensorboard_gives_a_clear_install_message(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'gradviz-lab\[tensorboard\]'"):
        diag.summary_writer(tmp_path)


def test_tensorboard_command() -> None:
    assert diag.tensorboard_command() == "tensorboard --logdir runs"
    assert diag.tensorboard_command("runs/digits") == "tensorboard --logdir runs/digits"


def test_gradient_flow_command_prints_norms_and_writes_plot_and_logs(tmp_path, capsys) -> None:
    from gradviz_lab.cli import main

    out = tmp_path / "flow.png"
    code = main(
        [
            "gradient-flow",
            "--depth",
            "3",
            "--steps",
            "4",
            "--n-images",
            "64",
            "--out",
            str(out),
            "--tensorboard",
            str(tmp_path / "runs"),
            "--epochs",
            "1",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and out.read_bytes().startswith(b"\x89PNG")
    assert "first-layer gradient norm" in printed and "x sigmoid" in printed
    assert f"tensorboard --logdir {(tmp_path / 'runs').as_posix()}" in printed
    for kind in diag.MLP_KINDS:
        assert list((tmp_path / "runs" / kind).glob("events.out.tfevents.*")), kind


def test_gradient_flow_refuses_an_existing_out_before_training(tmp_path, capsys) -> None:
    from gradviz_lab.cli import main

    out = tmp_path / "flow.png"
    out.write_bytes(b"someone's plot")
    assert main(["gradient-flow", "--depth", "3", "--steps", "1", "--out", str(out)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == b"someone's plot"
