"""docker-compose.yml, Dockerfile and .dockerignore: what can be checked without a Docker engine."""
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from twinlib.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value):
    """Compose's `${VAR:-default}` with an empty environment (the defaults a user gets)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose():
    return interpolate(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def twin_services(services):
    return {name: s for name, s in services.items() if s.get("image", "").startswith("twinlib")}


def test_compose_file_validates_with_docker_compose(tmp_path):
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    res = subprocess.run([exe, "-f", str(COMPOSE), "config", "-q"], capture_output=True,
                         text=True, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    # with every profile on, too (mosquitto, lab and postgres)
    res = subprocess.run([exe, "-f", str(COMPOSE), "--profile", "mqtt", "--profile", "lab",
                          "--profile", "postgres", "config", "--services"],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert set(res.stdout.split()) == {"init", "monitor", "api", "dashboard", "mosquitto", "lab",
                                       "postgres"}


def test_flow_is_init_then_api_then_dashboard_plus_monitor(services):
    assert {"init", "monitor", "api", "dashboard"} <= set(services)
    assert services["api"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert services["monitor"]["depends_on"]["init"]["condition"] == \
        "service_completed_successfully"
    assert services["dashboard"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert services["init"]["restart"] == "no"  # a one-shot job


def test_every_dependency_names_a_service_with_a_known_condition(services):
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        deps = {d: {"condition": "service_started"} for d in deps} if isinstance(deps, list) \
            else deps
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec["condition"] in conditions
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no health check"


def test_optional_services_sit_behind_profiles(services):
    assert services["mosquitto"]["profiles"] == ["mqtt"]
    assert services["lab"]["profiles"] == ["lab"]
    assert services["postgres"]["profiles"] == ["postgres"]
    for name in ("init", "monitor", "api", "dashboard"):
        assert "profiles" not in services[name]


def test_ports_are_5000_8050_8888_and_1883(services):
    def published(svc):
        return [str(p) for p in svc.get("ports", [])]
    assert published(services["api"]) == ["5000:5000"]
    assert published(services["dashboard"]) == ["8050:8050"]
    assert published(services["lab"]) == ["8888:8888"]
    assert published(services["mosquitto"]) == ["1883:1883"]


def test_long_running_services_have_health_checks(services):
    for name in ("monitor", "api", "dashboard", "lab", "mosquitto"):
        check = services[name]["healthcheck"]
        assert check["test"][0] == "CMD" and len(check["test"]) > 1


def test_twin_services_share_one_image_and_one_volume(compose, services):
    twins = twin_services(services)
    assert set(twins) == {"init", "monitor", "api", "dashboard", "lab"}
    for name, svc in twins.items():
        assert svc["image"] == "twinlib:latest" and svc["build"] == "."
        assert "twin-state:/var/lib/twin" in svc["volumes"], name
    assert "twin-state" in compose["volumes"]


def parse_twin(argv):
    assert argv[0] == "twin", argv
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse rejected it
        pytest.fail(f"not a valid twin command: {shlex.join(argv)} (exit {exc.code})")
    assert callable(getattr(args, "func", None)), argv
    return args


def test_commands_are_real_twin_subcommands(services):
    twins = twin_services(services)
    parsed = {name: parse_twin(svc["command"]) for name, svc in twins.items()}
    assert parsed["init"].command == "up" and parsed["init"].prepare_only
    assert parsed["monitor"].command == "run" and parsed["monitor"].source == "sim"
    assert parsed["api"].command == "api" and (parsed["api"].host, parsed["api"].port) == \
        ("0.0.0.0", 5000)
    assert parsed["dashboard"].command == "dashboard" and parsed["dashboard"].port == 8050
    assert parsed["lab"].command == "lab" and parsed["lab"].port == 8888


def test_monitor_can_be_switched_to_mqtt_by_environment():
    raw = yaml.safe_load(COMPOSE.read_text())["services"]["monitor"]["command"]
    argv = [_VAR.sub(lambda m: {"TWIN_SOURCE": "mqtt"}.get(m.group(1), m.group(2) or ""), a)
            for a in raw]
    args = parse_twin(argv)
    assert args.source == "mqtt" and args.broker == "mosquitto:1883"


def test_monitor_health_check_is_a_twin_command(services):
    test = services["monitor"]["healthcheck"]["test"]
    args = parse_twin(test[1:])
    assert args.command == "run" and args.check


# -- Dockerfile ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dockerfile():
    return (ROOT / "Dockerfile").read_text()


def instructions(text):
    joined = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in joined.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_dockerfile_builds_on_python_313_slim_as_non_root(dockerfile):
    lines = instructions(dockerfile)
    assert lines[0] == "FROM python:3.13-slim"
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("RUN") and "useradd" in line and users[-1] in line
               for line in lines)


def test_dockerfile_installs_the_pinned_requirements(dockerfile):
    lines = instructions(dockerfile)
    assert "COPY requirements.txt ./" in lines
    assert any("pip install -r requirements.txt" in line for line in lines)
    assert any("pip install --no-deps -e ." in line for line in lines)  # no unpinned extras
    expose = next(line for line in lines if line.startswith("EXPOSE"))
    assert set(expose.split()[1:]) == {"5000", "8050", "8888"}


def test_everything_the_dockerfile_copies_exists(dockerfile):
    for line in instructions(dockerfile):
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", ".git", "data", "models", "reports", "*.db"} <= ignored
    assert not ({"twinlib", "notebooks", "requirements.txt", "pyproject.toml"} & ignored)


def test_python_health_checks_are_valid_python(services):
    snippets = [svc["healthcheck"]["test"][3] for svc in services.values()
                if svc.get("healthcheck", {}).get("test", [None, None])[1] == "python"]
    assert len(snippets) >= 3
    for code in snippets:
        compile(code, "healthcheck", "exec")
