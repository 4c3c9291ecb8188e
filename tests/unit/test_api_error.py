"""What the Python client (and so the CLI) says about an API error."""

from __future__ import annotations

from docmill.client import ApiError


def test_a_validation_error_names_each_field_and_its_reason() -> None:
    """`docmill submit --title <2000 characters>` said only "not valid"."""
    problem = {
        "type": "urn:docmill:problem:validation",
        "detail": "the submission is not valid",
        "errors": [
            {
                "loc": ["title"],
                "msg": "String should have at most 1000 characters",
                "type": "string_too_long",
            },
            {"loc": [], "msg": "give a file", "type": "missing"},
        ],
    }

    error = ApiError(422, problem)

    assert str(error) == (
        "HTTP 422: the submission is not valid (title: String should have at "
        "most 1000 characters; (body): give a file)"
    )


def test_a_problem_without_errors_is_its_detail() -> None:
    assert str(ApiError(404, {"detail": "no document 'x'"})) == (
        "HTTP 404: no document 'x'"
    )
