"""
Who is calling: API keys, owner scoping and the rate limit, on every route.

With auth on, every request to a document route needs ``Authorization:
Bearer <token>`` of an active key, and the key sees only the documents it
submitted. With auth off (only by default when bound to a loopback
address), every caller sees every document. Either way each caller (key, or
client address) gets the configured request rate.
"""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response, routing
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data

from docmill.api.problems import Problem
from docmill.api.ratelimit import SCOPE_KEY, Verdict
from docmill.settings import Settings

logger = logging.getLogger(__name__)

# Probes and the upload page answer without a key (/metrics too, when
# DOCMILL_METRICS_PUBLIC is set; it admits callers itself).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key: dm_<id>_<secret>",
}


@dataclass(frozen=True)
class Principal:
    """The caller: an API key's id, or None when auth is off."""

    key_id: str | None
    client: str


def announce(settings: Settings) -> None:
    """Say loudly at start-up when the API is open to anyone who reaches it."""
    if settings.auth_required:
        return
    logger.warning(
        "API keys are OFF: anyone who can reach %s:%d, including through a "
        "reverse proxy on this host, can read and submit every document. Set "
        "DOCMILL_AUTH=on (or bind to a non-loopback address) and create keys "
        "with `docmill keys create`.",
        settings.host,
        settings.port,
        extra={"action": "auth_disabled"},
    )


async def admit(request: Request) -> list[tuple[bytes, bytes]]:
    """
    Authenticate the caller and count the request against its rate limit.

    Records the caller as ``request.state.principal`` and returns the rate
    limit's headers for the answer; the middleware puts them on an error
    answer the endpoint raises (``ratelimit.SCOPE_KEY``).

    A request without a valid key counts against its client address, so
    guessing keys is throttled too.

    Raises:
        Problem: 401 without a valid key (when auth is on), 429 past the limit.
    """
    scope = request.scope
    client = scope["client"][0] if scope.get("client") else "unknown"
    if scope["path"] in OPEN_PATHS:
        return []
    services = scope["app"].state.services
    key_id = None
    if services.settings.auth_required:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            counted = await _count(services, f"ip:{client}")
            raise Problem(
                401,
                "unauthorized",
                "send an API key as `Authorization: Bearer <key>`",
                headers=counted.headers | {"WWW-Authenticate": "Bearer"},
            )
        key_id = await services.keys.verify(token)
        if key_id is None:
            # Failed guesses spend the address's budget, so guessing keys
            # is as slow as the rate limit makes it.
            counted = await _count(services, f"ip:{client}")
            raise Problem(
                401,
                "invalid-api-key",
                "the API key is unknown or revoked",
                headers=counted.headers
                | {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
    # Into the dict behind ``request.state`` (Starlette keeps it in the
    # scope): the State wrapper's attribute hooks, once to set and once to
    # read (``owner``), cost a status read more than counting its request.
    scope.setdefault("state", {})["principal"] = Principal(key_id, client)

    identity = f"key:{key_id}" if key_id else f"ip:{client}"
    headers = (await _count(services, identity)).raw_headers()
    granted = scope.get(SCOPE_KEY)
    if granted is not None:
        granted[:] = headers
    return headers


async def _count(services: Any, identity: str) -> Verdict:
    """Count a request against ``identity``'s limit; past it, answer 429."""
    verdict: Verdict = await services.limiter.hit(identity)
    if not verdict.allowed:
        raise Problem(
            429,
            "rate-limited",
            "too many requests; retry after the time in Retry-After",
            headers=verdict.headers | {"Retry-After": str(verdict.retry_after)},
        )
    return verdict


class GuardedRoute(APIRoute):
    """
    A route that admits (``admit``) each request before its endpoint runs.

    This was a FastAPI dependency on the routers. Resolving it, with the
    request and the sub-response it asked for, was the largest cost of a
    status read after the database; here it is one call, and its headers go
    straight onto the answer. The bearer scheme it implies is written into
    the OpenAPI document by ``docmill.api.openapi``.

    An endpoint that takes only the request and answers a ``Response``
    (submit, status) is called directly: FastAPI's handler around it
    (endpoint context, dependency solving with its exit stacks, the
    response checks) has nothing to do for such an endpoint and cost a
    status read about 20 µs, as much as its database read. When FastAPI's
    telemetry is on for the request, the handler runs as before, so its
    spans are unchanged.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        direct = _request_only_endpoint(self)

        async def guarded(request: Request) -> Response:
            headers = await admit(request)
            if direct is not None and get_telemetry_data() is None:
                response = await direct(request)
            else:
                response = await handler(request)
            response.raw_headers.extend(headers)
            return response

        return guarded


def _request_only_endpoint(
    route: APIRoute,
) -> Callable[[Request], Awaitable[Response]] | None:
    """``route``'s endpoint if its one parameter is the request and it
    answers a ``Response``, so FastAPI would only call it and pass it on."""
    # An included router's route is built in an include context that may
    # add dependencies; FastAPI's own handler reads the context's dependant.
    contexts = getattr(routing, "_effective_route_context_var", None)
    if contexts is None:
        return None  # FastAPI changed how it includes routes: stay on its path
    context = contexts.get()
    dependant = route.dependant
    if context is not None and getattr(context, "original_route", None) is route:
        dependant = context.dependant
    endpoint = route.endpoint
    others = (
        dependant.path_params,
        dependant.query_params,
        dependant.header_params,
        dependant.cookie_params,
        dependant.body_params,
        dependant.dependencies,
    )
    special = (
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if (
        dependant.request_param_name is None
        or any(others)
        or any(name is not None for name in special)
        or not inspect.iscoroutinefunction(endpoint)
        or len(inspect.signature(endpoint).parameters) != 1
    ):
        return None
    try:
        answer = typing.get_type_hints(endpoint).get("return")
    except (NameError, TypeError):
        return None  # an annotation that does not resolve: let FastAPI judge
    if not (isinstance(answer, type) and issubclass(answer, Response)):
        return None
    return typing.cast(Callable[[Request], Awaitable[Response]], endpoint)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if not scheme or not token or scheme.lower() != "bearer":
        return None
    return token


def owner(request: Request) -> str | None:
    """The key whose documents this request may see; None sees all."""
    state = request.scope.get("state")
    principal: Principal | None = state.get("principal") if state else None
    return principal.key_id if principal is not None else None
