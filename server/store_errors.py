"""The queue database's errors: what a person must act on (a full disk, a damaged
file) as exceptions that say so, and sqlite's codes read into them."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26


class StoreError(Exception):
    """A problem with the queue database a person has to act on."""


class DiskFull(StoreError):
    """A write failed because the disk holding the queue database is full."""

    def __init__(self, path: Path, cause: BaseException):
        self.path = path
        super().__init__(f"the disk holding the queue database {path} is full ({cause}); free some space")


class DamagedStore(StoreError):
    """The queue database, or a row in it, cannot be read."""

    def __init__(self, path: Path, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(
            f"the queue database {path} is damaged ({reason}); start with --recover-queue to move it aside"
            f" to {path.name}.corrupt-<time> and keep what can still be read, or move it away yourself")


class DuplicatePromptId(sqlite3.IntegrityError):
    """The prompt id is in history already (a queued or running one fails on
    the queue table's primary key, also an ``IntegrityError``)."""


def _is_disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF == _SQLITE_FULL):
        return True
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def _is_damage(exc: BaseException) -> bool:
    """sqlite's own verdict that the file is not (or no longer) a database."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


def _open_error(path: Path, exc: BaseException) -> StoreError:
    if _is_damage(exc):
        return DamagedStore(path, str(exc))
    if _is_disk_full(exc):
        return DiskFull(path, exc)
    return StoreError(f"cannot open the queue database {path}: {exc}")
