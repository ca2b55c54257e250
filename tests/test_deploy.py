"""The container set-up, checked without a container engine: the Dockerfile, compose.yaml and the
proxy's configuration say what the README says, and name only settings the app reads.
(`nginx -t` and the slow-client attack on this set-up: tests/security/test_slow_clients.py.)"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from bolt_app.cli import build_parser
from bolt_app.server import KEEPALIVE_SECONDS
from bolt_app.web import MAX_BODY_BYTES
from tests.support import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE = PROJECT_ROOT / "compose.yaml"
NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx.conf"
README = PROJECT_ROOT / "README.md"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped, continued lines joined."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "a continued line at the end of the Dockerfile"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def exec_form(arguments: str) -> list[str]:
    assert arguments.startswith("["), f"use the exec form (JSON array): {arguments}"
    return json.loads(arguments)


def settings_names() -> set[str]:
    """Every environment variable name bolt_app/settings.py reads."""
    return set(re.findall(r"[\"']([A-Z][A-Z0-9_]{2,})[\"']", (PROJECT_ROOT / "bolt_app" / "settings.py").read_text()))


def cli_commands() -> set[str]:
    parser = build_parser()
    return {name for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for name in action.choices}


# ----------------------------------------------------------------------------- Dockerfile


def test_dockerfile_slim_base_non_root_runtime_requirements_and_command() -> None:
    steps = dockerfile_instructions()
    kinds = [kind for kind, _ in steps]
    froms = [args for kind, args in steps if kind == "FROM"]
    assert len(froms) == 1 and re.fullmatch(r"python:3\.\d+-slim", froms[0]), froms

    users = [args for kind, args in steps if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert kinds.index("USER") < kinds.index("CMD")

    runs = [args for kind, args in steps if kind == "RUN"]
    installs = [run for run in runs if "pip install" in run]
    assert len(installs) == 1, installs
    words = shlex.split(installs[0])
    assert words[words.index("install") + 1:] == ["-r", "requirements.txt"], installs[0]  # nothing else
    copies = [args.split() for kind, args in steps if kind == "COPY"]
    assert copies[0] == ["requirements.txt", "./"]  # alone first: the dependency layer survives code edits
    assert kinds.index("COPY") < kinds.index("RUN")
    copied = {source for args in copies for source in args[:-1]}
    assert copied == {"requirements.txt", "main.py", "manifest.yml", "bolt_app"}  # no tests, no stand-in
    assert all((PROJECT_ROOT / source).exists() for source in copied)

    assert exec_form(dict(steps)["CMD"]) == ["python", "main.py"]
    env = " ".join(args for kind, args in steps if kind == "ENV")
    assert "PORT=3000" in env and dict(steps)["EXPOSE"] == "3000"
    healthcheck = dict(steps)["HEALTHCHECK"]
    assert "/healthz" in healthcheck and "PORT" in healthcheck and " CMD " in f" {healthcheck} "


def test_dockerignore_keeps_secrets_databases_and_environments_out() -> None:
    lines = [line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"  # everything out, then only what the image copies back in
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"requirements.txt", "main.py", "manifest.yml", "bolt_app"}


# ----------------------------------------------------------------------------- compose.yaml


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_runs_instances_behind_the_proxy_with_postgres_and_redis(compose: dict) -> None:
    services = compose["services"]
    assert {"proxy", "app", "worker", "migrate", "postgres", "redis"} <= set(services)

    app = services["app"]
    assert app["build"] == "." and "ports" not in app  # reachable only through the proxy
    replicas = str(app["deploy"]["replicas"])
    assert int(re.sub(r"\$\{\w+:-(\d+)\}", r"\1", replicas)) >= 2, replicas
    assert {"postgres", "redis", "migrate"} <= set(app["depends_on"])
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"

    proxy = services["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert [port.rsplit(":", 1)[-1] for port in proxy["ports"]] == ["8080"]
    assert proxy["depends_on"]["app"]["condition"] == "service_healthy"
    # The proxy's upstream is the app service on the image's port; nginx listens where compose publishes.
    conf = NGINX_CONF.read_text()
    assert "server app:3000;" in conf and "listen 8080;" in conf

    assert services["migrate"]["command"] == ["python", "main.py", "db", "upgrade"]
    worker = services["worker"]
    assert worker["command"] == ["python", "main.py", "worker"]
    assert worker["environment"]["TASK_QUEUE_URL"] == "redis://redis:6379/0"
    for name in ("worker", "migrate"):
        assert services[name]["image"] == app["image"] and services[name]["healthcheck"] == {"disable": True}

    database_url = app["environment"]["DATABASE_URL"]
    postgres = services["postgres"]["environment"]
    assert database_url.startswith(f"postgresql://{postgres['POSTGRES_USER']}:")
    assert database_url.endswith(f"@postgres:5432/{postgres['POSTGRES_DB']}")
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"


def test_compose_sets_only_settings_the_app_reads(compose: dict) -> None:
    known = settings_names()
    for service in ("app", "worker", "migrate"):
        names = set(compose["services"][service]["environment"])
        if "worker" not in cli_commands():
            # `python main.py worker` and its TASK_QUEUE_URL come with the task-queue work; until
            # then the worker service is the one place that names them.
            names.discard("TASK_QUEUE_URL")
        assert names <= known, f"{service}: {sorted(names - known)} are not read by bolt_app/settings.py"


def test_readme_documents_the_compose_variables_it_requires(compose: dict) -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert {"POSTGRES_PASSWORD", "SLACK_TOKEN_ENCRYPTION_KEYS"} <= required
    readme = README.read_text()
    section = readme[readme.index("### Running with Docker Compose"):]
    section = section[:section.index("\n## ")]
    for name in sorted(required) + ["APP_INSTANCES", "PROXY_PORT"]:
        assert name in section, name
    assert "docker compose up" in section and "deploy/nginx.conf" in section


def test_compose_file_passes_docker_compose_config() -> None:
    compose_cli = shutil.which("docker-compose")
    if compose_cli is None:
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose); its schema check is skipped")
    env = {"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": "pw", "SLACK_SIGNING_SECRET": "s", "SLACK_CLIENT_ID": "1.2",
           "SLACK_CLIENT_SECRET": "c", "SLACK_TOKEN_ENCRYPTION_KEYS": "k"}
    done = subprocess.run([compose_cli, "-f", str(COMPOSE), "--project-directory", str(PROJECT_ROOT), "config", "--quiet"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# ----------------------------------------------------------------------------- nginx.conf


def nginx_directive(name: str, text: str | None = None) -> list[str]:
    return re.findall(rf"(?m)^\s*{name}\s+([^;]+);", NGINX_CONF.read_text() if text is None else text)


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value.strip()).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


def test_nginx_conf_buffers_whole_requests_under_timeouts() -> None:
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        [value] = nginx_directive(name)
        assert seconds(value) <= 15, (name, value)
    [limit] = nginx_directive("client_max_body_size")
    assert limit.strip() == "1m" and MAX_BODY_BYTES == 1024 * 1024
    assert nginx_directive("proxy_request_buffering") == ["on"]
    assert nginx_directive("proxy_buffering") == ["on"]
    for name in ("proxy_connect_timeout", "proxy_send_timeout", "proxy_read_timeout"):
        assert nginx_directive(name), name
    # Idle upstream connections close on nginx's side before gunicorn's keepalive ends them.
    [upstream] = re.findall(r"(?s)upstream slack_app \{(.*?)\}", NGINX_CONF.read_text())
    [upstream_idle] = nginx_directive("keepalive_timeout", upstream)
    assert seconds(upstream_idle) < KEEPALIVE_SECONDS
    # The OAuth callback's code and state are in the query string: the access log leaves it out.
    [log_format] = re.findall(r"log_format\s+app\s+([^;]+);", NGINX_CONF.read_text())
    assert "$request " not in log_format and "$request_uri" not in log_format and "$args" not in log_format
