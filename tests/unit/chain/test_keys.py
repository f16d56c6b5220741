"""Keypair files: created once with mode 0600, reused, taken from the environment, and
refused when others may read them or they hold no keypair."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from solders.keypair import Keypair

from actors.chain.keys import ROLE_ENV, KeyFileError, load_keys, read_keypair


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run with umask 0, so a file's mode is exactly what the code asked for."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_role_gets_a_0600_file_on_first_use(tmp_path: Path, open_umask: None) -> None:
    keys = load_keys(tmp_path / "keys", environ={})
    files = sorted((tmp_path / "keys").iterdir())
    assert [f.name for f in files] == sorted(f"{role}.json" for role in ROLE_ENV)
    assert all(_mode(f) == 0o600 for f in files)
    pubkeys = {keys.admin.pubkey(), keys.operator.pubkey(), keys.payer.pubkey(),
               keys.mint_authority.pubkey()}  # fmt: skip
    assert len(pubkeys) == 4, "each role has its own key"


def test_the_files_are_reused_and_in_the_solana_cli_format(tmp_path: Path) -> None:
    first = load_keys(tmp_path, environ={})
    second = load_keys(tmp_path, environ={})
    assert first == second
    raw = json.loads((tmp_path / "operator.json").read_text())
    assert Keypair.from_bytes(bytes(raw)) == first.operator


def test_a_role_may_come_from_the_environment(tmp_path: Path) -> None:
    admin = Keypair()
    path = tmp_path / "cold" / "admin.json"
    path.parent.mkdir()
    path.write_text(json.dumps(list(bytes(admin))))
    path.chmod(0o600)
    keys = load_keys(tmp_path / "keys", environ={"CLOB_ADMIN_KEYPAIR": str(path)})
    assert keys.admin == admin
    assert not (tmp_path / "keys" / "admin.json").exists(), "no file made for it"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.json"
    path.write_text(json.dumps(list(bytes(Keypair()))))
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_keypair(path)


@pytest.mark.parametrize("text", ["", "[1, 2, 3]", '{"a": 1}', "[" + ",".join(["300"] * 64) + "]"])
def test_a_file_without_a_keypair_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a keypair"):
        read_keypair(path)


def test_a_missing_configured_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="No such file"):
        load_keys(tmp_path, environ={"CLOB_OPERATOR_KEYPAIR": str(tmp_path / "absent.json")})
