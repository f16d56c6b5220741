"""One error shape for every API failure: `{"code": ..., "message": ..., "details": ...}`.

`code` is a stable machine-readable string; `message` is for people; `details` carries
structured context (e.g. the offending fields). Only `serve_app/` maps business reject codes
to HTTP statuses; `serve_app.http.handlers` turns every error FastAPI meets into this shape.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raise to answer with the error shape and a 4xx/5xx status."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the JSON body of an error."""
    return {"code": code, "message": message, "details": details or {}}
