"""Build the OpenAPI document of the gateway without Ray (for `docs/openapi.json`).

`python -m serve_app.openapi > docs/openapi.json` regenerates the committed file;
`tests/unit/test_openapi.py` fails when it is out of date.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def build_openapi() -> dict[str, Any]:
    """Return the OpenAPI document of the REST API (the same one `/openapi.json` serves)."""
    from serve_app.app import api

    document: dict[str, Any] = api.openapi()
    return document


def render_openapi() -> str:
    """Return the OpenAPI document as stable, indented JSON with a final newline."""
    return json.dumps(build_openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_openapi())
