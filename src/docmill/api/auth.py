"""
Who is calling: API keys, owner scoping and the rate limit, as one dependency.

With auth on, every request to a document route needs ``Authorization:
Bearer <token>`` of an active key, and the key sees only the documents it
submitted. With auth off (only by default when bound to a loopback
address), every caller sees every document. Either way each caller (key, or
client address) gets the configured request rate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import Request, Response
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from docmill.api.problems import Problem
from docmill.settings import Settings

logger = logging.getLogger(__name__)

# Probes and the upload page answer without a key.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/"})


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
        "API keys are OFF: anyone who can reach %s:%d can read and submit every "
        "document. Set DOCMILL_AUTH=on (or bind to a non-loopback address) and "
        "create keys with `docmill keys create`.",
        settings.host,
        settings.port,
        extra={"action": "auth_disabled"},
    )


class Guard(SecurityBase):
    """
    The dependency every guarded route runs: authenticate, then rate-limit.

    Being a security scheme itself puts the bearer scheme in the OpenAPI
    document just as ``HTTPBearer`` would, while every guarded request
    (``/healthz`` included) pays for one dependency that reads the header
    itself instead of two that FastAPI resolves in turn, which profiles
    showed as the largest per-request cost outside the server and routing.
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel(description="An API key: dm_<id>_<secret>")
        self.scheme_name = "HTTPBearer"

    async def __call__(self, request: Request, response: Response) -> Principal:
        scope = request.scope
        client = scope["client"][0] if scope.get("client") else "unknown"
        if scope["path"] in OPEN_PATHS:
            return Principal(None, client)
        services = request.app.state.services
        key_id = None
        if services.settings.auth_required:
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                raise Problem(
                    401,
                    "unauthorized",
                    "send an API key as `Authorization: Bearer <key>`",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            key_id = await services.keys.verify(token)
            if key_id is None:
                raise Problem(
                    401,
                    "invalid-api-key",
                    "the API key is unknown or revoked",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
        principal = Principal(key_id, client)
        request.state.principal = principal

        identity = f"key:{key_id}" if key_id else f"ip:{client}"
        verdict = await services.limiter.hit(identity)
        if not verdict.allowed:
            raise Problem(
                429,
                "rate-limited",
                "too many requests; retry after the time in Retry-After",
                headers=verdict.headers | {"Retry-After": str(verdict.retry_after)},
            )
        response.headers.update(verdict.headers)
        return principal


guard = Guard()


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
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal.key_id if principal is not None else None
