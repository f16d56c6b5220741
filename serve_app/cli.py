"""The `clob` command line.

Every failure prints one line, `clob: error: ...`, and exits non-zero; no tracebacks
unless `CLOB_DEBUG=1`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# pgserver imports platformdirs, which warns on machines without XDG_RUNTIME_DIR.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

from actors.infra.errors import ClobError  # noqa: E402
from actors.infra.settings import (  # noqa: E402
    ConfigError,
    config_path,
    default_toml,
    load_settings,
)

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_DOWN = 0, 1, 2, 3


def _echo(line: str) -> None:
    print(line, flush=True)


def _progress() -> Callable[[str], None]:
    started = time.monotonic()

    def report(step: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {step}...", file=sys.stderr, flush=True)

    return report


def cmd_init_config(args: argparse.Namespace) -> int:
    """Write `clob.toml` with every setting at its default."""
    path = Path(args.path) if args.path else config_path()
    if path.exists() and not args.force:
        print(f"clob: error: {path} exists (use --force to overwrite)", file=sys.stderr)
        return EXIT_FAILED
    path.write_text(default_toml())
    _echo(f"wrote {path}")
    return EXIT_OK


def cmd_validate_config(_: argparse.Namespace) -> int:
    """Print every configuration problem with its key; exit 2 if there is any."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"{key}: {message}", file=sys.stderr)
        return EXIT_CONFIG
    source = config_path() if config_path().exists() else "defaults"
    _echo(f"configuration is valid ({source} + environment)")
    _echo(json.dumps(settings.model_dump(mode="json"), indent=2))
    return EXIT_OK


def cmd_migrate(_: argparse.Namespace) -> int:
    """Apply pending migrations (starting the embedded PostgreSQL if needed)."""
    from actors.infra.services import ensure_services, stop_embedded
    from serve_app.launcher import migrate

    settings = load_settings()
    services = ensure_services(settings, _progress())
    try:
        applied = asyncio.run(migrate(services.database_url))
    finally:
        if services.started:
            stop_embedded(settings, services.started)
    _echo("\n".join(f"applied {name}" for name in applied) or "already up to date")
    return EXIT_OK


def cmd_up(_: argparse.Namespace) -> int:
    """Run the exchange until Ctrl-C."""
    from serve_app.launcher import Exchange, run_until_signalled

    exchange = Exchange(load_settings(), _progress())
    state = exchange.start()
    run_until_signalled(exchange, state, _echo)
    return EXIT_OK


def cmd_down(_: argparse.Namespace) -> int:
    """Stop a running `clob up` and the embedded services of the data directory."""
    from serve_app.launcher import down

    if not down(load_settings(), _progress()):
        _echo("nothing was running")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Print each component's state; exit 3 if any is down."""
    from serve_app.operations import status

    rows = status(load_settings())
    if args.json:
        _echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            version, address = row.get("version") or "-", row.get("address") or "-"
            error = f"  {row['error']}" if row.get("error") else ""
            _echo(f"{row['name']:<20} {row['status']:<10} {version:<10} {address}{error}")
    return EXIT_OK if all(r["status"] in ("up", "configured") for r in rows) else EXIT_DOWN


def cmd_recover(args: argparse.Namespace) -> int:
    """Retry a failed market's recovery; print the market's and shards' rows."""
    from serve_app.operations import recover_market

    rows = recover_market(load_settings(), args.market)
    for row in rows:
        _echo(f"{row['name']:<20} {row['status']:<10} {row.get('error') or ''}")
    return EXIT_OK if all(r["status"] == "up" for r in rows) else EXIT_DOWN


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Print the reserves check per asset and per vault; exit 4 if any difference is not
    zero."""
    from serve_app.reconciliation import as_json, exit_code, fetch, table

    report = fetch(load_settings())
    if args.json:
        _echo(json.dumps(as_json(report), indent=2))
    else:
        for line in table(report):
            _echo(line)
    return exit_code(report)


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay JSON-lines commands from stdin through the engine; events to stdout."""
    from actors.engine.replay import replay_main

    spec = json.loads(Path(args.market).read_text())
    book_out = open(args.book_out, "w") if args.book_out else None  # noqa: SIM115
    try:
        return replay_main(spec, sys.stdin, sys.stdout.write, book_out.write if book_out else None)
    finally:
        if book_out is not None:
            book_out.close()


def cmd_demo(_: argparse.Namespace) -> int:
    """Print the demo accounts' API keys and the API's URL as shell variables."""
    from serve_app.demo import shell_lines
    from serve_app.launcher import read_state

    settings = load_settings()
    running = read_state(settings)
    host, port = settings.serve.host, settings.serve.port
    url = running.http_url if running else f"http://{_local(host)}:{port}"
    for line in shell_lines(settings, url):
        _echo(line)
    return EXIT_OK


def cmd_deposit(args: argparse.Namespace) -> int:
    """Deposit from the demo wallet into the deposit address of a key's account."""
    from serve_app.operations import deposit_from_demo_wallet

    address, signature = deposit_from_demo_wallet(load_settings(), args.key, args.asset,
                                                  args.amount)  # fmt: skip
    _echo(f"sent {args.amount} {args.asset} to {address} (transaction {signature}); "
          "GET /api/v1/deposits shows it, credited at the confirmation depth")  # fmt: skip
    return EXIT_OK


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def cmd_keys(args: argparse.Namespace) -> int:
    """Create, list or revoke API keys (`clob keys create|list|revoke`)."""
    from serve_app.launcher import read_state

    settings = load_settings()
    running = read_state(settings)
    if running is not None:
        return asyncio.run(_keys(args, running.database_url))
    from actors.infra.services import ensure_services, stop_embedded
    from serve_app.launcher import migrate

    services = ensure_services(settings)
    try:
        asyncio.run(migrate(services.database_url))
        return asyncio.run(_keys(args, services.database_url))
    finally:
        if services.started:
            stop_embedded(settings, services.started)


async def _keys(args: argparse.Namespace, database_url: str) -> int:
    import asyncpg

    from serve_app import keys

    conn = await asyncpg.connect(database_url)
    try:
        if args.keys_command == "create":
            created = await keys.create_key(conn, args.account, args.label, args.scopes)
            _echo(f"account_id: {created.account_id}")
            _echo(f"api_key:    {created.key}")
            print("(the key is shown only once; send it as the X-API-Key header)", file=sys.stderr)
        elif args.keys_command == "revoke":
            account_id, key = await keys.revoke_key(conn, args.key_id)
            _echo(f"revoked {key['key_id']} of account {account_id} at {key['revoked_at']}")
            print(_REVOKE_NOTE, file=sys.stderr)
        else:
            _echo(json.dumps(await keys.list_keys(conn, args.account), indent=2))
    finally:
        await conn.close()
    return EXIT_OK


_REVOKE_NOTE = (
    "(a gateway replica that checked the key within its auth_cache_ttl_s, 30 s by default, "
    "may accept it until then)"
)


def _scopes(text: str) -> list[str]:
    from serve_app.keys import KeysError, canonical_scopes

    try:
        return canonical_scopes([part.strip() for part in text.split(",") if part.strip()])
    except KeysError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_keys_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list or revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key (and an account if none given)")
    create.add_argument("--account", type=int, help="account id (default: a new account)")
    create.add_argument("--label", default="", help="a label for the key")
    create.add_argument(
        "--scopes",
        type=_scopes,
        default=["read", "trade"],
        help="comma-separated subset of read,trade,withdraw (default: read,trade)",
    )
    listing = keys_sub.add_parser("list", help="list an account's keys")
    listing.add_argument("--account", type=int, required=True, help="account id")
    revoke = keys_sub.add_parser("revoke", help="revoke a key (for good)")
    revoke.add_argument("key_id", help="the key's id (the part of the key before the dot)")
    keys.set_defaults(func=cmd_keys)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `clob`."""
    parser = argparse.ArgumentParser(prog="clob", description="Off-chain CLOB exchange on Ray.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("up", help="start everything and serve until Ctrl-C").set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop a running `clob up`").set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="show each component's state")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)
    recover = sub.add_parser("recover", help="retry a failed market's recovery now")
    recover.add_argument("market", help="market symbol, e.g. SOL-USDC")
    recover.set_defaults(func=cmd_recover)
    reconcile = sub.add_parser("reconcile", help="compare the vaults on chain with the ledger")
    reconcile.add_argument("--json", action="store_true", help="print JSON (atoms)")
    reconcile.set_defaults(func=cmd_reconcile)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    init = sub.add_parser("init-config", help="write clob.toml with the defaults")
    init.add_argument("path", nargs="?", help="where to write (default: clob.toml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=cmd_init_config)
    validate = sub.add_parser("validate-config", help="check the configuration")
    validate.set_defaults(func=cmd_validate_config)
    replay = sub.add_parser("replay", help="replay commands (JSON lines) through the engine")
    replay.add_argument("--market", required=True, help="market spec JSON file")
    replay.add_argument("--book-out", help="write the final book as JSON here")
    replay.set_defaults(func=cmd_replay)
    _add_keys_parser(sub)
    demo = sub.add_parser(
        "demo", help='print the demo accounts\' keys as shell variables: eval "$(clob demo)"'
    )
    demo.set_defaults(func=cmd_demo)
    deposit = sub.add_parser(
        "deposit", help="deposit demo tokens from the demo wallet (embedded chain only)"
    )
    deposit.add_argument("--key", required=True, help="API key of the account to fund")
    deposit.add_argument("asset", help="asset symbol, e.g. USDC")
    deposit.add_argument("amount", help="amount in whole units, e.g. 250.5")
    deposit.set_defaults(func=cmd_deposit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `clob`; return the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        for key, message in exc.problems:
            print(f"clob: config error: {key}: {message}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("CLOB_DEBUG") == "1":
            raise
        print(f"clob: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    return code


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ClobError | OSError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


if __name__ == "__main__":
    sys.exit(main())
