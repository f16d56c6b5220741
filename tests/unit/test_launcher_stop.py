"""How `clob up` stops: an HAProxy that outlived Ray, and only its own
(`stop_stray_haproxy`); no interrupt in the middle of a clean-up (`stop_signals_deferred`)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from serve_app.launcher import stop_signals_deferred, stop_stray_haproxy


def _fake_haproxy(directory: Path) -> subprocess.Popen[bytes]:
    """A process named `haproxy` whose command line names `directory` (as a real one's
    `-f <dir>/.../haproxy.cfg` does)."""
    directory.mkdir()
    binary = directory / "haproxy"
    binary.symlink_to(shutil.which("sleep") or "/bin/sleep")
    return subprocess.Popen([str(binary), "600"])


def test_only_the_haproxy_of_this_exchange_is_stopped(tmp_path: Path) -> None:
    ours = _fake_haproxy(tmp_path / "clob-hap-ours")
    theirs = _fake_haproxy(tmp_path / "clob-hap-theirs")
    try:
        assert stop_stray_haproxy(tmp_path / "clob-hap-ours") == [ours.pid]
        assert not psutil.pid_exists(ours.pid)  # stopped (and reaped by psutil's wait)
        assert theirs.poll() is None
        assert stop_stray_haproxy(tmp_path / "clob-hap-ours") == []
    finally:
        for proc in (ours, theirs):
            proc.kill()
            proc.wait()


def test_stop_signals_are_ignored_inside_the_block_and_restored_after() -> None:
    before = signal.getsignal(signal.SIGINT)
    with stop_signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)  # and the process lives on
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the handler runs between bytecodes, well before this ends
