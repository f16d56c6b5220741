"""Start and stop the embedded chain (`actors.chain.rpc_server`) like the embedded Redis.

The server runs as its own process in `<data_dir>/solana`, listening on 127.0.0.1 on a
configured or free port; its pid and port files let `clob up`, `clob down` and `clob
status` find it. A server already running in the data directory is reused. Nothing here
is used when `SOLANA_RPC_URL` is configured.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import solders

from actors.infra.embedded import EmbeddedServiceError, read_pid_port, terminate

_START_TIMEOUT_S = 60.0


@dataclass
class EmbeddedChain:
    """The embedded chain of one data directory.

    Attributes:
        data_dir: The exchange's data directory; the chain lives in its `solana/`.
        port: TCP port to listen on; 0 picks a free one.
        slot_ms: Milliseconds per slot (a validator: about 400).
        programs: Extra programs to load at start, each `<program id>=<path to .so>`.
    """

    data_dir: Path
    port: int = 0
    slot_ms: int = 400
    programs: Sequence[str] = field(default_factory=tuple)

    @property
    def home(self) -> Path:
        """The chain's directory: its record, keys of the faucet, pid/port files, log."""
        return self.data_dir.resolve() / "solana"

    def running_pid_port(self) -> tuple[int, int] | None:
        """Return `(pid, port)` of the server running on this data directory, if any."""
        return read_pid_port(self.home / "server.pid", self.home / "port")

    def url(self, port: int) -> str:
        """Return the JSON-RPC URL of the server on `port`."""
        return f"http://127.0.0.1:{port}"

    def start(self) -> str:
        """Start the server, or reuse the running one; return its JSON-RPC URL.

        Raises:
            EmbeddedServiceError: It exited or did not answer in time (see its log).
        """
        running = self.running_pid_port()
        if running is None:
            running = self._start_server()
        return self.url(running[1])

    def stop(self) -> bool:
        """Stop the server if it runs; return whether one was stopped."""
        running = self.running_pid_port()
        if running is None:
            return False
        terminate(running[0], "the chain")
        return True

    def version(self) -> str:
        """Return the version the server reports (solders' LiteSVM)."""
        return f"{solders.__version__}-litesvm"

    def _start_server(self) -> tuple[int, int]:
        self.home.mkdir(parents=True, exist_ok=True)
        for name in ("server.pid", "port"):
            (self.home / name).unlink(missing_ok=True)
        args = [
            sys.executable, "-m", "actors.chain.rpc_server", "--data-dir", str(self.home),
            "--port", str(self.port), "--slot-ms", str(self.slot_ms),
        ]  # fmt: skip
        for program in self.programs:
            args += ["--program", program]
        log = self.home / "server.log"
        with log.open("ab") as out:
            child = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if child.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                raise EmbeddedServiceError(
                    f"the embedded chain exited ({child.returncode}): {tail[0] if tail else log}"
                )
            running = self.running_pid_port()
            if running is not None and running[0] == child.pid and _healthy(running[1]):
                return running
            time.sleep(0.05)
        child.kill()
        raise EmbeddedServiceError(f"the embedded chain did not answer in time; see {log}")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False
