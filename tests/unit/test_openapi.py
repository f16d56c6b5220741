"""The committed `docs/openapi.json` is the document the app serves (regenerate on change)."""

from __future__ import annotations

from pathlib import Path

from serve_app.openapi import build_openapi, render_openapi

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    assert COMMITTED.read_text() == render_openapi(), (
        "docs/openapi.json is out of date: run "
        "`.venv/bin/python -m serve_app.openapi > docs/openapi.json`"
    )


def test_every_api_route_documents_its_response_model() -> None:
    document = build_openapi()
    for path, methods in document["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in methods.items():
            content = operation["responses"].get("200", operation["responses"].get("201", {}))
            assert "content" in content, f"{method.upper()} {path} has no response schema"


def test_authenticated_routes_declare_the_api_key_scheme() -> None:
    document = build_openapi()
    orders = document["paths"]["/api/v1/orders"]["post"]
    assert {"ApiKey": []} in orders["security"]
    admin = document["paths"]["/api/v1/admin/markets"]["post"]
    assert {"AdminToken": []} in admin["security"]
