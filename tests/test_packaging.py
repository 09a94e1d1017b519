"""pyproject.toml and environment.yml declare the same packages; the public API is curated."""

from __future__ import annotations

import pathlib
import re
import tomllib

import yaml

import perfkit

ROOT = pathlib.Path(__file__).resolve().parents[1]
# conda-forge spells a few packages differently
CONDA_NAMES = {"duckdb": "python-duckdb", "psycopg[binary]": "psycopg"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ ]", req, maxsplit=1)[0].strip().lower()


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        pip_names |= {_name(r) for r in extra}
    pip_names = {CONDA_NAMES.get(n, n) for n in pip_names}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_names = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    assert pip_names == conda_names


def test_public_api_is_declared():
    for name in perfkit.__all__:
        assert hasattr(perfkit, name), name
    assert issubclass(perfkit.ValidationError, ValueError)
    assert issubclass(perfkit.ValidationError, perfkit.PerfkitError)
