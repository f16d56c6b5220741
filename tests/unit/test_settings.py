"""Configuration: TOML file, environment overrides, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from actors.infra.settings import ConfigError, default_toml, load_settings

CLOB = str(Path(sys.executable).parent / "clob")


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DATABASE_URL", "REDIS_URL", "SOLANA_RPC_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "clob.toml"
    monkeypatch.setenv("CLOB_CONFIG", str(path))
    return path


def test_defaults_apply_without_a_file(config_file: Path) -> None:
    settings = load_settings()
    assert settings.serve.port == 8000
    assert settings.database_url is None, "no URL means the embedded PostgreSQL"
    assert settings.ledger_shards is None, "no count means the ledger's recorded one"


def test_generated_file_is_valid_toml_and_loads_to_the_defaults(config_file: Path) -> None:
    config_file.write_text(default_toml())
    tomllib.loads(config_file.read_text())
    assert (
        load_settings() == load_settings.__wrapped__()
        if hasattr(load_settings, "__wrapped__")
        else True
    )
    from_file = load_settings()
    config_file.unlink()
    assert from_file == load_settings(), "init-config must write exactly the defaults"


def test_file_values_are_used(config_file: Path) -> None:
    config_file.write_text("ledger_shards = 8\n[serve]\nport = 9100\n")
    settings = load_settings()
    assert (settings.ledger_shards, settings.serve.port) == (8, 9100)


def test_environment_overrides_the_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file.write_text("[serve]\nport = 9100\n")
    monkeypatch.setenv("CLOB_SERVE__PORT", "9200")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example:5432/x")
    settings = load_settings()
    assert settings.serve.port == 9200
    assert settings.database_url == "postgresql://u@db.example:5432/x"


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ("[serve]\nport = 70000\n", "serve.port"),
        ('[serve]\nport = "eighty"\n', "serve.port"),
        ("ledger_shards = 0\n", "ledger_shards"),
        ("no_such_setting = 1\n", "no_such_setting"),
        ('log_level = "LOUD"\n', "log_level"),
        ('database_url = "mysql://x"\n', "database_url"),
        ("[embedded]\nredis_port = -1\n", "embedded.redis_port"),
        ('[serve]\ncors_origins = ["https://a.example/path"]\n', "serve.cors_origins"),
        ('[serve]\ncors_origins = "*"\n', "serve.cors_origins"),
        ("[serve]\nrate_limit_per_minute = -1\n", "serve.rate_limit_per_minute"),
    ],
)
def test_bad_value_is_reported_with_its_key(config_file: Path, content: str, key: str) -> None:
    config_file.write_text(content)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert [k for k, _ in error.value.problems] == [key]


def test_every_problem_is_reported_at_once(config_file: Path) -> None:
    config_file.write_text("ledger_shards = 0\nbogus = 1\n[serve]\nport = -5\n")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert {k for k, _ in error.value.problems} == {"ledger_shards", "bogus", "serve.port"}


def test_bad_environment_value_names_the_key(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOB_SERVE__PORT", "not-a-port")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert error.value.problems[0][0] == "serve.port"


def test_broken_toml_is_one_clear_problem(config_file: Path) -> None:
    config_file.write_text("[serve\nport = 1\n")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "not valid TOML" in error.value.problems[0][1]


def _clob(*args: str, cwd: Path, env_config: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "CLOB_CONFIG": str(env_config)}
    return subprocess.run(
        [CLOB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_validate_config_prints_each_problem_and_exits_nonzero(tmp_path: Path) -> None:
    path = tmp_path / "clob.toml"
    path.write_text("ledger_shards = 0\n[serve]\nport = 99999\n")
    result = _clob("validate-config", cwd=tmp_path, env_config=path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith("ledger_shards: ") for line in lines), lines
    assert any(line.startswith("serve.port: ") for line in lines), lines
    assert "Traceback" not in result.stderr


def test_cli_init_config_then_validate_config(tmp_path: Path) -> None:
    path = tmp_path / "clob.toml"
    assert _clob("init-config", cwd=tmp_path, env_config=path).returncode == 0
    assert path.exists()
    again = _clob("init-config", cwd=tmp_path, env_config=path)
    assert again.returncode == 1 and "exists" in again.stderr, "never overwrite without --force"
    result = _clob("validate-config", cwd=tmp_path, env_config=path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("env,expected", [(None, 1), ("2", 2)])
def test_gateway_replicas_reach_the_deployment(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, env: str | None, expected: int
) -> None:
    from serve_app.app import app_builder
    from serve_app.gateway.args import AppArgs

    if env is not None:
        monkeypatch.setenv("CLOB_SERVE__GATEWAY_REPLICAS", env)
    settings = load_settings()
    assert settings.serve.gateway_replicas == expected
    args = AppArgs(
        database_url="postgresql://h/db", redis_url="redis://h",
        gateway_replicas=settings.serve.gateway_replicas,
    )  # fmt: skip
    deployment = app_builder(args)._bound_deployment
    assert deployment._deployment_config.num_replicas == expected


def test_gateway_replicas_must_be_positive(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOB_SERVE__GATEWAY_REPLICAS", "0")
    with pytest.raises(Exception, match="greater than or equal to 1"):
        load_settings()


@pytest.mark.parametrize("env,expected", [(None, False), ("true", True), ("false", False)])
def test_serve_access_log_reaches_the_gateway_deployment(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, env: str | None, expected: bool
) -> None:
    """Off by default (a log line per order costs gateway CPU); `CLOB_SERVE__ACCESS_LOG`
    turns it on, and the app builder passes it to the deployment's logging config."""
    from serve_app.app import app_builder
    from serve_app.gateway.args import AppArgs

    if env is not None:
        monkeypatch.setenv("CLOB_SERVE__ACCESS_LOG", env)
    settings = load_settings()
    assert settings.serve.access_log is expected
    args = AppArgs(database_url="postgresql://h/db", redis_url="redis://h", access_log=expected)
    deployment = app_builder(args)._bound_deployment
    assert deployment._deployment_config.logging_config["enable_access_log"] is expected


@pytest.mark.parametrize(
    ("value", "ok"),
    [("", True), ("20000-20010", True), (" 30000-30000 ", True), ("20010-20000", False),
     ("0-10", False), ("20000-70000", False), ("20000", False), ("a-b", False)],
)  # fmt: skip
def test_the_direct_channel_port_range_is_first_dash_last(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, value: str, ok: bool
) -> None:
    monkeypatch.setenv("CLOB_RAY__DIRECT_PORTS", value)
    if ok:
        assert load_settings().ray.direct_ports == value.strip()
        return
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert [k for k, _ in error.value.problems] == ["ray.direct_ports"]


def test_the_edge_settings_reach_the_gateway(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On by default: the rate limit at 100 a minute, CORS for any origin, the request log
    in `<data_dir>/logs`; behind Serve's HAProxy no client IP unless X-Forwarded-For."""
    from serve_app.edge import ratelimit, requestlog

    monkeypatch.setenv("CLOB_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.serve.rate_limit_per_minute == 100
    assert settings.serve.cors_origins == ["*"]
    assert requestlog.directory(settings) == str((tmp_path / "logs").resolve())
    assert ratelimit.client_ip_source(settings) == "none"
    config_file.write_text(
        '[serve]\ncors_origins = ["https://a.example", "http://[::1]:3000"]\n'
        "haproxy = false\nrequest_log = false\n"
    )
    settings = load_settings()
    assert settings.serve.cors_origins == ["https://a.example", "http://[::1]:3000"]
    assert requestlog.directory(settings) is None
    assert ratelimit.client_ip_source(settings) == "peer"
    monkeypatch.setenv("CLOB_SERVE__FORWARDED_FOR", "true")
    assert ratelimit.client_ip_source(load_settings()) == "forwarded_for"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, True),
        ({"DATABASE_URL": "postgresql://u@db.example:5432/x"}, False),
        ({"CLOB_DEMO__ENABLED": "false"}, False),
        ({"DATABASE_URL": "postgresql://u@db.example:5432/x", "CLOB_DEMO__ENABLED": "true"}, True),
    ],
)
def test_demo_data_is_on_by_default_only_on_embedded_defaults(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings().demo_enabled is expected


def test_demo_data_can_be_turned_off_in_the_file(config_file: Path) -> None:
    config_file.write_text("[demo]\nenabled = false\n")
    assert load_settings().demo_enabled is False


def test_the_websocket_limits_are_a_section(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file.write_text("[ws]\nmax_connections = 123\n")
    monkeypatch.setenv("CLOB_WS__HEARTBEAT_S", "4.5")
    ws = load_settings().ws
    assert (ws.max_connections, ws.heartbeat_s, ws.burst) == (123, 4.5, 40)


def test_embedded_chain_settings_and_keypair_paths_come_from_env(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOB_EMBEDDED__SOLANA_SLOT_MS", "50")
    monkeypatch.setenv("CLOB_ADMIN_KEYPAIR", "/secure/admin.json")
    settings = load_settings()
    assert settings.embedded.solana_slot_ms == 50
    assert settings.admin_keypair == Path("/secure/admin.json")
    assert settings.operator_keypair is None, "unset: a file in keys_dir"


@pytest.mark.parametrize(
    "spec", ["nothing", "abc=/x.so", "=/x.so", "11111111111111111111111111111111="]
)
def test_a_malformed_program_spec_is_named(config_file: Path, spec: str) -> None:
    config_file.write_text(f'[embedded]\nsolana_programs = ["{spec}"]\n')
    with pytest.raises(ConfigError) as failed:
        load_settings()
    assert [key for key, _ in failed.value.problems] == ["embedded.solana_programs"]


def test_custody_limits_come_from_the_file_in_atoms_per_asset(config_file: Path) -> None:
    config_file.write_text(
        "[custody]\ncooling_off_s = 60\ndaily_limit_atoms = { USDC = 5000000 }\n"
        'two_step_threshold_atoms = { "USDC" = 1000000 }\n'
    )
    policy = load_settings().custody.policy()
    assert (policy.cooling_off_s, policy.daily_limit_atoms, policy.two_step_threshold_atoms) == (
        60, {"USDC": 5_000_000}, {"USDC": 1_000_000}
    )  # fmt: skip


def test_custody_cooling_off_is_zero_only_on_embedded_defaults(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    custody = load_settings().custody
    assert custody.cooling_off_s is None
    assert custody.resolved(embedded=True).policy().cooling_off_s == 0
    assert custody.resolved(embedded=False).policy().cooling_off_s == 86_400
    assert custody.policy().cooling_off_s == 86_400, "unset and unresolved: the safe one"
    monkeypatch.setenv("CLOB_CUSTODY__COOLING_OFF_S", "5")
    assert load_settings().custody.resolved(embedded=True).policy().cooling_off_s == 5


def test_negative_custody_amounts_are_refused(config_file: Path) -> None:
    config_file.write_text("[custody]\ndaily_limit_atoms = { USDC = -1 }\n")
    with pytest.raises(ConfigError) as problem:
        load_settings()
    assert "custody.daily_limit_atoms" in str(problem.value)
