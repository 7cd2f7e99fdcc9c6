"""The kit's one training loop (gradviz_lab.training_loop) and its one accuracy
(gradviz_lab.evaluate.report.accuracy, which train and diagnostics use).

Oracles: SGD steps on a linear model computed by hand (dL/dW = (softmax(W x + b) - onehot(y)) x^T / B
for the mean cross-entropy), a model whose logits depend on its mode, and counts done by hand.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradviz_lab import diagnostics, train
from gradviz_lab.diagnostics import tensorboard as diagnostics_tensorboard
from gradviz_lab.evaluate import accuracy
from gradviz_lab.evaluate import report
from gradviz_lab.hooks import training_mode
from gradviz_lab.training_loop import train_batches


def linear_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).double()


def batches_of(seed: int, n: int = 3, size: int = 5) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, 1, 2, 2, generator=generator, dtype=torch.float64),
         torch.randint(0, 3, (size,), generator=generator))
        for _ in range(n)
    ]


def test_sgd_steps_match_the_hand_computed_gradient_and_the_losses_are_before_each_step():
    model = linear_model()
    W, b = (p.detach().clone() for p in model[1].parameters())
    lr = 0.1
    data = batches_of(1)
    losses = train_batches(model, iter(data), torch.optim.SGD(model.parameters(), lr=lr))
    expected_losses = []
    for x, y in data:
        x = x.flatten(1)
        p = torch.softmax(x @ W.T + b, dim=1)
        expected_losses.append(float(-p[torch.arange(len(y)), y].log().mean()))
        delta = (p - nn.functional.one_hot(y, 3).double()) / len(y)  # dL/dz for the mean loss
        W, b = W - lr * delta.T @ x, b - lr * delta.sum(0)
    torch.testing.assert_close(model[1].weight.detach(), W, rtol=0, atol=1e-12)
    torch.testing.assert_close(model[1].bias.detach(), b, rtol=0, atol=1e-12)
    assert losses == pytest.approx(expected_losses, abs=1e-12)


def test_the_same_batches_and_seed_give_the_same_weights_bit_for_bit():
    runs = []
    for _ in range(2):
        model = linear_model(seed=4)
        train_batches(model, batches_of(2, n=5), torch.optim.AdamW(model.parameters(), lr=0.01))
        runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_callbacks_see_the_gradients_before_the_step_and_the_schedule_steps_once_per_batch():
    model = linear_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    seen = []

    def before(number, loss):
        seen.append(("before", number, model[1].weight.grad is not None, model[1].weight.detach().clone()))

    def after(number, loss):
        seen.append(("after", number, optimizer.param_groups[0]["lr"], model[1].weight.detach().clone()))

    train_batches(model, batches_of(3, n=3), optimizer, schedule=schedule, before_step=before, after_step=after)
    assert [s[:2] for s in seen] == [(w, n) for n in range(3) for w in ("before", "after")]
    assert all(s[2] is True for s in seen if s[0] == "before")  # .grad is there to be logged
    assert [s[2] for s in seen if s[0] == "after"] == [0.5, 0.25, 0.125]
    for n in range(3):  # the step happens between the two callbacks
        assert not torch.equal(seen[2 * n][3], seen[2 * n + 1][3])


def test_modes_are_restored_and_grads_cleared_also_when_a_batch_fails():
    model = linear_model()
    model.eval()
    model[1].train()  # a mixed state, restored module by module
    modes = [m.training for m in model.modules()]
    inside = []

    def broken_batches():
        inside.append([m.training for m in model.modules()])
        yield batches_of(5, n=1)[0]
        raise RuntimeError("the data ran dry")

    with pytest.raises(RuntimeError, match="ran dry"):
        train_batches(model, broken_batches(), torch.optim.SGD(model.parameters(), lr=0.1))
    assert inside == [[True, True, True]]  # trained in train mode
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())

    with training_mode(model, True):
        assert all(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == modes


def test_train_and_diagnostics_use_the_one_loop_and_the_one_accuracy():
    assert train.accuracy is report.accuracy is accuracy
    assert diagnostics_tensorboard.accuracy is accuracy
    assert train.train_batches is train_batches
    from gradviz_lab.diagnostics import gradient_flow
    assert gradient_flow.train_batches is train_batches


def test_train_steps_is_still_reproducible_and_restores_the_mode():
    images = torch.rand(40, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(40) % 10
    runs = []
    for _ in range(2):
        net = diagnostics.deep_mlp("batchnorm", 3, seed=1).eval()
        run = diagnostics.train_steps(net, images, labels, 6, batch_size=16)
        assert not net.training and all(p.grad is None for p in net.parameters())
        runs.append((run.losses, [p.detach().clone() for p in net.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


# --- the one accuracy ------------------------------------------------------------------------


class ModeDependent(nn.Module):
    """Logits = the input in eval mode, minus the input in train mode: a model whose answer
    depends on its mode, like one with dropout or batch norm."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x.flatten(1))
        return -logits if self.training else logits


def test_accuracy_runs_the_model_in_eval_mode_and_restores_every_modules_mode():
    logits = torch.tensor([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [5.0, 4.0], [1.0, 0.0]]).view(5, 1, 1, 2)
    labels = torch.tensor([1, 0, 0, 1, 0])
    # eval-mode argmax: 1, 0, 1, 0, 0 -> right on images 0, 1, 4: 3/5 (train mode would give 2/5)
    model = ModeDependent().train()
    model.inner.eval()
    assert accuracy(model, logits, labels, batch_size=2) == 3 / 5
    assert model.training and not model.inner.training


def test_accuracy_uses_batch_norm_running_statistics_and_leaves_them_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(1), nn.Flatten()).train()
    model[0].running_mean.fill_(10.0)  # eval mode subtracts 10 from every pixel
    images = torch.tensor([[11.0, 12.0], [9.0, 10.5], [20.0, 5.0]]).view(3, 1, 1, 2)
    # (x - 10) / sqrt(1 + eps): argmax 1, 1, 0
    assert accuracy(model, images, torch.tensor([1, 0, 0])) == 2 / 3
    assert float(model[0].running_mean) == 10.0 and model.training


def test_accuracy_is_the_exact_fraction_right():
    model = nn.Flatten()
    images = torch.eye(7)[:, :3].reshape(7, 1, 1, 3) + 0.0  # one-hot rows: argmax 0, 1, 2, then 0s
    labels = torch.tensor([0, 1, 2, 1, 1, 1, 2])
    # right: images 0, 1, 2 (argmax of an all-zero row is 0, so images 3-6 are wrong)
    assert accuracy(model, images, labels, batch_size=3) == 3 / 7
