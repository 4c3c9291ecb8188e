"""An extraction child whose owner died before it could ask to die with it."""

from __future__ import annotations

import os
from typing import Any

import pytest

from docmill.extract.child import _die_with


@pytest.mark.parametrize(
    ("owner", "code"),
    [
        pytest.param(lambda: os.getpid(), 0, id="owner-alive"),
        pytest.param(lambda: 999_999_999, 1, id="owner-gone"),
    ],
)
def test_child_whose_owner_died_before_it_asked_exits(owner: Any, code: int) -> None:
    """The kernel's death signal cannot cover a parent gone before it was asked."""
    expected_owner = owner()
    pid = os.fork()
    if pid == 0:
        try:
            _die_with(expected_owner)
        finally:
            os._exit(0)
    _pid, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == code
