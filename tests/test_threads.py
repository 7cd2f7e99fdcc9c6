"""gradviz_lab.threads: one torch thread for a lab-size model, the caller's setting restored."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradviz_lab import threads


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_a_lab_size_model_runs_on_one_thread_and_the_setting_comes_back(two_threads):
    small = nn.Linear(10, 3)
    with threads.lab_threads(small):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError, match="inside"), threads.lab_threads(small):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == 2  # also after an exception


def test_a_large_model_keeps_the_callers_threads(two_threads):
    large = nn.Linear(3000, 2000)  # 6 million weights, more than LAB_SIZE_WEIGHTS
    assert not threads.is_lab_size(large) and threads.is_lab_size(nn.Linear(2000, 2000))
    with threads.lab_threads(large):
        assert torch.get_num_threads() == 2


def test_a_dashboard_computes_on_the_lab_threads_and_restores_the_callers(two_threads, monkeypatch):
    from test_widgets import CLASSES, tiny_cnn, tiny_images

    from gradviz_lab.widgets import saliency_dashboard

    seen = []
    model = tiny_cnn()
    model.register_forward_pre_hook(lambda module, inputs: seen.append(torch.get_num_threads()))
    dash = saliency_dashboard(model, tiny_images(), CLASSES)  # (its set-up probe counts no time)
    seen.clear()
    dash.controls["target"].value = 2
    assert dash.last_error is None and seen and set(seen) == {1}
    assert torch.get_num_threads() == 2


def test_gradviz_lab_starts_its_kernels_on_one_thread_unless_the_user_chose():
    from gradviz_lab import lab

    environment = lab.server_environment("t" * 32, {"PATH": "/bin", "JUPYTER_TOKEN_FILE": "x"})
    assert environment["OMP_NUM_THREADS"] == "1" and environment["JUPYTER_TOKEN"] == "t" * 32
    assert "JUPYTER_TOKEN_FILE" not in environment and environment["PATH"] == "/bin"
    chosen = lab.server_environment("t" * 32, {"OMP_NUM_THREADS": "4"})
    assert chosen["OMP_NUM_THREADS"] == "4"
