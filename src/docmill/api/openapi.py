"""
The OpenAPI document as the contract: every error as problem details.

FastAPI describes only what the route declarations say. This fills in the
rest: the JSON request bodies that routes read by hand, and for every
operation the error answers it can give, all ``application/problem+json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from docmill.api.auth import BEARER_SCHEME, OPEN_PATHS
from docmill.api.schemas import BatchSubmission, TextSubmission
from docmill.parsing.rules import ParserSpec

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; branch on `type`.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:docmill:problem:not-found"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
_PROBLEM_CONTENT = {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
}
# Answers that are not problems: /readyz says "not ready" with the same
# Readiness body as "ready", which probes and dashboards read.
_NOT_PROBLEMS = {("/readyz", "503")}
# Reading a multipart or JSON submission has one deadline,
# DOCMILL_UPLOAD_TIMEOUT_SECONDS (intake.read_multipart, intake.read_body).
_UPLOAD_TIMEOUT = {"/documents", "/documents/batch"}
# The answers that name what they created or queued.
_LOCATIONS = {
    ("/documents", "post"): "The document: poll it for the result",
    ("/documents/{document_id}/reprocess", "post"): "The document",
    ("/parsers", "post"): "The parser",
}
_RETRY_AFTER = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer"},
}
_RATE_LIMIT = {
    "RateLimit-Limit": "Requests allowed in the window (when rate limits are on)",
    "RateLimit-Remaining": "Requests left in the window",
    "RateLimit-Reset": "Seconds until the window resets",
}
_GUARDED = {
    "401": "No or an invalid API key (when auth is on)",
    "422": "Invalid parameters",
    "429": "Rate limited, or the queue is full; see Retry-After",
    "503": "Database or storage unavailable; see Retry-After",
}


def install(
    app: FastAPI,
    guarded: Sequence[APIRouter],
    open_paths: frozenset[str] = OPEN_PATHS,
) -> None:
    """
    Complete the app's OpenAPI document.

    Args:
        app: the application.
        guarded: the routers whose routes need an API key when auth is on.
        open_paths: paths on those routers that ``auth.admit`` lets through
            without a key or a rate limit.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        from docmill.api.parsers import DryRun

        for model in (TextSubmission, BatchSubmission, ParserSpec, DryRun):
            described = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            # The models it refers to become components of their own, where
            # the template points.
            components.update(described.pop("$defs", {}))
            components[model.__name__] = described
        components["Problem"] = PROBLEM
        _bearer(schema, guarded, open_paths)
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                _problems(path, operation, open_paths)
                _headers(path, method, operation, open_paths)
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problems(path: str, operation: dict[str, Any], open_paths: frozenset[str]) -> None:
    responses = operation.setdefault("responses", {})
    # The request middleware refuses a NUL anywhere in the URL, on any path.
    extra: dict[str, str] = {"400": "NUL characters in the URL"}
    if path not in open_paths:
        extra |= _GUARDED
    if "{" in path:
        extra["404"] = "No such document or resource"
    if path in _UPLOAD_TIMEOUT and "requestBody" in operation:
        extra["408"] = "The request body did not arrive in time"
    if "requestBody" in operation:
        extra |= {
            "413": "Too large",
            "415": "Unsupported media type",
            "507": "No room to store the document; see Retry-After",
        }
    for code, description in extra.items():
        responses.setdefault(code, {"description": description})
    for code, response in responses.items():
        if code[0] in "45" and (path, code) not in _NOT_PROBLEMS:
            response["content"] = _PROBLEM_CONTENT


def _headers(
    path: str, method: str, operation: dict[str, Any], open_paths: frozenset[str]
) -> None:
    """The response headers clients act on: Location, Retry-After, RateLimit-*."""
    for code, response in operation.get("responses", {}).items():
        headers: dict[str, Any] = {}
        location = _LOCATIONS.get((path, method))
        if location and code in ("201", "202"):
            headers["Location"] = {
                "description": location,
                "schema": {"type": "string"},
            }
        if code in ("429", "503", "507") and (path, code) not in _NOT_PROBLEMS:
            headers["Retry-After"] = _RETRY_AFTER
        # admit() puts them on the endpoint's answer and on its own 401 and
        # 429, and the middleware on an error the endpoint raises. Only a
        # request refused before it is counted goes without (a NUL in the
        # URL, a submission's unknown ?parser=).
        if path not in open_paths:
            for name, description in _RATE_LIMIT.items():
                headers[name] = {
                    "description": description,
                    "schema": {"type": "integer"},
                }
        if headers:
            response.setdefault("headers", {}).update(headers)


def _bearer(
    schema: dict[str, Any], guarded: Sequence[APIRouter], open_paths: frozenset[str]
) -> None:
    """Name the bearer scheme on every operation that ``auth.admit`` guards."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["HTTPBearer"] = BEARER_SCHEME
    for router in guarded:
        for route in router.routes:
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            if route.path_format in open_paths:
                continue
            operations = schema["paths"].get(route.path_format, {})
            for method in route.methods or ():
                if method.lower() in operations:
                    operations[method.lower()]["security"] = [{"HTTPBearer": []}]
