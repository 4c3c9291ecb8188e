"""Identifiers that sort by creation time, and the worker ids on claims."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import time
from pathlib import Path


def new_document_id() -> str:
    """
    32 hex characters: 12 of milliseconds since the epoch, 20 random.

    Time-ordered ids keep inserts at the end of the primary-key index and make
    the id a stable tie-breaker for cursor pagination.
    """
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


def new_claim_token() -> str:
    return secrets.token_hex(16)


def default_worker_id(proc: Path = Path("/proc")) -> str:
    """
    ``host:pid:place.start``, stable for the life of the process.

    ``place`` names the boot and the PID namespace the pid is counted in,
    ``start`` the process's start time (clock ticks since boot): together
    they say whether a holder is provably this machine's and dead (see
    ``holder_dead``). Where ``/proc`` cannot tell them it is ``host:pid``.
    """
    base = f"{socket.gethostname()}:{os.getpid()}"
    place = this_place(proc)
    start = process_start(proc, os.getpid()) if place else None
    if place is None or start is None:
        return base
    return f"{base}:{place}.{start}"


def this_place(proc: Path = Path("/proc")) -> str | None:
    """
    12 hex characters naming this boot and PID namespace; None if unknown.

    Containers that share a hostname (host networking, hostNetwork pods)
    count pids in their own namespaces, so a pid alone says nothing about a
    process in another one. A ``/proc`` mounted for another namespace than
    the process's own (``/proc/self`` then names another pid) cannot tell.
    """
    try:
        if os.readlink(proc / "self") != str(os.getpid()):
            return None
        boot = (proc / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(proc / "self/ns/pid")
    except OSError:
        return None
    digest = hashlib.sha256(f"{boot}\n{namespace}".encode()).hexdigest()
    return digest[:12]


def process_start(proc: Path, pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot; None if no such."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; the fields
    # after its closing parenthesis start at field 3, and the start time is 22.
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def holder_dead(worker_id: str, host: str, proc: Path = Path("/proc")) -> bool:
    """
    Whether ``worker_id`` names a process that is provably gone: on ``host``,
    in this boot and PID namespace, and its pid now free or taken by a
    process that started at another time. Anything else (another namespace
    or boot, an id without a place, a custom id) is left to its lease,
    which is always safe.
    """
    name, _, rest = worker_id.partition(":")
    pid_text, _, tail = rest.partition(":")
    place, _, start_text = tail.partition(".")
    if name != host or not pid_text.isdigit() or not start_text.isdigit():
        return False
    if place != this_place(proc):
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    return process_start(proc, pid) != int(start_text)
