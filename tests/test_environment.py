"""environment.yml (conda) and pyproject.toml (pip) must describe the same environment."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _spec(requirement: str) -> str:
    """The version specifier of a requirement ("" when unpinned), without spaces."""
    name = re.split(r"[<>=!\[ ]", requirement, maxsplit=1)[0]
    return requirement[len(name) :].replace(" ", "")


def test_conda_environment_lists_every_pip_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for reqs in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in reqs if not r.startswith("fsam2lib")}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert wanted == listed, (
        f"only in pyproject: {wanted - listed}; only in environment.yml: {listed - wanted}"
    )


def test_version_specifiers_agree():
    """Each package carries the same version specifier in both files (compared per package,
    so ``torch==2.14.1`` does not pass against ``torch==2.14.10``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): _spec(r) for r in project["dependencies"]}
    for reqs in project["optional-dependencies"].values():
        wanted |= {_name(r): _spec(r) for r in reqs if not r.startswith("fsam2lib")}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r): _spec(r) for r in pip_section if not r.startswith("-e")}
    differing = {n: (s, listed.get(n)) for n, s in wanted.items() if listed.get(n) != s}
    assert not differing, f"pyproject vs environment.yml specifiers differ: {differing}"


def test_spec_parsing_tells_close_versions_apart():
    assert _spec("torch==2.14.1") != _spec("torch==2.14.10")
    assert _spec("open_clip_torch>=2.24") == ">=2.24"
