"""Users: ``--users FILE`` gives each person a token and a role.

The file (JSON, written by ``loom users add/remove``) holds, per user, the
SHA-256 of their token, never the token: tokens are 256 random bits, so a fast
hash is as safe as a slow one and a request is authenticated in microseconds.
The server re-reads the file when it changes, so ``loom users add`` takes
effect without a restart.

- ``admin``: sees and manages everything, as a server without users.
- ``user``: sees and cancels only their own jobs and history (another user's
  prompt id answers exactly as an unknown one: 404 or ``{}``, never 403, so
  ids do not leak), their outputs go to ``output/<user>/``, and server-wide
  operations (pause, resume, /free, model downloads) are refused.

Without ``--users`` nothing here runs and the server behaves as before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("admin", "user")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class UsersFileError(ValueError):
    """The users file or a change to it is wrong; the message says how."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    token_sha256: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise UsersFileError(f"user name {str(name)[:80]!r} must be 1-64 letters, digits, '_', '-' or '.',"
                             " starting with a letter or digit (it names the user's output folder)")
    return name


def read_users(path: Path) -> dict[str, User]:
    """The users in ``path`` by name; a missing file is no users."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UsersFileError(f"cannot read the users file {path}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsersFileError(f"the users file {path} is not valid JSON: {exc}") from None
    entries = data.get("users") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise UsersFileError(f"the users file {path} must be {{\"users\": [...]}}")
    users: dict[str, User] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise UsersFileError(f"the users file {path}: each user must be an object")
        name = check_name(entry.get("name"))
        role = entry.get("role")
        digest = entry.get("token_sha256")
        if role not in ROLES:
            raise UsersFileError(f"the users file {path}: user {name!r} has role {role!r}; one of {', '.join(ROLES)}")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise UsersFileError(f"the users file {path}: user {name!r} needs token_sha256, 64 hex digits")
        if name in users:
            raise UsersFileError(f"the users file {path}: user {name!r} appears twice")
        users[name] = User(name, role, digest)
    return users


def write_users(path: Path, users: dict[str, User]) -> None:
    """Replace the file atomically, readable by its owner only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"users": [{"name": u.name, "role": u.role, "token_sha256": u.token_sha256}
                      for u in sorted(users.values(), key=lambda u: u.name)]}
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(temp, path)


def add_user(path: Path, name: str, role: str = "user") -> str:
    """Add (or give a new token to) ``name``; returns the token, shown once."""
    check_name(name)
    if role not in ROLES:
        raise UsersFileError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    users = read_users(path)
    token = secrets.token_urlsafe(32)
    users[name] = User(name, role, hash_token(token))
    write_users(path, users)
    return token


def remove_user(path: Path, name: str) -> None:
    users = read_users(path)
    if name not in users:
        raise UsersFileError(f"no user {name!r} in {path}")
    del users[name]
    write_users(path, users)


class UserTable:
    """The users file as the server reads it: by token hash, re-read when
    the file changes (checked at most once a second)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, User] = {}
        self._checked = 0.0
        self._load()

    def _load(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp == self._stamp:
            return
        users = read_users(self.path)  # a bad file at start-up stops the server with its message
        self._by_hash = {u.token_sha256: u for u in users.values()}
        self._stamp = stamp

    def _refresh(self) -> None:
        import time

        now = time.monotonic()
        if now - self._checked < 1.0:
            return
        with self._lock:
            self._checked = now
            try:
                self._load()
            except UsersFileError:
                pass  # a half-edited file: keep the users we had

    def authenticate(self, token: str) -> User | None:
        self._refresh()
        digest = hash_token(token)
        user = self._by_hash.get(digest)
        if user is not None and hmac.compare_digest(user.token_sha256, digest):
            return user
        return None

    def __len__(self) -> int:
        return len(self._by_hash)


class RoundRobin:
    """The queue's choice of what runs next with users: each user in turn
    (the one served longest ago first), each user's own prompts in queue
    order.  One user's batch of 500 then delays another user's prompt by one
    prompt, not 500.  A prompt queued with ``front`` (a negative number)
    still goes first."""

    def __init__(self) -> None:
        self._served: dict[str | None, int] = {}
        self._tick = 0

    def __call__(self, pending: list[Any]) -> int:
        if pending[0].number < 0:
            choice = 0
        else:
            firsts: dict[str | None, int] = {}
            for index, item in enumerate(pending):
                owner = item.extra_data.get("loom_user") if isinstance(item.extra_data, dict) else None
                if owner not in firsts:
                    firsts[owner] = index
            choice = min(firsts.items(), key=lambda kv: (self._served.get(kv[0], -1), kv[1]))[1]
        owner = pending[choice].extra_data.get("loom_user") if isinstance(pending[choice].extra_data, dict) else None
        self._tick += 1
        self._served[owner] = self._tick
        return choice
