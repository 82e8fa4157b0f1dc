"""docker-compose.yml, Dockerfile and .dockerignore: what can be checked without a Docker engine."""
import re
import shlex
import shutil
import subprocess
import tomllib
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


def test_ports_are_5000_8050_8888_and_1883_on_loopback_by_default(services):
    def published(svc):
        return [str(p) for p in svc.get("ports", [])]
    assert published(services["api"]) == ["127.0.0.1:5000:5000"]
    assert published(services["dashboard"]) == ["127.0.0.1:8050:8050"]
    assert published(services["lab"]) == ["127.0.0.1:8888:8888"]
    assert published(services["mosquitto"]) == ["127.0.0.1:1883:1883"]
    assert published(services["postgres"]) == ["127.0.0.1:5432:5432"]


def test_every_published_port_is_bound_through_twin_bind():
    raw = yaml.safe_load(COMPOSE.read_text())["services"]
    for name, svc in raw.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("${TWIN_BIND:-127.0.0.1}:"), (name, port)


def test_services_judge_token_needs_by_the_published_address():
    raw = yaml.safe_load(COMPOSE.read_text())
    for name in ("api", "dashboard"):
        env = raw["services"][name]["environment"]  # merged from the x-twin anchor
        assert env["TWIN_PUBLISHED_HOST"] == "${TWIN_BIND:-127.0.0.1}", name


def test_exposing_is_documented_with_the_tokens_it_then_needs(services):
    text = COMPOSE.read_text()
    header = text[:text.index("services:")]
    for words in ("TWIN_BIND=0.0.0.0", "TWIN_API_READ_TOKEN", "TWIN_DASHBOARD_TOKEN",
                  "Authorization: Bearer"):
        assert words in header, words
    assert services["api"]["environment"]["TWIN_API_READ_TOKEN"] == ""  # passed through
    assert services["dashboard"]["environment"]["TWIN_DASHBOARD_TOKEN"] == ""


def test_the_settings_file_is_mounted_and_documented(services):
    header = COMPOSE.read_text()[:COMPOSE.read_text().index("services:")]
    assert "TWIN_SETTINGS_FILE=./twin.toml" in header
    for name, svc in twin_services(services).items():
        target = svc["environment"]["TWIN_SETTINGS"]
        assert target == "/var/lib/twin/twin.toml", name
        mounts = [v for v in svc["volumes"] if v.split(":")[1] == target]
        assert mounts == ["./docker/twin.toml:/var/lib/twin/twin.toml:ro"], (name, svc["volumes"])
    assert tomllib.loads((ROOT / "docker" / "twin.toml").read_text()) == {}  # all defaults


def test_long_running_services_have_health_checks(services):
    for name in ("monitor", "api", "dashboard", "lab", "mosquitto"):
        check = services[name]["healthcheck"]
        assert check["test"][0] == "CMD" and len(check["test"]) > 1


#: the extras each service's image installs (the API's: no JupyterLab, Voilà or models)
SERVICE_EXTRAS = {"init": "all", "monitor": "all", "lab": "all", "api": "api,postgres",
                  "dashboard": "dashboard,postgres"}


def test_each_service_image_installs_its_extras_and_shares_the_volume(compose, services):
    twins = twin_services(services)
    assert set(twins) == set(SERVICE_EXTRAS)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    images = {}
    for name, svc in twins.items():
        assert svc["build"]["context"] == "."
        chosen = svc["build"]["args"]["TWIN_EXTRAS"]
        assert chosen == SERVICE_EXTRAS[name], name
        assert set(chosen.split(",")) <= set(extras), chosen
        assert "EXTRA_CA_CERTS" in svc["build"]["args"]  # the corporate CA, when given
        images.setdefault(svc["image"], set()).add(chosen)
        assert "twin-state:/var/lib/twin" in svc["volumes"], name
    # one image per set of extras, never two builds under one tag
    assert all(len(v) == 1 for v in images.values()), images
    assert services["api"]["image"] == "twinlib-api:latest"
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
    assert lines[0] == "FROM python:3.13-slim AS base"
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("RUN") and "useradd" in line and users[-1] in line
               for line in lines)


def test_dockerfile_installs_the_chosen_extras_at_the_pinned_versions(dockerfile):
    lines = instructions(dockerfile)
    assert "ARG TWIN_EXTRAS=all" in lines
    install = next(line for line in lines if '".[${TWIN_EXTRAS}]"' in line)
    assert "requirements.txt > /tmp/constraints.txt" in install
    assert "pip install -c /tmp/constraints.txt" in install
    assert any("pip install --no-deps -e ." in line for line in lines)  # no unpinned extras
    expose = next(line for line in lines if line.startswith("EXPOSE"))
    assert set(expose.split()[1:]) == {"5000", "8050", "8888"}


def test_the_dockerfile_constraints_are_valid_pins(dockerfile, tmp_path):
    """The sed of the Dockerfile turns requirements.txt into constraints pip accepts (pip
    refuses extras in constraints: psycopg[binary]==… must become psycopg==…)."""
    from packaging.requirements import Requirement

    script = re.search(r"sed -e '([^']+)' requirements.txt", dockerfile).group(1)
    res = subprocess.run(["sed", "-e", script, str(ROOT / "requirements.txt")],
                         capture_output=True, text=True, check=True)
    pins = [Requirement(line) for line in res.stdout.splitlines()
            if line.strip() and not line.startswith("#")]
    assert pins and all(not r.extras and str(r.specifier).startswith("==") for r in pins)
    assert "psycopg" in {r.name for r in pins}


def test_dockerfile_adds_a_corporate_ca_before_any_download(dockerfile):
    lines = instructions(dockerfile)
    ca = next(i for i, line in enumerate(lines) if "update-ca-certificates" in line)
    first_pip = next(i for i, line in enumerate(lines) if "pip install" in line)
    assert ca < first_pip
    assert 'ARG EXTRA_CA_CERTS=""' in lines
    assert "COPY docker/ca-certificates/ /usr/local/share/ca-certificates/twin/" in lines
    env = " ".join(line for line in lines if line.startswith("ENV"))
    assert "PIP_CERT=/etc/ssl/certs/ca-certificates.crt" in env
    assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in env
    assert (ROOT / "docker" / "ca-certificates" / "README.md").exists()


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
