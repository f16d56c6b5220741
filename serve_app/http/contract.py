"""The HTTP contract every REST route keeps, enforced and documented in one place.

* Unknown query parameters are refused like unknown body fields: 422 `invalid_request`,
  each one named in `details.errors` (`query.<name>`, type `extra_forbidden`).
* A route that reads a body reads JSON only: another media type answers 415
  `unsupported_media_type` (FastAPI would read it as bytes and call it "not a valid
  dictionary"). Like FastAPI, a request without `Content-Type` is read as JSON.
* The OpenAPI document lists every status a route can answer, with the error shape:
  `document_errors` adds what follows from the route's parts (an API key: 401, 403, 429;
  the admin token: 403; a body: 400, 415; any parameter: 422), each route declares the
  rest (404, 409, 503) itself.

`strict_request` runs as a dependency of every REST route and `document_errors` documents
them (`include_routes`); the lean
order route (`serve_app.lean`) hands any request with a query string or another media type
to FastAPI, so both answer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.message import Message
from typing import Any

from fastapi import APIRouter, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from serve_app.errors import ApiError
from serve_app.gateway.models import ErrorBody
from serve_app.http.deps import get_principal, require_admin

# Declared query parameter names by route (by id: routes live as long as the app and are
# not hashable).
_query_names: dict[int, frozenset[str]] = {}


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _declared_query(route: APIRoute) -> frozenset[str]:
    names = _query_names.get(id(route))
    if names is None:
        names = frozenset(
            p.alias for d in _dependants(route.dependant) for p in d.query_params
        )  # fmt: skip
        _query_names[id(route)] = names
    return names


def is_json(content_type: str | None) -> bool:
    """Return whether FastAPI reads a body of this media type as JSON (None: yes)."""
    if not content_type:
        return True
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def strict_request(request: Request) -> None:
    """Refuse undeclared query parameters (422) and a body that is not JSON (415).

    Raises:
        ApiError: 422 `invalid_request` or 415 `unsupported_media_type`.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _declared_query(route)
    unknown = [name for name in dict.fromkeys(request.query_params) if name not in declared]
    if unknown:
        errors = [{"field": f"query.{name}", "problem": "unknown query parameter",
                   "type": "extra_forbidden"} for name in unknown]  # fmt: skip
        raise ApiError(422, "invalid_request", "the request has invalid fields", {"errors": errors})
    content_type = request.headers.get("content-type")
    if route.body_field is not None and not is_json(content_type):
        raise ApiError(
            415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)",
            {"content_type": content_type},
        )  # fmt: skip


_TEXT = {
    400: "The body is not valid JSON (`malformed_json`)",
    401: "Missing or invalid API key (`unauthorized`)",
    403: "Valid key but not allowed: a missing scope, a suspended account (`forbidden`)",
    415: "The body is not JSON (`unsupported_media_type`)",
    422: "Invalid or refused (`invalid_request`, unknown query parameters, and the "
    "validation and business codes): nothing changed",
    429: "Over the key's rate limit (`rate_limited`)",
}


def _calls(route: APIRoute) -> set[Callable[..., Any]]:
    return {d.call for d in _dependants(route.dependant) if d.call is not None}


def _statuses(route: APIRoute) -> list[int]:
    calls = _calls(route)
    statuses = [422]  # every route refuses unknown query parameters
    if get_principal in calls:
        statuses += [401, 403, 429]
    if require_admin in calls:
        statuses += [403]
    if route.body_field is not None:
        statuses += [400, 415]
    return statuses


def document_errors(router: APIRouter) -> None:
    """Give each route of a router, before it is included, the error statuses it can
    answer in its OpenAPI responses, with the error shape (`ErrorBody`); a route's own
    descriptions are kept. (Before inclusion: the included copy builds its response
    schemas from these.)"""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        # A copy: routes may share one `responses` dict (and its entries).
        responses = {status: dict(entry) for status, entry in route.responses.items()}
        route.responses = responses
        for code in _statuses(route):
            responses.setdefault(code, {"description": _TEXT[code]})
        for status, response in responses.items():
            if int(status) >= 400:
                response.setdefault("model", ErrorBody)
