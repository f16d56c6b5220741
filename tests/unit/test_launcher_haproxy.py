"""HAProxy's connection cap follows the fd limit (each WebSocket holds a connection)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from actors.infra.settings import Settings
from serve_app import launcher


def test_the_cap_is_what_the_hard_fd_limit_allows_and_at_least_serves_default() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = launcher.haproxy_maxconn()
    assert cap >= 4096
    if hard != resource.RLIM_INFINITY and hard > 4096 * 2.5 + 500:
        assert cap * launcher.HAPROXY_FDS_PER_CONNECTION + 500 <= hard


def test_serve_environment_sets_the_cap_unless_the_environment_chose_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=str(tmp_path))
    monkeypatch.delenv(launcher.HAPROXY_MAXCONN_ENV, raising=False)
    env = launcher.serve_environment(settings)
    assert env[launcher.HAPROXY_MAXCONN_ENV] == str(launcher.haproxy_maxconn())
    monkeypatch.setenv(launcher.HAPROXY_MAXCONN_ENV, "5000")
    assert launcher.serve_environment(settings)[launcher.HAPROXY_MAXCONN_ENV] == "5000"
