"""The emulated CPUs of `make test-portable` really change the kernels, and what the kit computes
to be exact is exact on all of them.

Each check runs a fresh Python under one setting of ``emulate_cpu.SETTINGS`` (the variables are
read when torch is imported, so it cannot be done in this process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import emulate_cpu  # noqa: E402

CPU_FLAGS = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""


def run_as(setting: str | None, code: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    env = emulate_cpu.environment(setting) if setting else dict(__import__("os").environ)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                          check=True)


KERNELS = """
import torch
torch.manual_seed(0)
x = torch.rand(8, 3, 64, 64, requires_grad=True)
conv = torch.nn.Conv2d(3, 16, 3)
conv(x).sum().backward()
print("ATEN", torch.backends.cpu.get_cpu_capability())
"""


@pytest.mark.parametrize(
    "setting, aten, onednn, mkl",
    [("sse41", "DEFAULT", "jit:sse41", "CNR:COMPATIBLE"), ("avx2", "AVX2", "jit:avx2", "CNR:AVX2")],
)
def test_each_setting_changes_the_kernels_of_all_three_libraries(setting, aten, onednn, mkl):
    if setting == "avx2" and " avx2" not in CPU_FLAGS:
        pytest.skip("this CPU has no AVX2: the setting cannot raise the instruction set")
    out = run_as(setting, KERNELS + "print((torch.rand(64, 64) @ torch.rand(64, 64)).sum())",
                 {"ONEDNN_VERBOSE": "1", "MKL_VERBOSE": "1"}).stdout
    assert f"ATEN {aten}" in out
    if torch.backends.mkldnn.is_available():
        assert onednn in out, out[-2000:]  # the convolution ran oneDNN's kernel for that ISA
    assert mkl in out, out[-2000:]  # the matrix product ran in MKL's reproducibility mode


def test_an_unknown_setting_lists_the_known_ones():
    with pytest.raises(SystemExit, match="sse41, avx2"):
        emulate_cpu.environment("avx1024")


EDGES = """
import hashlib, torch
from gradviz_lab.evaluate import edge_map
from gradviz_lab.data import make_shapes
x = make_shapes(4, seed=21).images
for images in (x, x.double()):
    print(hashlib.sha256(edge_map(None, images).numpy().tobytes()).hexdigest())
"""


def test_edge_map_is_the_same_to_the_last_bit_on_every_emulated_cpu():
    native = run_as(None, EDGES).stdout
    assert len(native.split()) == 2
    for setting in emulate_cpu.SETTINGS:
        assert run_as(setting, EDGES).stdout == native, setting


FLOAT64_CHAIN = """
import json, torch
from gradviz_lab import attribution, models, data
model = models.load_lab_model("shapes").double()
shapes = data.make_shapes(3, seed=3)
ig = attribution.integrated_gradients(model, shapes.images.double(), shapes.labels, steps=16, baseline="blur")
print(json.dumps([float(v) for v in ig.sum(dim=(1, 2, 3))]))
"""


def test_float64_lab_model_results_agree_across_emulated_cpus_far_below_the_printed_digits():
    """The lessons print float64 results with at most 4 significant digits; across CPUs they must
    agree to about 1e-12, so that no printed digit can move."""
    native = json.loads(run_as(None, FLOAT64_CHAIN).stdout)
    for setting in emulate_cpu.SETTINGS:
        other = json.loads(run_as(setting, FLOAT64_CHAIN).stdout)
        assert other == pytest.approx(native, rel=1e-12, abs=1e-12), setting


TRAIN_TINY = """
import sys
from gradviz_lab import train
tiny = train.Recipe(epochs=2, batch_size=32, lr=2e-3, weight_decay=1e-4, n_train=512, augment="affine", threads=1)
train.train_lab_model("digits", tiny, sys.argv[1], progress=False)
"""


def train_as(setting: str | None, out: Path) -> tuple[dict, dict]:
    env = emulate_cpu.environment(setting) if setting else None
    subprocess.run([sys.executable, "-c", TRAIN_TINY, str(out)], env=env, check=True, timeout=300,
                   capture_output=True)
    return (json.loads((out / "digits.json").read_text()),
            torch.load(out / "digits.pt", weights_only=True))


@pytest.mark.slow
def test_training_on_another_cpu_is_reproducible_there_and_close_to_here(tmp_path):
    """What `gradviz train` promises: the same weights bit for bit with the same torch release and
    the same kernels (recorded as the card's cpu_capability); on another CPU, other last bits that
    training amplifies a little, and the same accuracy. Measured: after this tiny run, the largest
    weight differs by 1.7e-4 of the layer's largest weight."""
    here_card, here = train_as(None, tmp_path / "here")
    there_card, there = train_as("sse41", tmp_path / "there")
    again_card, _ = train_as("sse41", tmp_path / "again")
    assert there_card["cpu_capability"] == "DEFAULT"
    assert here_card["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert again_card["weights_sha256"] == there_card["weights_sha256"]  # deterministic on that CPU too
    assert abs(here_card["accuracy"] - there_card["accuracy"]) <= 0.02
    for name, weight in here.items():
        assert (weight - there[name]).abs().max() <= 1e-2 * weight.abs().max(), name
