"""Atomic file writes: write a temp file beside the target, then ``os.replace`` it, so a reader (or a
run killed half-way) sees either the old file or the new one, never a torn one.

A writer killed between creating its temp file and the replace (kill -9) leaves the temp file behind. Temp
names carry the writer's host and pid (``.<name>.<host>-<pid>.<random>.tmp``), so the next writer into the
same folder removes the ones whose process is gone, and never one that a live writer (a second sweep into
the same ``--out``) is still filling.
"""
from __future__ import annotations

import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()       # read once, at import: os.umask is process-wide and not thread-safe
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"   # no "-": it ends the host in a name
_TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[^.]+\.tmp$")
_swept: set[str] = set()   # folders this process has already cleaned


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # exists, owned by someone else
        return True
    return True


def stale_temps(folder: str | Path) -> list[Path]:
    """Temp files in ``folder`` left by a writer on this host whose process no longer exists."""
    found = []
    for path in Path(folder).glob(".*.tmp"):
        m = _TEMP.match(path.name)
        if m and m["host"] == _HOST and int(m["pid"]) != os.getpid() and not _alive(int(m["pid"])):
            found.append(path)
    return found


def sweep_stale_temps(folder: str | Path) -> int:
    """Remove ``stale_temps(folder)``; returns how many were removed."""
    removed = 0
    for path in stale_temps(folder):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:    # another writer swept it first
            pass
    return removed


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = str(path.parent.resolve())
    if folder not in _swept:
        sweep_stale_temps(folder)
        _swept.add(folder)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)       # mkstemp makes 0600; the file follows the umask like open()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return atomic_write(path, write)
