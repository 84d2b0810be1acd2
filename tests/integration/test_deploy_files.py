"""deploy/: the compose file against the CLI, the settings and Prometheus's targets; the image
where a container engine runs (the wheel its builder stage makes, everywhere); and the process
layout compose describes (one API, two workers, one read-model process) run here, with the
same commands and environment, on the tests' PostgreSQL."""

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import typer
import yaml
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from harness.api_keys import bearer, issue_tenant_key
from harness.databases import fresh_database
from harness.network import HOST, LOOPBACK_ALLOWLIST, free_port
from harness.processes import (
    ADMIN_KEY,
    REPO_ROOT,
    Managed,
    Processes,
    duecall_command,
    duecall_env,
    start_server,
)
from harness.target_server import TargetServer
from infrastructure.settings import Settings
from interfaces.cli import app
from tests.support.waiting import wait_until

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
PROMETHEUS = DEPLOY / "prometheus.yml"
DUECALL_IMAGE = "duecall:local"
START_TIMEOUT = 60.0  # a loaded two-core machine starts a process slowly

# What an operator puts in deploy/.env (compose's interpolation variables), for these tests.
OPERATOR_VARIABLES = {
    "DUECALL_SECRET_KEY": base64.b64encode(os.urandom(32)).decode(),
    "DUECALL_ADMIN_KEY": ADMIN_KEY,
    "DUECALL_OUTBOUND_ALLOWLIST": LOOPBACK_ALLOWLIST,  # the test's target is on loopback
    "POSTGRES_PASSWORD": "unused-here",
}


# -- reading the files --------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _duecall_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the duecall image, by name."""
    return {name: spec for name, spec in compose["services"].items()
            if spec.get("image") == DUECALL_IMAGE}


_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$\$")


def _interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME:?error}`` (and without ``:``)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        present = variables.get(name)
        unset = present is None or (present == "" and op is not None and op.startswith(":"))
        if not unset:
            return str(present)
        if op is not None and op.endswith("?"):
            raise KeyError(f"compose needs {name}: {arg}")
        return arg if op is not None else ""

    return _VARIABLE.sub(replace, value)


def _environment(spec: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment as compose passes it, the operator's variables filled in."""
    raw = spec.get("environment") or {}
    assert isinstance(raw, dict), "environment as a mapping (KEY: value)"
    return {key: _interpolate(str(value), OPERATOR_VARIABLES) for key, value in raw.items()}


def _option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def _api_port(spec: Mapping[str, Any]) -> int:
    command = spec["command"]
    port = _option(command, "--port") or _environment(spec).get("DUECALL_PORT")
    return int(port) if port else int(Settings.model_fields["port"].default)


def _metrics_endpoints(compose: Mapping[str, Any]) -> set[str]:
    """``service:port`` of every duecall process that serves /metrics: the API on its port,
    a worker on its --metrics-port (a read-model process serves no HTTP)."""
    endpoints = set()
    for name, spec in _duecall_services(compose).items():
        command = spec["command"]
        if command[0] in ("api", "serve"):
            endpoints.add(f"{name}:{_api_port(spec)}")
        elif command[0] == "worker" and (port := _option(command, "--metrics-port")):
            endpoints.add(f"{name}:{port}")
    return endpoints


def _setting_names() -> set[str]:
    """Every environment variable Settings reads."""
    names = set()
    for field, info in Settings.model_fields.items():
        names.add(f"DUECALL_{field.upper()}")
        alias = info.validation_alias
        names.update(getattr(alias, "choices", ()) if alias is not None else ())
    return names


def _dockerfile_instruction(name: str, stage: str | None = None) -> list[str]:
    """The arguments of each ``name`` instruction (in ``stage`` only, if given), continuation
    lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found, current = [], None
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "FROM":
            current = words[-1] if "AS" in (w.upper() for w in words) else None
        elif words[0] == name and (stage is None or current == stage):
            found.append(line.split(None, 1)[1])
    return found


# -- the files ----------------------------------------------------------------------------------


def test_compose_lays_out_one_api_two_workers_one_read_model_process() -> None:
    compose = _compose()
    roles = sorted(" ".join(spec["command"][:2]) if spec["command"][0] == "projections"
                   else spec["command"][0] for spec in _duecall_services(compose).values())
    assert roles == ["api", "projections run", "worker", "worker"]
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert postgres["healthcheck"]["test"]
    for name, spec in _duecall_services(compose).items():
        assert spec["depends_on"]["postgres"]["condition"] == "service_healthy", name
        database_url = _environment(spec)["DATABASE_URL"]
        assert "@postgres:5432/" in database_url, name
        assert spec["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert (COMPOSE.parent / spec["build"]["context"]).resolve() == REPO_ROOT, name
        if spec["command"][0] == "worker":
            # the workers' read models run in their own process
            assert "--no-projections" in spec["command"], name
    assert services["prometheus"]["image"].startswith("prom/prometheus:")


def test_every_command_is_a_real_duecall_subcommand() -> None:
    # The image's entry point is the `duecall` script pyproject.toml declares.
    assert _dockerfile_instruction("ENTRYPOINT") == ['["duecall"]']
    assert 'duecall = "interfaces.cli:main"' in (REPO_ROOT / "pyproject.toml").read_text()
    runner = CliRunner()
    for name, spec in _duecall_services(_compose()).items():
        command = [str(arg) for arg in spec["command"]]
        helped = runner.invoke(app, [*command, "--help"])
        assert helped.exit_code == 0, f"{name}: duecall {' '.join(command)}: {helped.output}"
        _parse(command)  # and the options' values convert (--help alone does not check)
    assert _parse(["worker", "--no-projections", "--metrics-port", "9100"]) == {
        "projections": False, "metrics_port": 9100}


def _parse(args: list[str]) -> dict[str, Any]:
    """``duecall <args>`` parsed as the CLI would (options' values converted), not run."""
    command: Any = typer.main.get_command(app)
    context = command.make_context("duecall", list(args), resilient_parsing=True)
    while hasattr(command, "get_command") and args and command.get_command(context, args[0]):
        command, args = command.get_command(context, args[0]), args[1:]
    assert not hasattr(command, "get_command"), f"{args}: a group, not a command"
    params: dict[str, Any] = command.make_context(command.name, list(args)).params
    return params


def test_every_duecall_variable_is_a_real_setting() -> None:
    known = _setting_names()
    for name, spec in _duecall_services(_compose()).items():
        for key in _environment(spec):
            if key.startswith("DUECALL_") or key == "DATABASE_URL":
                assert key in known, f"{name}: {key} is not a setting (infrastructure/settings.py)"
    # and every DUECALL_* the deploy files mention anywhere (Dockerfile ENV, the Kubernetes
    # note, comments), the interpolation variables of compose.yaml included
    for path in (COMPOSE, DOCKERFILE, PROMETHEUS, DEPLOY / "kubernetes.md"):
        for mentioned in set(re.findall(r"DUECALL_[A-Z0-9_]*[A-Z0-9]", path.read_text())):
            assert mentioned in known, f"{path.name}: {mentioned} is not a setting"


def test_prometheus_scrapes_every_process_that_serves_metrics() -> None:
    compose = _compose()
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = set()
    for job in config["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
        for static in job["static_configs"]:
            targets.update(static["targets"])
    assert targets == _metrics_endpoints(compose)
    assert targets == {"api:8000", "worker-1:9100", "worker-2:9100"}
    # the API's published port is the one it listens on
    api = compose["services"]["api"]
    assert any(str(p).endswith(f":{_api_port(api)}") for p in api["ports"])
    mounted = compose["services"]["prometheus"]["volumes"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounted


def test_compose_validates_with_docker_compose() -> None:
    engine = _compose_command()
    if engine is None:
        pytest.skip("none of `docker compose`, `docker-compose`, `podman compose` works here: "
                    "compose.yaml is checked above by parsing it instead")
    env = {**os.environ, **OPERATOR_VARIABLES}
    checked = subprocess.run([*engine, "-f", str(COMPOSE), "config", "--quiet"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr


def _compose_command() -> list[str] | None:
    for candidate in (["docker", "compose"], ["docker-compose"], ["podman", "compose"]):
        if shutil.which(candidate[0]) is None:
            continue
        probe = subprocess.run([*candidate, "version"], capture_output=True, timeout=30,
                               check=False)
        if probe.returncode == 0:
            return candidate
    return None


# -- the image ----------------------------------------------------------------------------------


def _container_engine() -> tuple[str | None, str]:
    """A container engine that answers (docker or podman), or None and why not."""
    why = []
    for engine in ("docker", "podman"):
        if shutil.which(engine) is None:
            why.append(f"no {engine} on PATH")
            continue
        probe = subprocess.run([engine, "info"], capture_output=True, text=True, timeout=30,
                               check=False)
        if probe.returncode == 0:
            return engine, ""
        why.append(f"`{engine} info` failed ({probe.stderr.strip().splitlines()[-1:]})")
    return None, "; ".join(why)


@pytest.mark.slow
def test_the_image_builds_and_runs_duecall_as_a_non_root_user() -> None:
    engine, why = _container_engine()
    if engine is None:
        pytest.skip(f"no container engine to build deploy/Dockerfile with: {why}")
    tag = "duecall:deploy-test"
    built = subprocess.run([engine, "build", "-f", str(DOCKERFILE), "-t", tag, str(REPO_ROOT)],
                           capture_output=True, text=True, timeout=1800, check=False)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    try:
        helped = subprocess.run([engine, "run", "--rm", tag, "worker", "--help"],
                                capture_output=True, text=True, timeout=120, check=False)
        assert helped.returncode == 0, helped.stderr
        assert "--metrics-port" in helped.stdout
        uid = subprocess.run([engine, "run", "--rm", "--entrypoint", "id", tag, "-u"],
                             capture_output=True, text=True, timeout=120, check=True)
        assert uid.stdout.strip() not in ("", "0")
    finally:
        subprocess.run([engine, "rmi", "-f", tag], capture_output=True, timeout=120, check=False)


def test_the_builder_stage_makes_a_wheel_with_the_entry_point_and_the_ui(
    tmp_path: Path,
) -> None:
    """Without a container engine, the builder stage's step: the sources its COPY lines take,
    built as a wheel the same way."""
    source = tmp_path / "src"
    source.mkdir()
    for copy in _dockerfile_instruction("COPY", stage="builder"):
        *paths, _destination = copy.split()
        for path in paths:
            origin = REPO_ROOT / path.rstrip("/")
            if origin.is_dir():
                shutil.copytree(origin, source / origin.name,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(origin, source / origin.name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(tmp_path / "w"),
         str(source)],
        capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = (tmp_path / "w").glob("duecall-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("domain", "application", "projections", "interfaces", "infrastructure"):
        assert f"{package}/__init__.py" in names, package
    assert "interfaces/api/templates/base.html" in names
    assert "interfaces/api/static/app.js" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "duecall = interfaces.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


# -- the layout, run here -----------------------------------------------------------------------


@pytest.fixture
def layout_database(server_url: str) -> Iterator[str]:
    """A database of its own: the other tests' clean-ups never reach these processes."""
    with fresh_database(server_url, prefix="duecall_deploy") as url:
        yield url


@pytest.mark.e2e
def test_the_compose_layout_runs_here(layout_database: str, tmp_path: Path) -> None:
    """compose.yaml's duecall services as subprocesses, with their commands and environment
    (the database, the listening address and the ports are this machine's): a call submitted
    through the API is made by a worker, and the read-model process shows it."""
    services = _duecall_services(_compose())
    processes = Processes(tmp_path)
    started: dict[str, Managed] = {}
    try:
        with TargetServer() as target:
            for name, spec in sorted(services.items(), key=lambda s: s[1]["command"] != ["api"]):
                started[name] = _start(processes, name, spec, layout_database)
            _submit_and_follow(started, target)
            connections = _connections(layout_database)
            for name, proc in started.items():
                assert proc.alive(), f"{name} exited:\n{proc.log_tail()}"
    finally:
        processes.stop_all(timeout=45.0)  # the workers' graceful shutdown, as compose allows
        for proc in processes.all:
            print(f"--- {proc.name} ---\n{proc.log_tail(40)}")  # shown when the test failed
    # Each stopped on SIGTERM, within the time compose gives it (uvicorn ends the API by
    # re-raising the SIGTERM once it has shut down: 143 in a container).
    for name, proc in started.items():
        expected = (0, -signal.SIGTERM) if proc.role == "api" else (0,)
        assert proc.popen.returncode in expected, f"{name}: exit {proc.popen.returncode}"
    # The connection budget of docs/operations.md (#connections), with the default pool size.
    print(f"connections by process: {connections}")
    for name, proc in started.items():
        assert 1 <= connections.get(name, 0) <= CONNECTION_CEILINGS[proc.role], name


# Each process kind's most connections (docs/operations.md, DUECALL_DB_POOL_SIZE 4).
CONNECTION_CEILINGS = {"api": 16, "worker": 12, "projections": 22}


def _connections(database_url: str) -> dict[str, int]:
    """The open connections to the database by application name (each service's PGAPPNAME)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "GROUP BY application_name"
        ).fetchall()
    return {str(name): int(n) for name, n in rows}


def _start(processes: Processes, name: str, spec: Mapping[str, Any], database_url: str) -> Managed:
    """The service's command and environment, here: DATABASE_URL the test's, on loopback, on
    free ports."""
    command = [str(arg) for arg in spec["command"]]
    settings = {key: value for key, value in _environment(spec).items()
                if key != "DATABASE_URL"}
    settings["DUECALL_HOST"] = HOST
    env = duecall_env(database_url, settings, admin_key=OPERATOR_VARIABLES["DUECALL_ADMIN_KEY"])
    env["PGAPPNAME"] = name  # libpq's: its connections are counted by name
    if command[0] == "api":

        def spawn_at(port: int) -> Managed:
            return processes.spawn(name, "api", duecall_command(*command),
                                   {**env, "DUECALL_PORT": str(port)}, port)

        return start_server(spawn_at, START_TIMEOUT)
    port: int | None = None
    if "--metrics-port" in command:
        port = free_port()
        command[command.index("--metrics-port") + 1] = str(port)
    proc = processes.spawn(name, command[0], duecall_command(*command), env, port)
    if port is not None:  # up once its metrics answer (it has built its parts by then)
        wait_until(lambda: _answers(proc, "/metrics"), timeout=START_TIMEOUT, interval=0.2)
    return proc


def _answers(proc: Managed, path: str) -> bool:
    assert proc.alive(), f"{proc.name} exited:\n{proc.log_tail()}"
    try:
        return httpx.get(f"{proc.url}{path}", timeout=2.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _submit_and_follow(started: Mapping[str, Managed], target: TargetServer) -> None:
    [api] = [proc for proc in started.values() if proc.role == "api"]
    workers = [proc for proc in started.values() if proc.role == "worker"]
    key = issue_tenant_key(api.url, "deploy")
    with httpx.Client(base_url=api.url, headers=bearer(key), timeout=10.0,
                      trust_env=False) as client:
        submitted = client.post("/v1/service-calls", json={
            "name": "deploy", "correlation_id": "deploy-layout",
            "request": {"method": "GET", "url": f"{target.url}/ok"}})
        assert submitted.status_code == 201, submitted.text
        call_id = submitted.json()["id"]
        target.wait_for(1, path="/ok", timeout=30.0)

        def call_status() -> str:
            return str(client.get(f"/v1/service-calls/{call_id}").json()["status"])

        wait_until(lambda: call_status() == "succeeded", timeout=30.0, interval=0.1)

        # the read models, kept by the read-model process alone (workers: --no-projections)
        def listed() -> list[dict[str, Any]] | None:
            page = client.get("/v1/service-calls", params={"correlation_id": "deploy-layout"})
            items: list[dict[str, Any]] = page.json()["items"]
            return items if items and items[0]["status"] == "succeeded" else None

        assert [item["id"] for item in wait_until(listed, timeout=30.0)] == [call_id]
        executions = client.get("/v1/executions", params={"service_call_id": call_id}).json()
        assert [e["outcome"] for e in executions["items"]] == ["succeeded"]
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text

        # what Prometheus would scrape: the API's figures from the database, and the attempt
        # made by one of the two workers
        assert "duecall_calls" in client.get("/metrics").text
    finished = sum(_samples(worker, "duecall_attempts_finished_total") for worker in workers)
    assert finished == 1


def _samples(proc: Managed, name: str) -> float:
    text = httpx.get(f"{proc.url}/metrics", timeout=5.0, trust_env=False).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name)
