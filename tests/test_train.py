"""Training: tiny runs that finish in seconds, to check determinism, the files written, the
evaluation and the command line. (The full recipes' results are checked on the shipped weights,
in test_models_lab.py.)"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from gradviz_lab import cli, train
from gradviz_lab.models import ShapesCNN, SoftplusShapesCNN, lab_weights_path, load_lab_model
from gradviz_lab.attribution.integrated import blurred
from gradviz_lab.train import (
    RECIPES,
    Recipe,
    accuracy,
    add_noise,
    fold_batch_norm,
    random_affine,
    toward_baseline,
    train_lab_model,
)

TINY = Recipe(epochs=2, batch_size=32, lr=2e-3, weight_decay=1e-4, n_train=512, augment="affine", threads=1)


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("run_a")
    return out, train_lab_model("digits", TINY, out, progress=False)


def test_writes_weights_and_a_model_card(tiny_digits):
    out, card = tiny_digits
    weights, card_path = lab_weights_path("digits", out), lab_weights_path("digits", out).with_suffix(".json")
    assert weights.is_file() and card_path.is_file()
    assert json.loads(card_path.read_text()) == card
    assert card["recipe"] == dataclasses.asdict(TINY)
    assert card["weights_sha256"] == train.sha256(weights)
    assert card["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert card["evaluated_on"].startswith("shipped MNIST test split")
    # two epochs on 512 digits is far from good, but far above chance (10%)
    assert 0.3 < card["accuracy"] <= 1.0


def test_the_card_accuracy_is_the_loaded_models_accuracy(tiny_digits):
    out, card = tiny_digits
    from gradviz_lab.data import load_digits

    images, labels = load_digits("test")
    with torch.no_grad():
        by_hand = float((load_lab_model("digits", weights_dir=out)(images).argmax(1) == labels).float().mean())
    assert by_hand == pytest.approx(card["accuracy"], abs=1e-6)


def test_same_recipe_same_weights_bit_for_bit(tiny_digits, tmp_path):
    out, _ = tiny_digits
    train_lab_model("digits", TINY, tmp_path, progress=False)
    first = torch.load(lab_weights_path("digits", out), weights_only=True)
    second = torch.load(lab_weights_path("digits", tmp_path), weights_only=True)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_another_seed_gives_other_weights(tiny_digits, tmp_path):
    out, _ = tiny_digits
    train_lab_model("digits", dataclasses.replace(TINY, seed=1), tmp_path, progress=False)
    first = torch.load(lab_weights_path("digits", out), weights_only=True)
    other = torch.load(lab_weights_path("digits", tmp_path), weights_only=True)
    assert not torch.equal(first["features.0.weight"], other["features.0.weight"])


def test_training_restores_global_torch_settings(tmp_path):
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with pytest.raises(ValueError, match="augment"):
        train_lab_model("digits", dataclasses.replace(TINY, augment="mixup"), tmp_path, progress=False)
    with train.deterministic(1):
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


def test_tagged_card_reports_the_drop(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "SHAPES_TEST_SIZE", 200)  # a smaller evaluation set, for speed
    recipe = dataclasses.replace(RECIPES["shapes-tagged"], epochs=1, n_train=128, threads=1)
    card = train_lab_model("shapes-tagged", recipe, tmp_path, progress=False)
    for key in ("accuracy", "accuracy_with_tag", "tagged_class_accuracy_with_tag",
                "tagged_class_accuracy_without_tag"):  # fmt: skip
        assert 0.0 <= card[key] <= 1.0
    drop = card["tagged_class_accuracy_with_tag"] - card["tagged_class_accuracy_without_tag"]
    assert card["tagged_class_drop_points"] == pytest.approx(100 * drop)
    assert card["recipe"]["tag_prob"] == 1.0
    assert card["evaluated_on"] == f"make_shapes(200, seed={train.SHAPES_TEST_SEED})"


def test_softplus_model_trains_folds_and_loads_as_softplus(tmp_path, monkeypatch):
    monkeypatch.setattr(train, "SHAPES_TEST_SIZE", 200)
    recipe = dataclasses.replace(RECIPES["shapes-softplus"], epochs=1, n_train=128, threads=1)
    card = train_lab_model("shapes-softplus", recipe, tmp_path, progress=False)
    assert card["architecture"] == "SoftplusShapesCNN"
    assert RECIPES["shapes"] == RECIPES["shapes-softplus"]  # only the activation differs
    model = load_lab_model("shapes-softplus", weights_dir=tmp_path)
    assert type(model) is SoftplusShapesCNN
    assert not any(isinstance(m, (nn.ReLU, nn.BatchNorm2d)) for m in model.modules())


def test_accuracy_counts_argmax_hits_and_keeps_the_mode():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1)  # the "logits" are the input itself

    model = Fixed().train()
    logits = torch.tensor([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [5.0, 4.0]]).view(4, 1, 1, 2)  # 4 "images"
    assert accuracy(model, logits, torch.tensor([1, 0, 0, 1]), batch_size=3) == 0.5
    assert model.training


def test_random_affine_is_seeded_small_and_keeps_the_digit_in_frame():
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 12:16, 12:16] = 1.0  # a square at the centre
    a = random_affine(images, torch.Generator().manual_seed(0))
    b = random_affine(images, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == images.shape
    assert not torch.equal(a, images)
    ys = torch.arange(28.0).view(1, 1, 28, 1)
    xs = torch.arange(28.0).view(1, 1, 1, 28)
    mass = a.sum((1, 2, 3))
    centre_y, centre_x = (a * ys).sum((1, 2, 3)) / mass, (a * xs).sum((1, 2, 3)) / mass
    # shifts of at most 2 px (plus a little from rotation/scale about the exact centre 13.5)
    assert float((centre_y - 13.5).abs().max()) <= 2.5 and float((centre_x - 13.5).abs().max()) <= 2.5
    # scaling by 0.9..1.1 changes the area by at most ~21%
    assert float((mass / 16 - 1).abs().max()) < 0.25


def test_cli_trains_and_reports(tmp_path, capsys):
    code = cli.main(["train", "digits", "--epochs", "1", "--n-train", "64", "--threads", "1",
                     "--out", str(tmp_path), "--quiet"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "digits: accuracy" in printed and str(tmp_path) in printed
    card = json.loads(lab_weights_path("digits", tmp_path).with_suffix(".json").read_text())
    assert card["recipe"]["epochs"] == 1 and card["recipe"]["n_train"] == 64


def test_cli_rejects_bad_values(tmp_path):
    with pytest.raises(SystemExit, match="--epochs must be positive"):
        cli.main(["train", "digits", "--epochs", "0", "--out", str(tmp_path), "--quiet"])
    with pytest.raises(SystemExit):
        cli.main(["train", "cifar"])  # argparse: invalid choice


@pytest.mark.parametrize("architecture", [ShapesCNN, SoftplusShapesCNN])
def test_folding_batch_norm_keeps_the_function(architecture):
    """The shipped shapes models are trained with BatchNorm, then folded: same outputs, no BN,
    and the same class (a folded softplus model must stay softplus)."""
    torch.manual_seed(0)
    trained = architecture(batch_norm=True)
    with torch.no_grad():  # statistics and affine parameters far from the identity
        for module in trained.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.3, 3.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
    trained.eval()
    folded = fold_batch_norm(trained)
    assert type(folded) is architecture and not folded.training
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert list(folded.state_dict()) == list(architecture().state_dict())  # loadable by load_lab_model
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(folded(x), trained(x), atol=1e-5)
        assert torch.allclose(folded.features(x), trained.features(x), atol=1e-5)


def test_folding_needs_batch_norm_and_batch_norm_needs_shapes(tmp_path):
    with pytest.raises(ValueError, match="one BatchNorm after every conv"):
        fold_batch_norm(ShapesCNN())
    with pytest.raises(ValueError, match="batch_norm=True is for the shapes models"):
        train_lab_model("digits", dataclasses.replace(TINY, batch_norm=True), tmp_path, progress=False)


# --------------------------------------------------------------------------------------------
# Optional smoothing: noisy copies and mixup toward the baseline
# --------------------------------------------------------------------------------------------


def test_toward_baseline_moves_each_chosen_image_along_its_path_and_mixes_its_label():
    x = torch.rand(6, 3, 16, 16)
    targets = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 4, 0]), 5).float()
    mixed, mixed_targets = toward_baseline(x, targets, 1.0, "blur", torch.Generator().manual_seed(3))
    # The same draws by hand: first "is it moved" (all are, prob 1), then a = 1 - U(0, 1).
    draws = torch.Generator().manual_seed(3)
    torch.rand(6, generator=draws)
    a = 1 - torch.rand(6, generator=draws)
    start = blurred(x, sigma=1.6)  # the "blur" baseline: std 10% of the 16-px side
    for i in range(6):
        assert torch.allclose(mixed[i], start[i] + a[i] * (x[i] - start[i]), atol=1e-6)
        label = int(targets[i].argmax())
        assert mixed_targets[i, label] == pytest.approx(float(a[i] + (1 - a[i]) / 5), abs=1e-6)
        others = [c for c in range(5) if c != label]
        assert torch.allclose(mixed_targets[i, others], (1 - a[i]) / 5 * torch.ones(4), atol=1e-6)
    assert torch.allclose(mixed_targets.sum(1), torch.ones(6))


def test_toward_baseline_with_prob_0_changes_nothing_and_zeros_scales_the_image():
    x, targets = torch.rand(4, 1, 8, 8), torch.eye(4)
    same, same_targets = toward_baseline(x, targets, 0.0, "zeros", torch.Generator().manual_seed(0))
    assert torch.equal(same, x) and torch.equal(same_targets, targets)
    darker, _ = toward_baseline(x, targets, 1.0, "zeros", torch.Generator().manual_seed(0))
    ratio = darker.flatten(1) / x.flatten(1)  # x' = 0: every pixel of an image scaled by its a
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)
    assert bool(((ratio[:, 0] > 0) & (ratio[:, 0] <= 1)).all())


def test_add_noise_draws_one_std_per_image_up_to_the_maximum():
    x = torch.zeros(5, 3, 64, 64)
    noisy = add_noise(x, 0.2, torch.Generator().manual_seed(1))
    sigma = 0.2 * torch.rand(5, generator=torch.Generator().manual_seed(1))
    measured = noisy.flatten(1).std(1)
    assert torch.allclose(measured, sigma, rtol=0.05), (measured, sigma)  # 12,288 pixels each
    assert torch.equal(add_noise(x, 0.0, torch.Generator().manual_seed(1)), x)


def test_a_smoothed_recipe_trains_reproducibly_and_is_recorded(tiny_digits, tmp_path):
    out, _ = tiny_digits
    smooth = dataclasses.replace(TINY, noise=0.1, baseline_mixup=0.5, mixup_baseline="zeros")
    first = train_lab_model("digits", smooth, tmp_path / "a", progress=False)
    second = train_lab_model("digits", smooth, tmp_path / "b", progress=False)
    assert first["weights_sha256"] == second["weights_sha256"]
    assert first["recipe"]["noise"] == 0.1 and first["recipe"]["baseline_mixup"] == 0.5
    assert first["weights_sha256"] != train.sha256(lab_weights_path("digits", out))  # the options act
    assert first["accuracy"] > 0.3  # still learns


@pytest.mark.parametrize(
    "change, message",
    [
        ({"noise": -0.1}, "noise must be a finite std"),
        ({"noise": float("nan")}, "noise must be a finite std"),
        ({"baseline_mixup": 1.5}, "baseline_mixup must be a probability"),
        ({"mixup_baseline": "black"}, "mixup_baseline must be 'blur' or 'zeros'"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
    ],
)
def test_bad_smoothing_settings_are_refused(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        train_lab_model("digits", dataclasses.replace(TINY, **change), tmp_path, progress=False)
    assert not lab_weights_path("digits", tmp_path).exists()


def test_cli_passes_the_smoothing_options_and_refuses_bad_ones(tmp_path):
    code = cli.main(["train", "digits", "--epochs", "1", "--n-train", "64", "--out", str(tmp_path), "--quiet",
                     "--lr", "1e-3", "--noise", "0.05", "--baseline-mixup", "0.3", "--mixup-baseline", "zeros"])
    assert code == 0
    recipe = json.loads(lab_weights_path("digits", tmp_path).with_suffix(".json").read_text())["recipe"]
    assert (recipe["lr"], recipe["noise"], recipe["baseline_mixup"], recipe["mixup_baseline"]) == (
        1e-3, 0.05, 0.3, "zeros")
    with pytest.raises(SystemExit, match="gradviz train: baseline_mixup must be a probability"):
        cli.main(["train", "digits", "--baseline-mixup", "2", "--out", str(tmp_path), "--quiet"])


def test_train_without_out_writes_into_the_working_folder_and_leaves_shipped_files_untouched(tmp_path, monkeypatch):
    from gradviz_lab.models import shipped_models_dir

    shipped = shipped_models_dir()
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in shipped.iterdir()}
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "digits", "--epochs", "1", "--n-train", "64", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "lab-models").iterdir()) == ["digits.json", "digits.pt"]
    assert {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in shipped.iterdir()} == before
    # a second run replaces its own earlier output, which its card vouches for
    assert cli.main(["train", "digits", "--epochs", "1", "--n-train", "64", "--quiet", "--seed", "1"]) == 0
    load_lab_model("digits", weights_dir=tmp_path / "lab-models")


def test_train_refuses_the_package_folder_and_a_file_it_did_not_write(tmp_path):
    import gradviz_lab

    package = Path(gradviz_lab.__file__).parent
    with pytest.raises(SystemExit, match="refusing to write into the installed package"):
        cli.main(["train", "digits", "--epochs", "1", "--quiet", "--out", str(package / "weights")])
    assert not (package / "weights").exists()
    (tmp_path / "digits.pt").write_bytes(b"someone's file")
    with pytest.raises(SystemExit, match=r"refusing to replace .*digits\.pt"):
        cli.main(["train", "digits", "--epochs", "1", "--quiet", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="refusing to replace"):
        train_lab_model("digits", TINY, tmp_path, progress=False)
    assert (tmp_path / "digits.pt").read_bytes() == b"someone's file"
