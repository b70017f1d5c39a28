"""Combo inputs that list one model folder's files.

Declaring the folder kind (not just a list of names) lets validation tell a
user which file is missing and where to put it, instead of "value not in list".
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

from engine.declare import Combo


def _list(kind: str, extensions: Sequence[str] | None, env: Any) -> list[str]:
    return [] if env is None else env.folders.list_models(kind, extensions=extensions)


def ModelFile(kind: str, *, extensions: Sequence[str] | None = None, **options: Any) -> Combo:
    """A combo of the files in the ``kind`` model folders (re-read on each schema request)."""
    listed = tuple(extensions) if extensions is not None else None
    return Combo(partial(_list, kind, listed), model_kind=kind, **options)
