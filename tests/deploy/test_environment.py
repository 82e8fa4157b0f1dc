"""environment.yml (conda) lists exactly the pinned packages of requirements.txt."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def requirement_lines(path):
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(line)
    return out


def normalise(req):
    name, _, version = req.partition("==")
    return re.sub(r"[-_.]+", "-", name.strip().lower()), version.strip()


def test_environment_uses_conda_forge_and_python_313():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "twinlib"
    assert env["channels"][0] == "conda-forge"
    deps = env["dependencies"]
    assert "python=3.13" in deps and "pip" in deps


def test_environment_pip_section_matches_requirements_txt():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    packages = [p for p in pip if not p.startswith("-")]
    reqs = requirement_lines(ROOT / "requirements.txt")
    assert reqs, "requirements.txt lists no packages"
    assert all("==" in r for r in reqs), "requirements.txt must pin every package"
    assert sorted(map(normalise, packages)) == sorted(map(normalise, reqs))
    assert "-e .[all]" in pip  # and twinlib itself, with every runtime extra (no test tools)
