"""The exchange's keypairs: files of mode 0600, never in the database.

Each role's keypair comes from the environment variable of that role (a path to a keypair
file), else from `<keys_dir>/<role>.json`, created on first use. Files are in the Solana
CLI's format (a JSON array of the 64 secret-key bytes), so `solana-keygen` and wallets read
them. A file that others may read is refused, as `ssh` refuses such a private key.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from solders.keypair import Keypair

from actors.infra.errors import ClobError

if TYPE_CHECKING:  # the embedded chain imports this module and needs no settings
    from actors.infra.settings import Settings

KEY_FILE_MODE = 0o600
ROLE_ENV = {
    "admin": "CLOB_ADMIN_KEYPAIR",
    "operator": "CLOB_OPERATOR_KEYPAIR",
    "payer": "CLOB_PAYER_KEYPAIR",
    "mint_authority": "CLOB_MINT_AUTHORITY_KEYPAIR",
}
"""Each role and the environment variable that may name its keypair file."""


class KeyFileError(ClobError):
    """A keypair file is missing, unreadable, malformed or readable by others."""


@dataclass(frozen=True)
class ChainKeys:
    """The exchange's keypairs by role.

    Attributes:
        admin: The cold authority: config, key rotation, approval of large withdrawals.
        operator: The hot authority the services sign with (withdrawals, settlement, vaults).
        payer: Pays fees and rent for the exchange's transactions.
        mint_authority: Mints the demo assets on the embedded chain (no role on a real one).
    """

    admin: Keypair
    operator: Keypair
    payer: Keypair
    mint_authority: Keypair


def load_keys(keys_dir: Path, environ: Mapping[str, str] | None = None) -> ChainKeys:
    """Return every role's keypair, creating the missing files in `keys_dir`.

    Args:
        keys_dir: Where the keypair files live (`<data_dir>/keys` by default).
        environ: Where to look for `CLOB_<ROLE>_KEYPAIR` paths (default: `os.environ`).

    Raises:
        KeyFileError: A named file is missing, malformed, or readable by others.
    """
    env = os.environ if environ is None else environ
    pairs = {}
    for role, variable in ROLE_ENV.items():
        configured = env.get(variable)
        if configured:
            pairs[role] = read_keypair(Path(configured))
        else:
            pairs[role] = load_or_create_keypair(keys_dir / f"{role}.json")
    return ChainKeys(**pairs)


def load_configured_keys(settings: Settings) -> ChainKeys:
    """Return the keypairs the settings name (`<role>_keypair`), the rest from `keys_dir`.

    The settings read `CLOB_<ROLE>_KEYPAIR` from the environment themselves.
    """
    keys_dir = settings.keys_dir or settings.data_dir / "keys"
    environ = {ROLE_ENV[role]: str(path) for role, path in configured_key_paths(settings).items()}
    return load_keys(keys_dir, environ)


def configured_key_paths(settings: Settings) -> dict[str, Path]:
    """Return the keypair files the settings name (`<role>_keypair`), by role."""
    named = {
        "admin": settings.admin_keypair,
        "operator": settings.operator_keypair,
        "payer": settings.payer_keypair,
        "mint_authority": settings.mint_authority_keypair,
    }
    return {role: path for role, path in named.items() if path is not None}


def load_or_create_keypair(path: Path) -> Keypair:
    """Return the keypair in `path`, first creating it (mode 0600) if there is none."""
    if not path.exists():
        _write_new(path, Keypair())
    return read_keypair(path)


def read_keypair(path: Path) -> Keypair:
    """Read a keypair file (a JSON array of 64 bytes), refusing one others may read.

    Raises:
        KeyFileError: Missing, malformed, or with group/other permissions.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text()
    except OSError as exc:
        raise KeyFileError(f"keypair file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise KeyFileError(
            f"keypair file {path} has mode {mode:04o}; others may read it: chmod 600 {path}"
        )
    try:
        raw = json.loads(text)
        if not (isinstance(raw, list) and len(raw) == 64):
            raise ValueError("not a JSON array of 64 bytes")
        return Keypair.from_bytes(bytes(raw))
    except ValueError as exc:
        raise KeyFileError(f"keypair file {path} is not a keypair: {exc}") from None


def _write_new(path: Path, keypair: Keypair) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Created with its final mode: the secret is never on disk with wider permissions.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_FILE_MODE)
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # a umask cannot widen it, but be explicit
        os.write(fd, json.dumps(list(bytes(keypair))).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(partial, path)  # never replaces a file another process created meanwhile
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)
