"""The API docs pages work offline: every asset they load is served by the exchange."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.conftest import Exchange

# Every URL a page loads or links: src/href attributes, ReDoc's spec-url, Swagger's `url:`.
_URLS = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|\burl:\s*'([^']+)'""")


def _referenced(html: str) -> list[str]:
    return [a or b for a, b in _URLS.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_loads_only_local_assets_that_answer(exchange: Exchange, page: str) -> None:
    with httpx.Client(base_url=exchange.url, timeout=30) as http:
        answer = http.get(page)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        urls = _referenced(answer.text)
        assert "/openapi.json" in urls
        assert len(urls) >= 3, urls  # the spec, the script, the favicon (and Swagger's CSS)
        assert "://" not in answer.text, "a page must not load anything from another host"
        for url in urls:
            assert url.startswith("/"), url
            asset = http.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 0, url


def test_swagger_ui_script_is_the_packaged_bundle(exchange: Exchange) -> None:
    script = httpx.get(f"{exchange.url}/docs-assets/swagger-ui-bundle.js", timeout=30)
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.text
    missing = httpx.get(f"{exchange.url}/docs-assets/no-such-file.js", timeout=30)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
