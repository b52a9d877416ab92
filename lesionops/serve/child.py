"""A helper process of the server: one of our modules run as `python -m`, spoken to over its pipes.

Why child processes: Python runs one thread at a time per process (the GIL). Work that holds it for
milliseconds (drift features in numpy, an eager torch forward that re-takes it between layers) slows
every request thread of the server; in a child it has its own interpreter, and the server's thread
only waits on a pipe, which holds nothing (feature_process.py, model_process.py).

Why not multiprocessing: its spawn start re-imports the server's `__main__` in every child (13.7 s
for the serve benchmark's), and a pool worker holds its own queue's write end, so it outlived a
server killed with SIGKILL. A plain child ends when its stdin closes, which happens however the
server ends.

Frames: an 8-byte little-endian length, then a pickle (protocol 5, numpy arrays travel without a
copy). Pickle is safe here because both ends are this repository's code on private pipes: nothing
else can write a frame. In the child, stdout carries frames only: a library's stray print goes
to stderr.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import IO, Any, Generic, Protocol, TypeVar

_LENGTH = struct.Struct("<Q")
READY = "ready"


class _Living(Protocol):
    def alive(self) -> bool: ...


K = TypeVar("K", bound=Hashable)
C = TypeVar("C", bound=_Living)


class ChildError(RuntimeError):
    """The child process died, or answered something that is not an answer."""


def write_frame(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=5)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next object; EOFError when the stream ends (cleanly or mid-frame)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("stream ended")
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("stream ended inside a frame")
    return pickle.loads(data)


class Child:
    """`python -m module *args` and its two pipes; one call at a time (a lock). Started at
    construction, which returns once the child said it is ready (its imports done)."""

    def __init__(self, module: str, args: Sequence[str], what: str, error: type[ChildError] = ChildError) -> None:
        self.what, self._error = what, error
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", module, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        try:
            hello = self._read()
        except ChildError:
            self.close()  # reaped, not left a zombie
            raise
        if hello != READY:
            self.close()
            raise self._error(f"{self.what} {self.pid} started with {hello!r} instead of {READY!r}")

    @property
    def pid(self) -> int:
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc.poll() is None

    def call(self, request: Any) -> Any:
        """The child's answer to `request`; the class's error when the child is gone."""
        assert self._proc.stdin is not None
        with self._lock:
            try:
                write_frame(self._proc.stdin, request)
            except (OSError, ValueError) as exc:  # BrokenPipeError: it ended before reading
                raise self._ended() from exc
            return self._read()

    def _read(self) -> Any:
        assert self._proc.stdout is not None
        try:
            return read_frame(self._proc.stdout)
        except (EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
            raise self._ended() from exc

    def _ended(self) -> ChildError:
        try:
            code: int | None = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None  # alive but not answering (a broken pipe of its own)
        return self._error(f"the {self.what} {self.pid} ended (exit code {code})")

    def close(self) -> None:
        """Close its stdin (it exits) and reap it."""
        with contextlib.suppress(OSError, ValueError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class Children(Generic[K, C]):
    """One child per key in this server process, started on first use and shared by its apps (tests
    build many); a dead one is replaced. `children[key]` is the current one (KeyError: none yet)."""

    def __init__(self, start: Callable[[K], C]) -> None:
        self._start, self._lock = start, threading.Lock()
        self._children: dict[K, C] = {}

    def get(self, key: K) -> C:
        with self._lock:
            child = self._children.get(key)
            if child is None or not child.alive():
                child = self._children[key] = self._start(key)
            return child

    def __getitem__(self, key: K) -> C:
        return self._children[key]


def run_child(answer: Callable[[Any], Any]) -> None:
    """The child's main loop: say ready, then one answer frame per request frame until stdin ends.
    Called from the module's `__main__` after its imports (so "ready" means ready)."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print must not corrupt the protocol
    write_frame(protocol, READY)
    while True:
        try:
            request = read_frame(sys.stdin.buffer)
        except EOFError:
            return
        write_frame(protocol, answer(request))
