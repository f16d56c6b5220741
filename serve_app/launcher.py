"""`clob up` / `clob down` / `clob status`: run the whole exchange on one machine.

`up` starts (or reuses) the embedded services, migrates, starts or joins Ray, deploys the
Serve app in HAProxy mode, prints the URLs and runs until Ctrl-C or SIGTERM (`clob down`),
then stops what it started. Its pid and addresses are kept in `<data_dir>/state.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import resource
import secrets
import shutil
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from actors.chain.keys import ChainKeys, load_configured_keys
from actors.infra.embedded import free_port, pid_alive
from actors.infra.errors import ClobError
from actors.infra.ray_env import prefer_exchange_workers
from actors.infra.services import (
    ensure_chain,
    ensure_services,
    stop_embedded,
)
from actors.infra.settings import DIRECT_PORTS_ENV, Settings
from serve_app import custody_up, demo

Progress = Callable[[str], None]
APP_NAME = "clob"
_READY_TIMEOUT_S = 120.0


class LaunchError(ClobError):
    """A step of `clob up`/`down` failed; the message is one line for the user."""


@dataclass
class RunState:
    """What a running `clob up` records for `clob down` and `clob status`."""

    pid: int
    http_url: str
    ray_address: str
    database_url: str
    redis_url: str
    started: list[str]
    solana_rpc_url: str = ""  # absent from the state files of earlier versions


def state_file(settings: Settings) -> Path:
    """Return the path of the run-state file of this data directory."""
    return settings.data_dir / "state.json"


def read_state(settings: Settings) -> RunState | None:
    """Return the recorded state of a live `clob up`, or None."""
    try:
        state = RunState(**json.loads(state_file(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return state if pid_alive(state.pid) else None


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; return the names applied."""
    import asyncpg

    from actors.infra.migrate import apply_migrations

    conn = await asyncpg.connect(database_url)
    try:
        applied: list[str] = await apply_migrations(conn)
        return applied
    finally:
        await conn.close()


HAPROXY_MAXCONN_ENV = "RAY_SERVE_HAPROXY_MAXCONN"
HAPROXY_FDS_PER_CONNECTION = 2.5
"""Two sockets per proxied connection, and splice pipes for some (measured by ws_bench)."""


def haproxy_maxconn() -> int:
    """Return HAProxy's connection cap: what the hard fd limit allows, at least Serve's
    default of 4,096 (each WebSocket holds a connection for its whole life)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return 100_000
    return max(4096, min(100_000, int((hard - 500) / HAPROXY_FDS_PER_CONNECTION)))


def serve_environment(settings: Settings) -> dict[str, str]:
    """Return the environment Ray must start with for Serve's HAProxy ingress.

    Ray workers inherit the raylet's environment, so these are set before `ray.init`.
    Every port and path is private to the data directory, so several instances can run on
    one machine (tests do).
    """
    if not settings.serve.haproxy:
        return {}
    haproxy_dir = haproxy_home(settings)
    haproxy_dir.mkdir(parents=True, exist_ok=True)
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy_dir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy_dir / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy_dir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy_dir / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(settings.serve.haproxy_stats_port or free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(settings.serve.haproxy_metrics_port or free_port()),
        "RAY_SERVE_HAPROXY_MAXCONN": os.environ.get(HAPROXY_MAXCONN_ENV) or str(haproxy_maxconn()),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(free_port()),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(free_port()),
    }


def admin_token(settings: Settings) -> str:
    """Return the admin token: configured, or generated once into `<data_dir>/admin_token`."""
    if settings.admin_token:
        return settings.admin_token
    path = settings.data_dir / "admin_token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def haproxy_home(settings: Settings) -> Path:
    """Return HAProxy's directory for this data directory.

    It lives under the system temp dir with a short name because Serve nests a 56-character
    directory below it and a Unix socket path may not exceed 107 bytes.
    """
    digest = hashlib.sha1(str(settings.data_dir.resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"clob-hap-{digest}"


@contextlib.contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM inside the block (the main thread only; elsewhere they
    cannot be handled anyway), then restore the handlers.

    Stopping takes seconds; an interrupt in the middle of it (the second Ctrl-C of an
    impatient user during start-up) would leave embedded servers running.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_stray_haproxy(home: Path, timeout_s: float = 5.0) -> list[int]:
    """Stop HAProxy processes still serving from `home` after the local Ray has stopped;
    return their pids.

    Serve's HAProxy manager restarts HAProxy (`-sf <old pid>`) when its configuration
    changes, and a process restarted that way was once seen outliving `ray.shutdown()`,
    an orphan still holding the API port. The directory is private to the data directory,
    so only this exchange's HAProxy matches.
    """
    import psutil

    marker = str(home)
    strays: list[Any] = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "haproxy" and any(marker in part for part in cmdline):
            strays.append(proc)
    for proc in strays:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(strays, timeout=timeout_s)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout_s)
    return [proc.pid for proc in strays]


class Exchange:
    """One `clob up`: starts everything in order and stops it in reverse."""

    def __init__(self, settings: Settings, progress: Progress) -> None:
        self.settings = settings
        self.progress = progress
        self.started_services: list[str] = []
        self.ray_started = False
        self.demo: demo.DemoData | None = None
        self.keys: ChainKeys | None = None

    def start(self) -> RunState:
        """Start every component; on failure stop what was started and raise."""
        settings = self.settings
        running = read_state(settings)
        if running is not None:
            raise LaunchError(f"already running (pid {running.pid}); run `clob down` first")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            return self._start(settings)
        except BaseException:
            with stop_signals_deferred():  # a second Ctrl-C must not cut the clean-up short
                self.stop()
            raise

    def _start(self, settings: Settings) -> RunState:
        services = ensure_services(settings, self.progress)
        self.started_services = services.started
        programs = custody_up.chain_programs(settings)  # CustodyUpError: not built
        solana_rpc_url, chain_started = ensure_chain(settings, self.progress, programs)
        if chain_started:
            self.started_services.append("solana")
        self.keys = load_configured_keys(settings)  # made on first start, mode 0600
        self.progress("applying migrations")
        applied = asyncio.run(migrate(services.database_url))
        self.progress(
            f"migrations: {len(applied)} applied" if applied else "migrations: up to date"
        )
        ray_address = self._start_ray()
        self.progress("starting the trading core")
        import ray

        from actors.bootstrap import start_core

        controller = start_core(
            services.database_url, settings.ledger_shards, settings.ray.namespace,
            services.redis_url,
        )  # fmt: skip
        self.progress(f"trading core up ({ray.get(controller.shard_count.remote())} ledger shards)")
        self.demo = demo.for_launch(settings, services.database_url, controller, self.progress)
        config = custody_up.custody_config(settings, services.database_url, solana_rpc_url)
        chain_actor = custody_up.start(config, self.progress)
        custody_up.start_batchers(
            custody_up.settlement_config(settings, config, services.redis_url), self.progress
        )
        if self.demo is not None and chain_actor is not None and self.keys is not None:
            demo.fund_for_launch(settings, services.database_url, self.demo, chain_actor,
                                 solana_rpc_url, self.keys, self.progress)  # fmt: skip
        http_url = self._deploy(services.database_url, services.redis_url, solana_rpc_url)
        state = RunState(
            os.getpid(), http_url, ray_address, services.database_url, services.redis_url,
            self.started_services, solana_rpc_url,
        )  # fmt: skip
        # Written whole or not at all: `clob status` may read it at any moment.
        path = state_file(settings)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(state), indent=2))
        partial.replace(path)
        return state

    def _start_ray(self) -> str:
        os.environ.update(serve_environment(self.settings))
        if self.settings.ray.direct_ports:  # the actors read it from their environment
            os.environ[DIRECT_PORTS_ENV] = self.settings.ray.direct_ports
        prefer_exchange_workers()
        import ray

        self.progress("joining Ray" if self.settings.ray_address else "starting Ray")
        options: dict[str, Any] = {
            "address": self.settings.ray_address,
            "namespace": self.settings.ray.namespace,
            "num_cpus": None if self.settings.ray_address else self.settings.ray.num_cpus,
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "log_to_driver": self.settings.log_level == "DEBUG",
            "configure_logging": True,
        }
        try:
            context = ray.init(**options)
        except Exception as exc:
            # Ray waits a hard-coded 30 s for a local raylet to register; on an overloaded
            # machine that can pass. Try once more before giving up.
            if "timed out during startup" not in str(exc):
                raise
            ray.shutdown()
            self.progress("Ray was slow to start; retrying")
            context = ray.init(**options)
        self.ray_started = True
        info: dict[str, Any] = getattr(context, "address_info", {})
        return str(info.get("gcs_address") or self.settings.ray_address)

    def _deploy(self, database_url: str, redis_url: str, solana_rpc_url: str) -> str:
        from ray import serve

        from serve_app.app import deploy
        from serve_app.edge import ratelimit, requestlog
        from serve_app.gateway.args import AppArgs

        host, port = self.settings.serve.host, self.settings.serve.port
        mode = "HAProxy" if self.settings.serve.haproxy else "default proxy"
        self.progress(f"deploying the Serve app ({mode}) on {host}:{port}")
        serve.start(http_options={"host": host, "port": port})
        args = AppArgs(
            database_url=database_url,
            redis_url=redis_url,
            solana_rpc_url=solana_rpc_url,
            admin_token=admin_token(self.settings),
            ray_namespace=self.settings.ray.namespace,
            # Credits from nothing are for tests on embedded defaults only: with a real
            # chain they would break the reserves (vaults = ledger).
            test_credits=self.settings.database_url is None
            and self.settings.solana_rpc_url is None,
            rate_limit_per_minute=self.settings.serve.rate_limit_per_minute,
            client_ip=ratelimit.client_ip_source(self.settings),
            cors_origins=self.settings.serve.cors_origins,
            request_log_dir=requestlog.directory(self.settings),
            access_log=self.settings.serve.access_log,
            gateway_replicas=self.settings.serve.gateway_replicas,
            ws_replicas=self.settings.serve.ws_replicas,
            ws=self.settings.ws,
            custody=self.settings.custody.resolved(embedded=self.settings.database_url is None),
            settlement_batchers=self.settings.settlement.batchers,
        )
        deploy(args, APP_NAME)
        http_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        self.progress("waiting for the API to answer")
        if not wait_for_http(f"{http_url}/health", _READY_TIMEOUT_S, down_ok=True):
            # A market or shard that failed to recover stops nothing else: say so, go on.
            self.progress("health is DOWN: something failed to recover; see `clob status`")
        return http_url

    def stop(self) -> None:
        """Stop Serve and Ray (if this process started them), then the embedded services."""
        if self.ray_started:
            self.progress("stopping Serve and Ray")
            import ray

            from serve_app.app import undeploy

            try:
                # On our own local Ray, ray.shutdown() ends every process (HAProxy
                # included) in about a second, while Serve's graceful shutdown waits 30 s
                # for keep-alive connections to drain. On a shared cluster, remove only
                # our applications.
                if self.settings.ray_address:
                    undeploy(APP_NAME)
            finally:
                ray.shutdown()
            if not self.settings.ray_address:
                stop_stray_haproxy(haproxy_home(self.settings))
            self.ray_started = False
        if self.started_services:
            self.progress("stopping embedded services")
            stop_embedded(self.settings, self.started_services)
            self.started_services = []
        shutil.rmtree(haproxy_home(self.settings), ignore_errors=True)
        state_file(self.settings).unlink(missing_ok=True)


def wait_for_http(url: str, timeout_s: float, down_ok: bool = False) -> bool:
    """Poll `url` until it answers 200 (or, with `down_ok`, 503); return whether it was 200.

    Raises:
        LaunchError: No such answer within `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except urllib.error.HTTPError as exc:
            if exc.code == 503 and down_ok:
                return False
            last_error = str(exc)
        except OSError as exc:
            last_error = str(exc)
        time.sleep(0.25)
    raise LaunchError(f"{url} did not answer within {timeout_s:.0f} s ({last_error})")


def run_until_signalled(exchange: Exchange, state: RunState, echo: Progress) -> None:
    """Print the URLs, block until SIGINT/SIGTERM, then stop everything."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    echo(f"API        {state.http_url}/api/v1  (docs: {state.http_url}/docs)")
    echo(f"health     {state.http_url}/health")
    echo(f"PostgreSQL {state.database_url}")
    echo(f"Redis      {state.redis_url}")
    echo(f"Solana     {state.solana_rpc_url}")
    if exchange.keys is not None:
        echo(f"keys       admin {exchange.keys.admin.pubkey()}, "
             f"operator {exchange.keys.operator.pubkey()}")  # fmt: skip
    echo(f"Ray        {state.ray_address}")
    token_from = "the settings" if exchange.settings.admin_token else _token_file(exchange)
    echo(f"admin      send X-Admin-Token (the token is in {token_from})")
    for line in demo.banner(exchange.demo):
        echo(line)
    echo("ready; press Ctrl-C to stop")
    stop.wait()
    exchange.stop()
    echo("stopped")


def _token_file(exchange: Exchange) -> Path:
    return (exchange.settings.data_dir / "admin_token").resolve()


def down(settings: Settings, progress: Progress, timeout_s: float = 120.0) -> bool:
    """Stop a running `clob up` of this data directory and its embedded services.

    Returns:
        Whether anything was running.
    """
    state = read_state(settings)
    found = False
    if state is not None:
        found = True
        progress(f"stopping clob (pid {state.pid})")
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pid_alive(state.pid):
            if time.monotonic() > deadline:
                raise LaunchError(f"pid {state.pid} did not exit within {timeout_s:.0f} s")
            time.sleep(0.2)
    stopped = stop_embedded(settings)
    if stopped:
        progress(f"stopped embedded {', '.join(stopped)}")
    return found or bool(stopped)
