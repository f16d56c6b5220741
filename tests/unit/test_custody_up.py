"""Custody in `clob up`: the programs the embedded chain loads, and the custody actors'
configuration from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.chain.program_idl import PROGRAM_ID
from actors.infra.settings import CustodySettings, Settings
from serve_app import custody_up

OTHER_ID = "9xQeWvG816bUx9EPjHmaT23yvVM2ZWbrrpZb9PusVFin"


def test_the_embedded_chain_loads_the_built_program_at_its_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = tmp_path / "exchange.so"
    built.write_bytes(b"\x7fELF")
    monkeypatch.setattr(custody_up, "PROGRAM_SO", built)
    assert custody_up.chain_programs(Settings(data_dir=tmp_path)) == [f"{PROGRAM_ID}={built}"]
    moved = Settings(data_dir=tmp_path, program_id=OTHER_ID)
    assert custody_up.chain_programs(moved) == [f"{OTHER_ID}={built}"]


def test_a_missing_program_stops_clob_up_with_the_command_that_builds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(custody_up, "PROGRAM_SO", tmp_path / "missing.so")
    with pytest.raises(custody_up.CustodyUpError, match="run `make program`"):
        custody_up.chain_programs(Settings(data_dir=tmp_path))


def test_a_real_chain_loads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(custody_up, "PROGRAM_SO", tmp_path / "missing.so")
    real = Settings(data_dir=tmp_path, solana_rpc_url="https://api.devnet.solana.com")
    assert custody_up.chain_programs(real) == []


def test_the_custody_actors_get_the_settings_with_absolute_key_paths(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=Path("rel-data"), operator_keypair=Path("secrets/operator.json"),
        custody=CustodySettings(confirmations=8, poll_s=0.25, cap_atoms={"USDC": 5_000_000},
                                default_cap_whole=10, window_slots=1_000),
    )  # fmt: skip
    config = custody_up.custody_config(settings, "postgresql://db", "http://127.0.0.1:8899")
    assert (config.database_url, config.rpc_url) == ("postgresql://db", "http://127.0.0.1:8899")
    assert config.keys_dir == str(Path("rel-data/keys").resolve())
    assert config.key_paths == {"operator": str(Path("secrets/operator.json").resolve())}
    assert (config.depth, config.poll_s, config.cap_atoms) == (8, 0.25, {"USDC": 5_000_000})
    assert (config.default_cap_whole, config.window_slots) == (10, 1_000)
    assert config.embedded and config.program_id == ""
    real = Settings(solana_rpc_url="https://api.devnet.solana.com", program_id=OTHER_ID)
    configured = custody_up.custody_config(real, "postgresql://db", "https://x")
    assert not configured.embedded and configured.program_id == OTHER_ID


@pytest.mark.parametrize(
    "bad",
    [{"program_id": "not-a-key"}, {"custody": {"confirmations": 0}},
     {"custody": {"cap_atoms": {"USDC": -1}}}, {"custody": {"poll_s": 0}}],
)  # fmt: skip
def test_bad_custody_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Settings(**bad)  # type: ignore[arg-type]
