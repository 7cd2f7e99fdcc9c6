"""The setup itself: dependency lists agree, the console script answers, setup is a no-op twice."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """'torch>=2.1' -> 'torch' (PEP 503 normalised)."""
    name = re.match(r"\s*([A-Za-z0-9_.\-]+)", requirement).group(1)
    return re.sub(r"[-_.]+", "-", name).lower()


def _spec(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement[len(re.match(r"\s*[A-Za-z0-9_.\-]+", requirement).group(0)):])


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {_name(r): _spec(r) for r in reqs}


def _environment_yml_requirements() -> tuple[dict[str, str], dict[str, str]]:
    """(conda + pip requirements, pip-only requirements) from environment.yml.

    The file is a flat list, so a line-based reader is enough and needs no YAML dependency.
    """
    conda, pip = {}, {}
    in_dependencies = in_pip = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if re.match(r"^\S", line):  # a top-level key: name, channels, dependencies
            in_dependencies = line.startswith("dependencies:")
            continue
        if not in_dependencies:
            continue
        if re.match(r"^\s+- pip:\s*$", line):
            in_pip = True
            continue
        item = re.match(r"^(\s+)- (.+?)\s*$", line)
        if not item or line.lstrip().startswith("#"):
            continue
        entry = item.group(2)
        if entry.startswith("-e ") or entry in ("pip",) or entry.startswith("python="):
            continue
        target = pip if in_pip else conda
        target[_name(entry)] = _spec(entry)
    return {**conda, **pip}, pip


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    pyproject = _pyproject_requirements()
    environment, _ = _environment_yml_requirements()
    assert set(environment) == set(pyproject), (
        f"only in environment.yml: {sorted(set(environment) - set(pyproject))}; "
        f"only in pyproject.toml: {sorted(set(pyproject) - set(environment))}"
    )
    for name in pyproject:
        if name in ("torch", "torchvision"):
            continue  # pinned as a pair, checked below
        assert environment[name] == pyproject[name], f"{name}: {environment[name]} vs {pyproject[name]}"


def test_torch_pair_is_pinned_identically_everywhere():
    pair = {}
    for line in (ROOT / "requirements/torch-pair.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pair[_name(line)] = _spec(line)
    assert set(pair) == {"torch", "torchvision"}
    _, pip = _environment_yml_requirements()
    assert {k: pip[k] for k in pair} == pair
    # the ranges in pyproject.toml must admit the pinned pair
    from packaging.specifiers import SpecifierSet

    pyproject = _pyproject_requirements()
    for name, pin in pair.items():
        assert SpecifierSet(pyproject[name]).contains(pin.lstrip("=")), (name, pin)


def _gradviz_script() -> str:
    script = Path(sys.executable).with_name("gradviz")
    return str(script) if script.exists() else shutil.which("gradviz")


def test_console_script_help_and_version():
    script = _gradviz_script()
    assert script, "the gradviz console script is not installed (pip install -e .)"
    from gradviz_lab import __version__

    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"gradviz-lab {__version__}"
    helped = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert "usage: gradviz" in helped.stdout
    bad = subprocess.run([script, "no-such-command"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_top_level_help_answers_without_importing_torch():
    """`gradviz --help` must answer at once: only the subcommand being run is imported."""
    probe = (
        "import sys\n"
        "from gradviz_lab import cli\n"
        "try:\n"
        "    cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('IMPORTED' if 'torch' in sys.modules else 'CLEAN')\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("CLEAN"), out.stdout[-300:]
    # `gradviz lab` and `gradviz course` start at once too: they never import torch
    lab = subprocess.run([sys.executable, "-c", "import sys, gradviz_lab.lab; print('torch' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert lab.stdout.strip() == "False"
    for name in ("train", "explain", "exercises", "gradient-flow", "course", "lab"):
        helped = subprocess.run(
            [sys.executable, "-m", "gradviz_lab.cli", name, "--help"], capture_output=True, text=True
        )
        assert helped.returncode == 0 and f"usage: gradviz {name}" in helped.stdout, helped.stderr[-500:]


def test_second_setup_reinstalls_nothing():
    """After `make setup`, the stamp is newer than its inputs: make has nothing to do."""
    stamp = ROOT / ".venv" / ".gradviz-installed"
    if not stamp.exists() or not shutil.which("make"):
        pytest.skip("not set up through the Makefile (no .venv/.gradviz-installed)")
    dry_run = subprocess.run(["make", "-n", "setup"], cwd=ROOT, capture_output=True, text=True)
    assert "pip install" not in dry_run.stdout, dry_run.stdout
    question = subprocess.run(["make", "-q", "setup"], cwd=ROOT)
    assert question.returncode == 0
