"""Worker ids say where their process runs, so only provably dead ones are recovered."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from docmill.queue.ids import default_worker_id, holder_dead, this_place

HOST = socket.gethostname()


def _fake_proc(root: Path, namespace: str = "pid:[4026531836]") -> Path:
    """A /proc holding this process (started at tick 500) and pid 42 (at 700)."""
    (root / "sys/kernel/random").mkdir(parents=True)
    (root / "sys/kernel/random/boot_id").write_text("boot-1\n")
    for pid, start in ((os.getpid(), 500), (42, 700)):
        (root / str(pid) / "ns").mkdir(parents=True)
        fields = ["S", *["0"] * 18, str(start), "0"]
        (root / str(pid) / "stat").write_text(f"{pid} (a b) c) {' '.join(fields)}\n")
    (root / "self").symlink_to(str(os.getpid()))
    (root / str(os.getpid()) / "ns/pid").symlink_to(namespace)
    return root


def test_worker_id_names_host_pid_place_and_start(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path)

    worker_id = default_worker_id(proc)

    assert worker_id == f"{HOST}:{os.getpid()}:{this_place(proc)}.500"


def test_worker_id_without_proc_is_host_and_pid(tmp_path: Path) -> None:
    assert default_worker_id(tmp_path) == f"{HOST}:{os.getpid()}"


@pytest.mark.parametrize(
    ("pid", "start", "dead"),
    [
        pytest.param(42, 700, False, id="alive"),
        pytest.param(42, 699, True, id="pid-reused"),
        pytest.param(43, 700, True, id="gone"),
        pytest.param(os.getpid(), 1, False, id="this-process"),
    ],
)
def test_local_holder(tmp_path: Path, pid: int, start: int, dead: bool) -> None:
    proc = _fake_proc(tmp_path)

    assert holder_dead(f"{HOST}:{pid}:{this_place(proc)}.{start}", HOST, proc) is dead


def test_holder_in_another_namespace_is_never_dead(tmp_path: Path) -> None:
    """The same pid in a container sharing the hostname is another process."""
    theirs = this_place(_fake_proc(tmp_path / "theirs", "pid:[4026532999]"))
    proc = _fake_proc(tmp_path / "ours")

    assert theirs != this_place(proc)
    assert not holder_dead(f"{HOST}:43:{theirs}.700", HOST, proc)


@pytest.mark.parametrize(
    "worker_id",
    [f"{HOST}:43", "w:1", f"{HOST}:x:abc.1", "other:43:PLACE.700"],
)
def test_ids_that_prove_nothing_are_never_dead(tmp_path: Path, worker_id: str) -> None:
    proc = _fake_proc(tmp_path)

    assert not holder_dead(
        worker_id.replace("PLACE", this_place(proc) or ""), HOST, proc
    )


def test_proc_of_another_namespace_tells_nothing(tmp_path: Path) -> None:
    proc = _fake_proc(tmp_path)
    (proc / "self").unlink()
    (proc / "self").symlink_to("1")

    assert this_place(proc) is None
