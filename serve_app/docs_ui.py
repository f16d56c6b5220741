"""The interactive API docs (`/docs`, Swagger UI; `/redoc`, ReDoc), served offline.

FastAPI's own pages load their JavaScript and CSS from a public CDN, so they are blank on
a machine without internet access. The `fastapi-offline` package ships the same assets
(Swagger UI 5, ReDoc 2, a favicon); they are served from it under `ASSETS_URL`, and the
two pages are FastAPI's HTML pointed at them. Only `fastapi-offline`'s files are used, not
its `FastAPIOffline` factory, because the gateway's app is its own `FastAPI` subclass.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs-assets"
OAUTH2_REDIRECT_URL = f"{DOCS_URL}/oauth2-redirect"


def assets_dir() -> Path:
    """Return the directory of the packaged Swagger UI and ReDoc assets."""
    return Path(str(resources.files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Serve `/docs` and `/redoc` with assets from `ASSETS_URL` (build `app` with
    `docs_url=None, redoc_url=None`, so that FastAPI's CDN pages are off)."""
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    title, openapi_url = app.title, app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS_URL}/favicon.png"

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            # No spec validation badge: it would send the spec to swagger.io's validator.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,  # fonts from Google's CDN: the page falls back to local ones
        )
