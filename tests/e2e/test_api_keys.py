"""API keys: use (last use, scopes) and management (`/api/v1/keys`, `clob keys`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from serve_app import cli, keys
from tests.e2e.conftest import Exchange


async def _last_used(database_url: str, account_id: int) -> list[object]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT last_used_at FROM api_keys WHERE account_id = $1", account_id
        )
        return [r["last_used_at"] for r in rows]
    finally:
        await conn.close()


def test_a_request_records_the_keys_last_use(exchange: Exchange) -> None:
    trader = exchange.trader()
    assert asyncio.run(_last_used(exchange.database_url, trader.account_id)) == [None]
    trader.balances()
    [used] = asyncio.run(_last_used(exchange.database_url, trader.account_id))
    assert used is not None


async def _set_scopes(database_url: str, account_id: int, scopes: list[str]) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE api_keys SET scopes = $2 WHERE account_id = $1", account_id, scopes
        )
    finally:
        await conn.close()


def test_account_data_needs_the_read_scope_and_orders_the_trade_scope(
    exchange: Exchange,
) -> None:
    trade_only, read_only = exchange.trader(), exchange.trader()
    asyncio.run(_set_scopes(exchange.database_url, trade_only.account_id, ["trade"]))
    asyncio.run(_set_scopes(exchange.database_url, read_only.account_id, ["read"]))
    me = trade_only.account_id
    for path in ("/api/v1/balances", f"/api/v1/users/{me}/balance", "/api/v1/trades",
                 "/api/v1/orders", "/api/v1/orders/some-id"):  # fmt: skip
        response = trade_only.http.get(path)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["code"] == "forbidden"
    assert read_only.http.get("/api/v1/balances").status_code == 200
    order = {"market": "NOPE-USDC", "side": "buy", "price": "1", "qty": "1"}
    response = read_only.http.post("/api/v1/orders", json=order)
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


# -- key management: /api/v1/keys ------------------------------------------------------------


def _client(exchange: Exchange, key: str) -> httpx.Client:
    return httpx.Client(base_url=exchange.url, headers={"X-API-Key": key}, timeout=30.0)


def _key_ids(http: httpx.Client) -> list[str]:
    response = http.get("/api/v1/keys")
    assert response.status_code == 200, response.text
    return [k["key_id"] for k in response.json()["keys"]]


def test_a_created_key_works_with_its_scopes_and_its_secret_is_shown_once(
    exchange: Exchange,
) -> None:
    trader = exchange.trader()
    answer = trader.http.post("/api/v1/keys", json={"label": "bot", "scopes": ["read"]})
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["scopes"] == ["read"] and created["label"] == "bot"
    assert created["api_key"].startswith(created["key_id"] + ".")
    secret = created["api_key"].split(".", 1)[1]
    listing = trader.http.get("/api/v1/keys").text
    assert created["key_id"] in listing and secret not in listing and "api_key" not in listing
    with _client(exchange, created["api_key"]) as bot:
        assert bot.get("/api/v1/balances").json()["account_id"] == trader.account_id
        order = {"market": "NOPE-USDC", "side": "buy", "price": "1", "qty": "1"}
        refused = bot.post("/api/v1/orders", json=order)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
        # A key hands out at most its own scopes: the default is the caller's.
        child = bot.post("/api/v1/keys", json={}).json()
        assert child["scopes"] == ["read"]


def test_a_key_cannot_create_a_key_with_a_scope_it_lacks(exchange: Exchange) -> None:
    trader = exchange.trader()
    read_only = trader.http.post("/api/v1/keys", json={"scopes": ["read"]}).json()["api_key"]
    with _client(exchange, read_only) as http:
        before = _key_ids(http)
        for scopes in (["read", "trade"], ["withdraw"]):
            answer = http.post("/api/v1/keys", json={"scopes": scopes})
            assert answer.status_code == 403, answer.text
            assert answer.json()["code"] == "forbidden"
        assert _key_ids(http) == before


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": ["admin"]},
        {"scopes": []},
        {"scopes": "read"},
        {"label": "x" * 129},
        {"expires_at": "2999-01-01T00:00:00"},
        {"owner": 1},
    ],
)
def test_bad_key_requests_are_refused_and_create_nothing(
    exchange: Exchange, body: dict[str, object]
) -> None:
    trader = exchange.trader()
    answer = trader.http.post("/api/v1/keys", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["code"] == "invalid_request" and error["details"]["errors"]
    assert len(_key_ids(trader.http)) == 1


def test_a_key_expiring_in_the_past_is_invalid_expiry_and_creates_nothing(
    exchange: Exchange,
) -> None:
    trader = exchange.trader()
    answer = trader.http.post("/api/v1/keys", json={"expires_at": "2001-01-01T00:00:00Z"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_expiry"
    assert answer.json()["details"] == {"field": "expires_at"}
    assert len(_key_ids(trader.http)) == 1


def test_a_revoked_key_stops_working_at_once(exchange: Exchange) -> None:
    trader = exchange.trader()
    spare = trader.http.post("/api/v1/keys", json={"label": "spare"}).json()
    with _client(exchange, spare["api_key"]) as http:
        assert http.get("/api/v1/balances").status_code == 200  # now cached by the replica
        revoked = trader.http.delete(f"/api/v1/keys/{spare['key_id']}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked_at"] is not None
        answer = http.get("/api/v1/balances")
        assert (answer.status_code, answer.json()["code"]) == (401, "unauthorized")
    again = trader.http.delete(f"/api/v1/keys/{spare['key_id']}")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]


def test_a_key_can_revoke_itself_but_not_a_stronger_key(exchange: Exchange) -> None:
    trader = exchange.trader()
    read_only = trader.http.post("/api/v1/keys", json={"scopes": ["read"]}).json()
    with _client(exchange, read_only["api_key"]) as http:
        strong_id = trader.key.split(".", 1)[0]
        refused = http.delete(f"/api/v1/keys/{strong_id}")
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
        assert trader.http.get("/api/v1/balances").status_code == 200
        assert http.delete(f"/api/v1/keys/{read_only['key_id']}").status_code == 200
        assert http.get("/api/v1/keys").status_code == 401


def test_unknown_key_answers_404(exchange: Exchange) -> None:
    trader = exchange.trader()
    for key_id in ("0123456789abcdef", "not-a-key"):
        answer = trader.http.delete(f"/api/v1/keys/{key_id}")
        assert (answer.status_code, answer.json()["code"]) == (404, "unknown_key")


def test_an_account_has_at_most_the_limit_of_live_keys(exchange: Exchange) -> None:
    trader = exchange.trader()  # one live key already
    made = [trader.http.post("/api/v1/keys", json={}) for _ in range(keys.MAX_LIVE_KEYS - 1)]
    assert [m.status_code for m in made] == [201] * (keys.MAX_LIVE_KEYS - 1)
    over = trader.http.post("/api/v1/keys", json={})
    assert (over.status_code, over.json()["code"]) == (409, "key_limit_reached")
    assert trader.http.delete(f"/api/v1/keys/{made[0].json()['key_id']}").status_code == 200
    assert trader.http.post("/api/v1/keys", json={}).status_code == 201


# -- key management: `clob keys` -------------------------------------------------------------


@pytest.fixture
def clob(
    exchange: Exchange, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., tuple[int, str, str]]:  # fmt: skip
    """Run the `clob` command line in process against the test exchange's servers."""
    monkeypatch.setenv("DATABASE_URL", exchange.database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("CLOB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLOB_CONFIG", str(tmp_path / "none.toml"))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_cli_creates_a_key_with_scopes_and_revokes_it(
    exchange: Exchange, clob: Callable[..., tuple[int, str, str]]
) -> None:
    code, out, _ = clob("keys", "create", "--label", "cli", "--scopes", "read")
    assert code == 0
    fields = dict(line.split(":", 1) for line in out.splitlines())
    account_id, api_key = int(fields["account_id"]), fields["api_key"].strip()
    key_id = api_key.split(".", 1)[0]
    with _client(exchange, api_key) as http:
        assert http.get("/api/v1/balances").json()["account_id"] == account_id
        order = {"market": "NOPE-USDC", "side": "buy", "price": "1", "qty": "1"}
        assert http.post("/api/v1/orders", json=order).status_code == 403
        code, out, err = clob("keys", "revoke", key_id)
        assert code == 0 and out.startswith(f"revoked {key_id} of account {account_id} at ")
        assert "30 s" in err
        code, out, _ = clob("keys", "list", "--account", str(account_id))
        [listed] = json.loads(out)
        assert listed["scopes"] == ["read"] and listed["revoked_at"] is not None
        # The replica trusts the cached check for up to auth_cache_ttl_s: an unused key
        # (nothing cached) is refused at once.
    fresh = clob("keys", "create", "--account", str(account_id))[1].split("api_key:")[1].strip()
    clob("keys", "revoke", fresh.split(".", 1)[0])
    with _client(exchange, fresh) as http:
        assert http.get("/api/v1/balances").status_code == 401


def test_cli_refuses_an_unknown_scope_and_an_unknown_key(
    clob: Callable[..., tuple[int, str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        clob("keys", "create", "--scopes", "read,admin")
    assert exited.value.code == 2
    assert "unknown scope 'admin' (choose from read, trade, withdraw)" in capsys.readouterr().err
    code, _, err = clob("keys", "revoke", "0123456789abcdef")
    assert code == 1 and err.strip() == "clob: error: no key '0123456789abcdef'"
