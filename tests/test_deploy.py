"""The service files in docs/deploy: the systemd unit, the Dockerfile and its example config.

No Docker daemon (or network) is available where these tests run, so the image is never
built here: the Dockerfile is checked by reading it, and its HEALTHCHECK command is run
against a local server instead.
"""

from __future__ import annotations

import configparser
import fnmatch
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.config import load_config

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "docs" / "deploy"
UNIT = DEPLOY / "monitor.service"
DOCKERFILE = DEPLOY / "Dockerfile"


# --- the systemd unit ----------------------------------------------------------------


def unit_service() -> configparser.SectionProxy:
    # interpolation=None: "$MAINPID" and "%" are systemd's, not configparser's.
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(UNIT, encoding="utf-8")
    return parser["Service"]


@pytest.mark.parametrize(("key", "value"), [
    ("ExecStart", "/usr/local/bin/monitor run -c /etc/monitor/config.toml"),
    ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ("Restart", "on-failure"),
    ("RestartPreventExitStatus", "2"),
    ("KillSignal", "SIGTERM"),
    ("EnvironmentFile", "-/etc/monitor/env"),
    ("DynamicUser", "yes"),
    ("StateDirectory", "monitor"),
    ("ConfigurationDirectory", "monitor"),
    ("UMask", "0077"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("PrivateTmp", "yes"),
    ("NoNewPrivileges", "yes"),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("LockPersonality", "yes"),
    ("MemoryDenyWriteExecute", "yes"),
    ("SystemCallFilter", "@system-service"),
    ("CapabilityBoundingSet", ""),
])
def test_unit_directive(key: str, value: str) -> None:
    assert unit_service().get(key) == value


def seconds(value: str) -> int:
    return int(value.removesuffix("s"))


def test_unit_timings() -> None:
    service = unit_service()
    assert 1 <= seconds(service["RestartSec"]) <= 60
    # Longer than the daemon's 10 s grace after SIGTERM, or systemd SIGKILLs a clean stop.
    assert seconds(service["TimeoutStopSec"]) > 10


def test_unit_offers_upgrade_on_start_commented_out() -> None:
    lines = UNIT.read_text(encoding="utf-8").splitlines()
    assert "#ExecStartPre=/usr/local/bin/monitor db upgrade -c /etc/monitor/config.toml" in lines


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on a copy whose ExecStart is the installed `monitor`."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    monitor = shutil.which("monitor")
    if monitor is None:
        pytest.skip("the monitor command is not installed (pip install -e .)")
    # verify refuses an ExecStart binary that does not exist, and /usr/local/bin/monitor
    # need not exist on a development machine.
    unit = tmp_path / "monitor.service"
    unit.write_text(unit_text.replace("/usr/local/bin/monitor", monitor), encoding="utf-8")
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)


def own_problems(stderr: str) -> list[str]:
    # systemd-analyze also loads the units this one names (network-online.target,
    # multi-user.target) from the machine, and some containers warn about those or about
    # missing system units. Here (Debian 12, systemd 252, in a container) it prints nothing
    # at all for this unit. Every warning about this unit names it: "<path>:<line>: ..."
    # for a directive, "monitor.service: ..." for the unit as a whole.
    return [line for line in stderr.splitlines() if "monitor.service" in line]


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify(UNIT.read_text(encoding="utf-8"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert own_problems(result.stderr) == []


def test_verify_check_catches_a_bad_directive(tmp_path: Path) -> None:
    # verify exits 0 on an unknown key and only warns, so the stderr filter is what
    # catches a typo: make sure it does.
    text = UNIT.read_text(encoding="utf-8").replace("ProtectKernelLogs=", "ProtectKernelLog=")
    problems = own_problems(verify(text, tmp_path).stderr)
    assert any("Unknown key 'ProtectKernelLog'" in line for line in problems), problems


# --- the Dockerfile --------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        name, _, args = (pending + stripped).partition(" ")
        result.append((name.upper(), args.strip()))
        pending = ""
    return result


def only(name: str) -> str:
    found = [args for instruction, args in instructions() if instruction == name]
    assert len(found) == 1, f"expected one {name}, found {found}"
    return found[0]


def test_dockerfile_base_image() -> None:
    assert only("FROM") == "python:3.12-slim"


def test_dockerfile_runs_as_a_fixed_unprivileged_user() -> None:
    user = only("USER")
    assert user.isdigit() and int(user) != 0


def test_dockerfile_layout() -> None:
    assert json.loads(only("VOLUME")) == ["/data"]
    env = " ".join(args for instruction, args in instructions() if instruction == "ENV").split()
    assert "MONITOR_CONFIG=/config/config.toml" in env
    assert only("EXPOSE") == "9308"
    assert only("STOPSIGNAL") == "SIGTERM"
    assert json.loads(only("ENTRYPOINT")) == ["monitor"]
    assert json.loads(only("CMD")) == ["run"]


def dockerignore() -> set[str]:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_dockerfile_copies_only_paths_that_exist() -> None:
    copies = [args.split()[:-1] for instruction, args in instructions() if instruction == "COPY"]
    assert copies
    for source in (source for sources in copies for source in sources):
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        # An excluded source is missing from the build context and the build fails.
        excluded = [p for p in dockerignore() if fnmatch.fnmatch(source, p.removeprefix("**/"))]
        assert not excluded, f"COPY {source}: excluded by {excluded}"


def test_dockerignore_keeps_the_context_small() -> None:
    assert {".git", "tests", "benchmarks", "**/__pycache__", "**/*.db"} <= dockerignore()


def healthcheck_argv() -> list[str]:
    _options, _, command = only("HEALTHCHECK").partition("CMD ")
    argv: list[str] = json.loads(command)
    return argv


def run_healthcheck(port: int) -> int:
    """The image's own HEALTHCHECK command, pointed at 127.0.0.1:`port`; its exit code."""
    *args, code = healthcheck_argv()
    assert args[0] == "python" and "'http://127.0.0.1:9308/healthz'" in code
    argv = [sys.executable, *args[1:], code.replace(":9308/", f":{port}/")]
    return subprocess.run(argv, capture_output=True, timeout=30).returncode


class Healthz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def healthz_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Healthz)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (503, 1)])
def test_healthcheck_command(healthz_server: http.server.HTTPServer, status: int,
                             exit_code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Healthz, "status", status)
    assert run_healthcheck(healthz_server.server_address[1]) == exit_code


def test_healthcheck_fails_when_nothing_listens() -> None:
    # A config without [server]: the connection is refused. A bound socket that does not
    # listen gives a port where that is certain.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert run_healthcheck(sock.getsockname()[1]) == 1


# --- the container's example config --------------------------------------------------


def test_docker_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_WEBHOOK_SECRET", "test-secret")
    config = load_config(DEPLOY / "config.docker.toml")
    assert config.server is not None
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9308)
    assert config.settings.database.startswith("sqlite:////data/")
    assert [w.secret for w in config.webhooks] == ["test-secret"]
