"""Tying a child process's life to its parent's (Linux ``PR_SET_PDEATHSIG``), safely from a multi-threaded parent.

A ``preexec_fn`` runs in the forked child before ``exec``, where only async-signal-safe work is safe: another thread of
the parent may have held a lock at the moment of the fork, and the child inherits it held forever. Loading a library
(``ctypes.CDLL``: ``dlopen``) takes the dynamic loader's lock, which a thread importing an extension module (an agent's
backend probe, a server's route imports) holds for a while -- a child forked then hangs before ``exec``, and so does
its parent, which waits for the ``exec``. So ``prctl`` is resolved here, in the parent, and the child makes one call.

The tie exists only once the child has made that call: a parent that died between the fork and the call leaves the
child orphaned, so the child compares its parent pid with the one it was forked from and exits if they differ.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
_prctl = None  # resolved once, in the parent


def _resolve_prctl():
    global _prctl
    if _prctl is None:
        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl  # libc is already loaded: no file is opened
        except (OSError, AttributeError):  # not Linux/glibc: recovery on restart handles orphans there
            _prctl = False
    return _prctl


def die_with_parent(sig: int, new_session: bool = False) -> Callable[[], None]:
    """A ``preexec_fn`` (built in the parent): the child gets ``sig`` when the parent dies, even by ``kill -9``;
    ``new_session`` also puts it in a session of its own (so a process-group kill reaches its children)."""
    prctl = _resolve_prctl()
    parent = os.getpid()

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        if new_session:
            os.setsid()
        if prctl:
            prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # checked after the tie: from here on the parent's death kills this process
            os._exit(1)

    return preexec


def tie_to_parent(sig: int, parent: int) -> None:
    """The same tie made by a child after ``exec`` (a spawned interpreter): exits at once if ``parent`` is gone."""
    prctl = _resolve_prctl()
    if prctl:
        prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:
        os._exit(1)
