"""Where the shipped folders are found: a clone, an installed package, or GRADVIZ_DATA; and the
packaging configuration that puts them inside the package. (tests/test_wheel.py builds and
installs the real wheel.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gradviz_lab import data
from gradviz_lab.shipped import FOLDERS, ShippedFileMissingError, shipped_dir, shipped_file, source_checkout

ROOT = Path(__file__).resolve().parents[1]


def test_in_a_clone_the_folders_are_the_clones_own():
    assert source_checkout() == ROOT
    for folder in FOLDERS:
        assert shipped_dir(folder) == ROOT / folder


def test_gradviz_data_overrides_the_data_folder_only(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVIZ_DATA", str(tmp_path))
    assert shipped_dir("data") == tmp_path
    assert shipped_dir("notebooks") == ROOT / "notebooks"


def test_a_missing_file_names_itself_and_the_ways_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADVIZ_DATA", str(tmp_path))
    with pytest.raises(ShippedFileMissingError, match=r"cat\.jpg is missing.*pip install.*GRADVIZ_DATA"):
        data.load_photo("cat")
    with pytest.raises(FileNotFoundError):  # ShippedFileMissingError is one
        shipped_file("data", "digits.npz")
    with pytest.raises(ValueError, match="data, notebooks, exercises, solutions"):
        shipped_dir("weights")


def _fake_install(site: Path) -> None:
    """gradviz_lab as a wheel lays it out (only what gradviz_lab.shipped imports), with a data file."""
    package = site / "gradviz_lab"
    (package / "shipped" / "data").mkdir(parents=True)
    shutil.copy(ROOT / "gradviz_lab" / "__init__.py", package / "__init__.py")
    shutil.copy(ROOT / "gradviz_lab" / "shipped" / "__init__.py", package / "shipped" / "__init__.py")
    (package / "shipped" / "data" / "README.md").write_text("installed copy")


def _where_installed(site: Path) -> list[str]:
    probe = ("from gradviz_lab.shipped import shipped_file, source_checkout; "
             "print(source_checkout()); print(shipped_file('data', 'README.md'))")
    env = {key: value for key, value in os.environ.items() if key != "GRADVIZ_DATA"}
    env["PYTHONPATH"] = str(site)
    done = subprocess.run([sys.executable, "-c", probe], cwd=site.parent, env=env, capture_output=True, text=True,
                          timeout=60)  # not from the clone: `python -c` puts the working folder first on sys.path
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")


def test_an_installed_package_finds_the_copy_inside_it(tmp_path):
    site = tmp_path / "site-packages"
    _fake_install(site)
    # an unrelated project's pyproject.toml above the package is not mistaken for a clone
    (site / "pyproject.toml").write_text('[project]\nname = "something-else"\n')
    checkout, readme = _where_installed(site)[:2]
    assert checkout == "None"
    assert Path(readme) == site / "gradviz_lab" / "shipped" / "data" / "README.md"


def test_packaging_lists_every_subpackage_and_maps_the_top_level_folders():
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(tool["packages"])
    code = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "gradviz_lab").rglob("__init__.py")}
    assert code <= listed, f"subpackages missing from [tool.setuptools] packages: {sorted(code - listed)}"
    assert tool["package-dir"] == {f"gradviz_lab.shipped.{folder}": folder for folder in FOLDERS}
    for subfolder in ("models", "photos", "textures"):
        assert f"gradviz_lab.shipped.data.{subfolder}" in listed and (ROOT / "data" / subfolder).is_dir()
    assert {name.rpartition(".")[0] for name in listed if name.startswith("gradviz_lab.shipped.")} <= {
        "gradviz_lab.shipped", "gradviz_lab.shipped.data"}
