"""Dependency direction: serve_app -> actors -> actors.engine, and the engine is pure."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The engine may use the standard library's pure parts and sortedcontainers, nothing else.
ENGINE_FORBIDDEN_STDLIB = {
    "asyncio", "time", "datetime", "random", "os", "socket", "subprocess", "threading",
    "multiprocessing", "secrets", "uuid", "io", "pathlib", "shutil", "tempfile", "sqlite3",
}  # fmt: skip
ENGINE_ALLOWED_THIRD_PARTY = {"sortedcontainers"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _files("actors/engine"), ids=lambda p: p.name)
def test_engine_imports_only_pure_modules(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        if name.startswith("actors.engine") or top == "__future__":
            continue
        assert top not in ENGINE_FORBIDDEN_STDLIB, f"{path.name} imports {name}: not pure"
        assert top in sys.stdlib_module_names or top in ENGINE_ALLOWED_THIRD_PARTY, (
            f"{path.name} imports {name}: the engine may not depend on it"
        )


@pytest.mark.parametrize("path", _files("actors"), ids=lambda p: str(p.relative_to(ROOT)))
def test_actors_never_import_serve_app(path: Path) -> None:
    assert not any(n.split(".")[0] == "serve_app" for n in _imports(path)), path


# The market pipeline behind its ports, and everything it builds on, are pure: no I/O
# library, no Ray, no direct channels, no settings. The adapters (`journal.py`,
# `ledger_client.py`, `actor.py`) and the ledger shard's shell are the only ways out.
PURE = [
    "actors/accounts.py", "actors/contracts.py", "actors/journal_codec.py", "actors/jsonx.py",
    "actors/ledger/core.py", "actors/ledger/fees.py", "actors/ledger/holds.py",
    "actors/ledger/rules.py", "actors/ledger/state.py", "actors/market/consumers.py",
    "actors/market/core.py", "actors/market/intake.py", "actors/market/passes.py",
    "actors/market/ports.py", "actors/market/projection.py", "actors/market/recovery.py",
    "actors/market/reservations.py", "actors/market/routing.py", "actors/market/rows.py",
    "actors/market/seam.py", "actors/market/state.py", "actors/stream/messages.py",
    "actors/stream/orders.py", "actors/stream/ports.py", "actors/stream/publisher.py",
    "actors/custody/policy.py", "actors/custody/withdrawals.py",
    "actors/custody/detect.py", "actors/custody/listener.py", "actors/custody/monitor.py",
    "actors/custody/ports.py", "actors/custody/references.py", "actors/custody/reserves.py",
    "actors/custody/sender.py", "actors/settlement/states.py", "actors/settlement/trades.py",
]  # fmt: skip
IMPURE_TOP = {"asyncpg", "ray", "redis", "fastapi", "starlette", "uvicorn", "solana", "httpx",
              "solders", "spl", "anchorpy"}  # fmt: skip
IMPURE_PROJECT = ("actors.direct", "actors.infra", "actors.market.journal",
                  "actors.market.ledger_client", "actors.market.actor", "actors.ledger.shard",
                  "actors.ledger.store", "actors.controller", "actors.bootstrap",
                  "actors.stream.sink")  # fmt: skip


def _module_file(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _reachable(path: Path) -> dict[str, Path]:
    """Return every project module `path` imports, directly or through others."""
    seen: dict[str, Path] = {}
    todo = [path]
    while todo:
        for name in _imports(todo.pop()):
            if name.split(".")[0] != "actors" or name in seen:
                continue
            found = _module_file(name)
            if found is not None:
                seen[name] = found
                todo.append(found)
    return seen


@pytest.mark.parametrize("pure", PURE)
def test_the_pipeline_and_its_rules_reach_no_io_ray_or_adapter(pure: str) -> None:
    reached = _reachable(ROOT / pure)
    for name, path in {pure: ROOT / pure, **reached}.items():
        third = {n.split(".")[0] for n in _imports(path)} & IMPURE_TOP
        assert not third, f"{pure} reaches {name}, which imports {third}"
        assert not name.startswith(IMPURE_PROJECT), f"{pure} reaches the adapter {name}"


# The program's client side builds instructions and decodes accounts with solders and
# anchorpy (data libraries) and does no I/O: sending is the chain wrapper's work. The
# settle transaction is built and measured the same way (settlement's planner calls it).
CHAIN_DATA = ["actors/chain/program.py", "actors/chain/program_idl.py", "actors/settlement/tx.py"]
CHAIN_DATA_LIBS = {"solders", "spl", "anchorpy"}


@pytest.mark.parametrize("pure", CHAIN_DATA)
def test_the_program_client_does_no_io(pure: str) -> None:
    reached = _reachable(ROOT / pure)
    for name, path in {pure: ROOT / pure, **reached}.items():
        third = {n.split(".")[0] for n in _imports(path)} & (IMPURE_TOP - CHAIN_DATA_LIBS)
        assert not third, f"{pure} reaches {name}, which imports {third}"
        assert not name.startswith(IMPURE_PROJECT), f"{pure} reaches the adapter {name}"


# Settlement planning builds on the program's client side (its limits) and does no I/O.
SETTLEMENT_PURE = ["actors/settlement/planner.py", "actors/settlement/trades.py"]


@pytest.mark.parametrize("pure", SETTLEMENT_PURE)
def test_settlement_planning_does_no_io(pure: str) -> None:
    test_the_program_client_does_no_io(pure)


# Settlement sits beside custody: it reads the chain layer, the account id, the ledger's
# rules and the stream's messages, and nothing else of the exchange (serve_app reads it).
# Its shell and adapters (the actor, the chain and PostgreSQL adapters) also reach the
# custody actors' setup and configuration (vault registration, the keys and chain they
# share), the ledger's connection helper and the stream's Redis sink.
SETTLEMENT_MAY_IMPORT = (
    "actors.settlement", "actors.chain", "actors.accounts", "actors.ledger.rules",
    "actors.stream.messages",
)  # fmt: skip
SETTLEMENT_SHELL = {"actor.py", "chain.py", "pg.py"}
SETTLEMENT_SHELL_MAY_IMPORT = (
    "actors.custody.setup", "actors.custody.actor", "actors.ledger.store", "actors.stream.sink",
)  # fmt: skip


@pytest.mark.parametrize("path", _files("actors/settlement"), ids=lambda p: p.name)
def test_settlement_imports_only_what_the_design_allows(path: Path) -> None:
    allowed = SETTLEMENT_MAY_IMPORT
    if path.name in SETTLEMENT_SHELL:
        allowed += SETTLEMENT_SHELL_MAY_IMPORT
    project = {n for n in _imports(path) if n.split(".")[0] in ("actors", "serve_app")}
    other = [n for n in project if not any(
        n == a or n.startswith(f"{a}.") for a in allowed
    )]  # fmt: skip
    assert not other, f"{path.name} imports {other}: outside settlement's layer"


@pytest.mark.parametrize("path", _files("actors/ledger"), ids=lambda p: p.name)
def test_the_ledger_never_imports_the_market(path: Path) -> None:
    market = [n for n in _imports(path) if n == "actors.market" or n.startswith("actors.market.")]
    assert not market, (path, market)


@pytest.mark.parametrize("path", _files("actors/ledger"), ids=lambda p: p.name)
def test_the_ledger_reaches_the_market_not_even_through_the_stream(path: Path) -> None:
    # The shards publish balances with `actors.stream.balances` and `sink`, which must
    # therefore stay clear of the market package (the publisher of markets is not for them).
    reached = [n for n in _reachable(path) if n.split(".")[:2] == ["actors", "market"]]
    assert not reached, (path, reached)


def test_the_engine_imports_nothing_of_the_project_but_itself() -> None:
    for path in _files("actors/engine"):
        project = {n for n in _imports(path) if n.split(".")[0] in ("actors", "serve_app")}
        assert all(n.startswith("actors.engine") for n in project), (path, project)


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_imports(path: Path, modules: set[str]) -> set[str]:
    """Return the project modules a file imports (type-checking imports included: a cycle
    of types is still a knot to untie), each resolved to the module it names."""
    out = set()
    for imported in _imports(path) | _from_names(path):
        name = imported
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name:
            out.add(name)
    return out


def _from_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        for alias in node.names
    }


_PROJECT = {_module(p): p for pkg in ("actors", "serve_app") for p in _files(pkg)}
_GRAPH = {m: _project_imports(p, set(_PROJECT)) - {m} for m, p in _PROJECT.items()}

# What each layer of the gateway may not import (serve_app -> actors, never back; below the
# app: the routes, then the HTTP plumbing, then the gateway's services).
# The WebSocket API (`serve_app.ws`) sits beside the routes: on the gateway's services only.
_GATEWAY_LAYERS = {
    "serve_app.gateway": (
        "serve_app.app", "serve_app.lean", "serve_app.routes", "serve_app.http", "serve_app.ws",
    ),
    "serve_app.http": ("serve_app.app", "serve_app.lean", "serve_app.routes", "serve_app.ws"),
    "serve_app.routes": ("serve_app.app", "serve_app.lean", "serve_app.ws"),
    "serve_app.ws": ("serve_app.app", "serve_app.lean", "serve_app.routes", "serve_app.http"),
}  # fmt: skip


@pytest.mark.parametrize("layer", sorted(_GATEWAY_LAYERS))
def test_gateway_layers_import_only_downwards(layer: str) -> None:
    for module, imports in _GRAPH.items():
        if module == layer or module.startswith(f"{layer}."):
            above = [i for i in imports if i.startswith(_GATEWAY_LAYERS[layer])]
            assert not above, f"{module} imports {above}: a layer above it"


def test_routes_hold_routers_only() -> None:
    for path in _files("serve_app/routes"):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        names = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                 if isinstance(t, ast.Name)}  # fmt: skip
        assert "router" in names, f"{path.name} is not a router: services go to serve_app.gateway"


def test_serve_app_has_no_import_cycles() -> None:
    seen: dict[str, int] = {}  # 1 on the path being walked, 2 done

    def walk(module: str, path: list[str]) -> None:
        seen[module] = 1
        for child in sorted(_GRAPH[module]):
            if not child.startswith("serve_app"):
                continue
            assert seen.get(child) != 1, f"import cycle: {' -> '.join([*path, child])}"
            if child not in seen:
                walk(child, [*path, child])
        seen[module] = 2

    for module in sorted(m for m in _GRAPH if m.startswith("serve_app")):
        if module not in seen:
            walk(module, [module])


# The chain layer: the product reaches Solana only through JSON-RPC, with `solana`'s client
# behind one wrapper; the embedded chain is a validator stand-in run as its own process.
CHAIN_CLIENT = "actors/chain/client.py"
CHAIN_SERVER = "actors/chain/rpc_server"


@pytest.mark.parametrize(
    "path", [p for pkg in ("actors", "serve_app") for p in _files(pkg)],
    ids=lambda p: str(p.relative_to(ROOT)),
)  # fmt: skip
def test_only_the_chain_wrapper_uses_the_rpc_client(path: Path) -> None:
    if path == ROOT / CHAIN_CLIENT:
        return
    rpc = [n for n in _imports(path) if n == "solana.rpc" or n.startswith("solana.rpc.")]
    assert not rpc, f"{path.name} imports {rpc}: call the chain through {CHAIN_CLIENT}"


@pytest.mark.parametrize("path", _files(CHAIN_SERVER), ids=lambda p: p.name)
def test_the_embedded_chain_needs_neither_the_client_nor_the_exchange(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        assert top != "solana", f"{path.name} imports {name}: the server stands in for a validator"
        if top in ("actors", "serve_app"):
            assert name.startswith(("actors.chain.rpc_server", "actors.chain.keys")), (
                f"{path.name} imports {name}: the server is independent of the exchange"
            )


def test_nothing_imports_the_embedded_chain_it_runs_as_a_process() -> None:
    for module, imports in _GRAPH.items():
        if module.startswith("actors.chain.rpc_server"):
            continue
        server = [i for i in imports if i.startswith("actors.chain.rpc_server")]
        assert not server, f"{module} imports {server}: start it with actors.chain.embedded"


# The custody actors, their chain adapters and the reconciliation (`CUSTODY_CHAIN`) reach the
# chain; the rest of the package (records, policy, the passes and their ports) does not.
CUSTODY_CHAIN = {"actor.py", "reconcile.py", "rpc.py", "setup.py"}


@pytest.mark.parametrize(
    "path", [p for p in _files("actors/custody") if p.name not in CUSTODY_CHAIN],
    ids=lambda p: p.name,
)  # fmt: skip
def test_custody_records_reach_neither_the_market_nor_the_chain(path: Path) -> None:
    # The records and the policy are the ledger's side of custody: the chain (solana,
    # actors.chain) belongs to the custody actors that call them.
    names = {n for n in _imports(path)}
    assert not {n.split(".")[0] for n in names} & {"solana", "solders", "anchorpy"}, path
    assert not [n for n in names if n.startswith(("actors.market", "actors.chain"))], path
