"""The kit as a pip user gets it: build the wheel and the sdist from this working tree, install the
wheel (not editable) into a fresh environment, and use it from a folder outside the repository.

Nothing is downloaded: the fresh environment reaches the packages already installed beside this
Python (torch, jupyter, pytest...) through a .pth file, and the wheel goes in with
``pip install --no-deps --no-index``. PYTHONPATH is removed, so the code under test is the
installed wheel, never this checkout (checked).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
MAX_WHEEL_BYTES = 15 * 1024 * 1024
# What the wheel must carry, as (folder in the repository, file patterns).
SHIPPED = {
    "data": ("README.md", "*.npz", "models/*.pt", "models/*.json", "photos/*.jpg", "textures/*.png"),
    "notebooks": ("*.ipynb",),
    "exercises": ("*.ipynb",),
    "solutions": ("*.ipynb",),
}


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        message = f"`{module}` is not installed here (it is in the dev extra: `make setup` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _run(command: list, cwd: Path, env: dict | None = None, timeout: float = 300) -> str:
    done = subprocess.run([str(part) for part in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _repository_files() -> list[str]:
    """Every file the wheel must carry, relative to the repository root."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for folder, patterns in SHIPPED.items()
        for pattern in patterns
        for path in (ROOT / folder).glob(pattern)
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel, built by `python -m build` (the wheel from the sdist, as pip does)."""
    _require("build")
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], cwd=ROOT)
    (wheel,), (sdist,) = out.glob("*.whl"), out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> dict:
    """A fresh environment with the wheel installed, and the environment variables to use it."""
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=venv).strip())
    # The packages this Python sees, reachable after the environment's own site-packages; never a
    # folder holding a gradviz_lab (this checkout on PYTHONPATH, or an editable install's path).
    parents = [entry for entry in sys.path
               if entry and Path(entry).is_dir() and not (Path(entry) / "gradviz_lab").exists()]
    (purelib / "_gradviz_test_parent.pth").write_text("\n".join(parents) + "\n")
    # --ignore-installed: the parent's (editable) gradviz-lab is neither uninstalled nor reused.
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index",
          "--ignore-installed", dist["wheel"]], cwd=venv)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "GRADVIZ_DATA")}
    env.update(MPLBACKEND="Agg", OMP_NUM_THREADS="1", PYTHONNOUSERSITE="1")
    scripts = python.parent
    return {"python": python, "gradviz": scripts / ("gradviz.exe" if os.name == "nt" else "gradviz"),
            "prefix": venv.resolve(), "env": env}


@pytest.fixture
def outside(tmp_path) -> Path:
    """A working folder outside the repository."""
    assert ROOT not in tmp_path.resolve().parents
    return tmp_path


def test_wheel_carries_the_data_the_course_and_the_licences(dist):
    names = set(zipfile.ZipFile(dist["wheel"]).namelist())
    missing = [f for f in _repository_files() if f"gradviz_lab/shipped/{f}" not in names]
    assert missing == [], f"not in the wheel: {missing}"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not [name for name in names if "/data/" in name and not name.startswith("gradviz_lab/")]
    size = dist["wheel"].stat().st_size
    assert size < MAX_WHEEL_BYTES, f"the wheel is {size / 2**20:.1f} MB"
    print(f"wheel {dist['wheel'].name}: {size / 2**20:.2f} MB, {len(names)} files")


def test_sdist_carries_the_top_level_folders(dist):
    with tarfile.open(dist["sdist"]) as archive:
        top = archive.getnames()[0].split("/")[0]
        names = {name.removeprefix(top + "/") for name in archive.getnames()}
    missing = [f for f in _repository_files() + ["LICENSE", "README.md", "pyproject.toml"] if f not in names]
    assert missing == [], f"not in the sdist: {missing}"


def test_twine_check_passes(dist):
    _require("twine")
    output = _run([sys.executable, "-m", "twine", "check", "--strict", dist["wheel"], dist["sdist"]], cwd=ROOT)
    assert output.count("PASSED") == 2, output


CHECK_INSTALLED = """
import json, hashlib, sys
from pathlib import Path
import gradviz_lab
from gradviz_lab import data, models
from gradviz_lab.shipped import shipped_dir, source_checkout

report = {"package": gradviz_lab.__file__, "checkout": str(source_checkout()),
          "data": str(shipped_dir("data")), "models": {}}
for name in models.LAB_MODELS:
    model = models.load_lab_model(name)
    report["models"][name] = type(model).__name__
train, test = data.load_digits("train"), data.load_digits("test")
shapes = data.make_shapes(6, seed=0)
report["textures"] = [list(texture.shape) for texture in data._texture_images()]  # make_shapes reads them lazily
report["digits"] = [len(train[0]), len(test[0])]
report["shapes"] = list(shapes.images.shape)
report["photos"] = {name: list(data.load_photo(name).shape) for name in data.PHOTOS}
print(json.dumps(report))
"""


def test_installed_wheel_loads_every_model_and_data_set(installed, outside):
    output = _run([installed["python"], "-c", CHECK_INSTALLED], cwd=outside, env=installed["env"])
    report = json.loads(output.strip().splitlines()[-1])
    prefix = str(installed["prefix"])
    assert report["package"].startswith(prefix), report["package"]  # the wheel, not this checkout
    assert report["data"].startswith(prefix) and report["checkout"] == "None"
    assert set(report["models"]) == {"digits", "digits-robust", "shapes", "shapes-tagged", "shapes-softplus", "shapes-vit"}
    assert report["digits"] == [4000, 1000] and report["shapes"] == [6, 3, 64, 64]
    assert report["photos"]["cat"] == [3, 256, 385] and len(report["photos"]) == 5
    assert report["textures"] == [[256, 256]] * 3


def test_installed_gradviz_explain_writes_a_png(installed, outside):
    _run([installed["gradviz"], "explain", "shapes:5", "--method", "gradcam", "--dpi", "40", "--out", "fig.png"],
         cwd=outside, env=installed["env"])
    assert (outside / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_installed_train_writes_into_the_working_folder_only(installed, outside):
    shipped = Path(_run([installed["python"], "-c", "from gradviz_lab.models import shipped_models_dir as d; print(d())"],
                        cwd=outside, env=installed["env"]).strip())
    before = {path.name: path.read_bytes() for path in shipped.iterdir()}
    _run([installed["gradviz"], "train", "digits", "--epochs", "1", "--n-train", "64", "--quiet"],
         cwd=outside, env=installed["env"])
    assert sorted(p.name for p in (outside / "lab-models").iterdir()) == ["digits.json", "digits.pt"]
    assert {path.name: path.read_bytes() for path in shipped.iterdir()} == before
    refused = subprocess.run([str(installed["gradviz"]), "train", "digits", "--epochs", "1", "--quiet",
                              "--out", str(shipped)], cwd=outside, env=installed["env"], capture_output=True, text=True)
    assert refused.returncode != 0 and "refusing to write into the installed package" in refused.stderr


def test_installed_course_runs_lesson_01_with_its_stored_outputs(installed, outside):
    output = _run([installed["gradviz"], "course", "my-course"], cwd=outside, env=installed["env"])
    course_files = [f for f in _repository_files() if not f.startswith("data/")]
    assert f"copied {len(course_files)} new file(s)" in output
    lesson = outside / "my-course" / "notebooks" / "01_occlusion.ipynb"
    assert lesson.read_bytes() == (ROOT / "notebooks" / "01_occlusion.ipynb").read_bytes()
    _run([installed["python"], "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
          "--nbval-sanitize-with", ROOT / "nbval_sanitize.cfg", lesson], cwd=outside / "my-course",
         env=installed["env"], timeout=600)


def test_installed_gradviz_lab_dry_run_prints_a_local_url_and_starts_nothing(installed, outside):
    output = _run([installed["gradviz"], "lab", "--dry-run", "my-course"], cwd=outside, env=installed["env"], timeout=60)
    assert "http://127.0.0.1:" in output and "token=" in output and "nothing started" in output
    assert not (outside / "my-course").exists()  # a dry run copies nothing either


def _editable_build_stderr(project: Path, out: Path, env_extra: dict) -> str:
    """stderr of setuptools' build_editable, as pip runs it for `pip install -e .`."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    env.update(env_extra)
    code = f"from setuptools import build_meta; build_meta.build_editable({str(out)!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(out.glob("*.whl")), "no editable wheel was built"
    return done.stderr


def test_make_setup_hides_setuptools_editable_install_notice_and_only_it(tmp_path):
    """issue 18: every `make setup` printed setuptools' "Editable installation ... please be
    careful" notice. The Makefile's filter must silence it (and the notice must exist without it,
    or this test proves nothing)."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    (setting,) = re.findall(r'^QUIET_EDITABLE := PYTHONWARNINGS="([^"]+)"$', makefile, flags=re.M)
    installs = [line for line in makefile.splitlines() if "pip install" in line and " -e " in line]
    assert installs and all(line.strip().startswith("$(QUIET_EDITABLE) ") for line in installs), installs
    assert setting == "ignore:Editable installation"  # a message filter: no other warning is hidden
    project = tmp_path / "project"  # a copy: the build writes build/ and *.egg-info next to the code
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", "figures", "lab-models"))
    (tmp_path / "plain").mkdir()
    (tmp_path / "quiet").mkdir()
    plain = _editable_build_stderr(project, tmp_path / "plain", {})
    assert "Editable installation" in plain, plain[-2000:]
    quiet = _editable_build_stderr(project, tmp_path / "quiet", {"PYTHONWARNINGS": setting})
    assert "Editable installation" not in quiet, quiet[-2000:]
