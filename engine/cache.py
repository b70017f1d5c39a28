"""Where node results live between prompts, under their signatures.

- ``classic`` (default): keep the results of the last prompt's nodes; entries
  the next prompt no longer uses are dropped after it runs.
- ``lru:N``: keep the N most recently used results, across prompts
  (``lru:0`` is ``classic``, as ComfyUI's ``--cache-lru 0``).
- ``none``: keep nothing between prompts.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable


@dataclass(frozen=True)
class CachedResult:
    outputs: list[list[Any]]
    ui: dict[str, Any] | None


class ResultCache:
    def get(self, signature: str) -> CachedResult | None:
        raise NotImplementedError

    def put(self, signature: str, result: CachedResult) -> None:
        raise NotImplementedError

    def end_prompt(self, used: Iterable[str]) -> None:
        """Called after each prompt with the signatures it used."""

    def clear(self) -> None:
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class ClassicCache(ResultCache):
    def __init__(self) -> None:
        self._entries: dict[str, CachedResult] = {}

    def get(self, signature: str) -> CachedResult | None:
        return self._entries.get(signature)

    def put(self, signature: str, result: CachedResult) -> None:
        self._entries[signature] = result

    def end_prompt(self, used: Iterable[str]) -> None:
        keep = set(used)
        for signature in [s for s in self._entries if s not in keep]:
            del self._entries[signature]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class LRUCache(ResultCache):
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("an LRU cache needs room for at least one result")
        self.size = size
        self._entries: OrderedDict[str, CachedResult] = OrderedDict()

    def get(self, signature: str) -> CachedResult | None:
        result = self._entries.get(signature)
        if result is not None:
            self._entries.move_to_end(signature)
        return result

    def put(self, signature: str, result: CachedResult) -> None:
        self._entries[signature] = result
        self._entries.move_to_end(signature)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class NoCache(ResultCache):
    def get(self, signature: str) -> CachedResult | None:
        return None

    def put(self, signature: str, result: CachedResult) -> None:
        pass

    def clear(self) -> None:
        pass

    def __len__(self) -> int:
        return 0


def make_cache(policy: str | ResultCache) -> ResultCache:
    """``classic``, ``lru:N`` or ``none`` (as on the command line)."""
    if isinstance(policy, ResultCache):
        return policy
    if policy == "classic":
        return ClassicCache()
    if policy == "none":
        return NoCache()
    if policy.startswith("lru:"):
        try:
            size = int(policy[4:])
        except ValueError:
            size = -1
        if size == 0:  # ComfyUI's --cache-lru 0: the classic cache
            return ClassicCache()
        if size > 0:
            return LRUCache(size)
    raise ValueError(f"unknown cache policy '{policy}': use classic, lru:N or none")
