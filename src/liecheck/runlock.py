"""One writer per run directory: an exclusive ``fcntl.flock`` on ``RUN_DIR/lock``.

The kernel drops the lock when its holder exits in any way (SIGKILL included), so a
lock left by a dead process never blocks the next run: the file may still name the
dead holder, and the next run takes it over. The file is never deleted (deleting a
flock file lets two processes lock two different inodes); releasing empties it.

The holder writes its pid, host and start time into the file so a refused run can
say who holds the directory. ``flock`` works across processes on one machine and,
on Linux NFS (v4) and Lustre/GPFS mounted with lock support, across nodes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK = "lock"


class RunLocked(RuntimeError):
    """Another live process holds the run directory."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (zombies count as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def holder(root: str | Path) -> dict:
    """What the lock file says about its last holder (empty if none recorded)."""
    try:
        text = (Path(root) / LOCK).read_text()
        return json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}


def holder_alive(info: dict) -> bool | None:
    """Whether the holder recorded in ``info`` still runs; ``None`` if that cannot be
    known from here (another host)."""
    if not info.get("pid"):
        return False
    if info.get("host") != socket.gethostname():
        return None
    return pid_alive(int(info["pid"]))


def describe(info: dict) -> str:
    """``pid 123 on host, started 2026-01-01 12:00:00``."""
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started "
            f"{info.get('started', '?')}")


class RunLock:
    """The exclusive lock of one run directory (see the module docstring).

    Use :meth:`acquire` / :meth:`release`, or ``with RunLock(root):``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / LOCK
        self._fd: int | None = None
        self.previous: dict = {}      # the dead holder whose lock was taken over, if any

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunLocked` naming the holder's pid and start."""
        if self._fd is not None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            info = {}
            for _ in range(20):                 # the holder may be writing its details
                info = holder(self.root)
                if info:
                    break
                time.sleep(0.05)
            raise RunLocked(
                f"{self.root} is in use by another liecheck run ({describe(info)}); wait "
                "for it to finish, stop it, or choose another --out") from None
        self.previous = holder(self.root)
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv[:8]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Empty the lock file and drop the lock (the file itself stays)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
