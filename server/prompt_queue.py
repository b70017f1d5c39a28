"""The queue's in-memory order: what is pending, what runs, whether paused.

The worker thread blocks in :meth:`PromptQueue.take`; the event loop adds,
removes and reorders.  The database (``server.store``) is the durable copy;
this object is the fast one every request reads.  Callers persist first and
then update this, except for removals, which happen here first so the worker
cannot pick up an item that is being deleted.
"""

from __future__ import annotations

import bisect
import threading
from typing import Callable

from .records import QueueItem


class PromptQueue:
    def __init__(self, on_change: Callable[[], None] = lambda: None):
        self._cond = threading.Condition()
        self._pending: list[QueueItem] = []
        self._running: dict[str, QueueItem] = {}
        self._paused = False
        self._closed = False
        self._on_change = on_change
        #: Chooses which pending item runs next (its index); None: the first.
        #: ``--users`` sets a round-robin across users (``server.users.RoundRobin``).
        self.pick: Callable[[list[QueueItem]], int] | None = None

    # --------------------------------------------------------------- reads
    def snapshot(self) -> tuple[list[QueueItem], list[QueueItem]]:
        with self._cond:
            return list(self._running.values()), list(self._pending)

    def remaining(self) -> int:
        with self._cond:
            return len(self._pending) + len(self._running)

    @property
    def paused(self) -> bool:
        return self._paused

    def is_running(self, prompt_id: str) -> bool:
        with self._cond:
            return prompt_id in self._running

    def running_ids(self) -> list[str]:
        with self._cond:
            return list(self._running)

    def __contains__(self, prompt_id: object) -> bool:
        with self._cond:
            return prompt_id in self._running or any(i.prompt_id == prompt_id for i in self._pending)

    # -------------------------------------------------------------- writes
    def add(self, item: QueueItem) -> None:
        with self._cond:
            bisect.insort(self._pending, item, key=QueueItem.sort_key)
            self._cond.notify()
        self._on_change()

    def remove(self, prompt_ids: set[str]) -> list[str]:
        """Drop pending items; returns the ids that were pending."""
        with self._cond:
            removed = [i.prompt_id for i in self._pending if i.prompt_id in prompt_ids]
            if removed:
                self._pending = [i for i in self._pending if i.prompt_id not in prompt_ids]
        if removed:
            self._on_change()
        return removed

    def clear(self) -> list[str]:
        with self._cond:
            removed = [i.prompt_id for i in self._pending]
            self._pending = []
        self._on_change()
        return removed

    def move(self, prompt_id: str, position: int) -> float | None:
        """Put a pending item at ``position`` (0 = next to run; negative counts
        from the end, -1 = last) by giving it a number between its new
        neighbours.  Returns the new number, or None if it is not pending."""
        changed = self.move_item(prompt_id, position)
        return None if changed is None else changed[prompt_id]

    def move_item(self, prompt_id: str, position: int) -> dict[str, float] | None:
        """:meth:`move`, returning every number that changed (to persist):
        the moved item's, and all pending ones when the midpoint between two
        neighbours can no longer be told apart from them (after many moves
        into the same gap), so the numbers stay strictly increasing and a
        restart restores exactly this order."""
        number = self._move(prompt_id, position)
        if number is None:
            return None
        with self._cond:
            numbers = [item.number for item in self._pending]
            if all(a < b for a, b in zip(numbers, numbers[1:])):
                return {prompt_id: number}
            return self._renumber()

    def _renumber(self) -> dict[str, float]:
        """Spread the pending numbers evenly over their current range (so items
        queued later, numbered from the counter, still sort after them, and
        ``front`` ones before); whole numbers when the range is too narrow."""
        pending = self._pending
        low, high = pending[0].number, pending[-1].number
        count = len(pending)
        spread = [low + (high - low) * index / (count - 1) for index in range(count)]
        if not all(a < b for a, b in zip(spread, spread[1:])):
            spread = [float(int(low) + index) for index in range(count)]
        for item, number in zip(pending, spread):
            item.number = number
        return {item.prompt_id: item.number for item in pending}

    def _move(self, prompt_id: str, position: int) -> float | None:
        with self._cond:
            index = next((n for n, i in enumerate(self._pending) if i.prompt_id == prompt_id), None)
            if index is None:
                return None
            item = self._pending.pop(index)
            count = len(self._pending)
            if position < 0:
                position = count + 1 + position
            position = max(0, min(position, count))
            before = self._pending[position - 1] if position > 0 else None
            after = self._pending[position] if position < count else None
            if before is None and after is None:
                number = item.number
            elif before is None:
                number = after.number - 1.0
            elif after is None:
                number = before.number + 1.0
            else:
                number = (before.number + after.number) / 2.0
            item.number = number
            # The midpoint can tie a neighbour (equal numbers): seq then
            # decides, so rebuild the order explicitly at the requested place.
            self._pending.insert(position, item)
            self._pending.sort(key=QueueItem.sort_key)
            if self._pending[position] is not item:
                self._pending.remove(item)
                self._pending.insert(position, item)
        self._on_change()
        return number

    def set_paused(self, paused: bool) -> None:
        with self._cond:
            self._paused = paused
            self._cond.notify_all()
        self._on_change()

    # ------------------------------------------------------------- worker
    def take(self, timeout: float | None = None) -> QueueItem | None:
        """The next item to run (marked running), or None after ``timeout``
        (or once closed)."""
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._closed or (self._pending and not self._paused), timeout)
            if not ready or self._closed:
                return None
            item = self._pending.pop(self.pick(self._pending) if self.pick is not None else 0)
            self._running[item.prompt_id] = item
        self._on_change()
        return item

    def finish(self, prompt_id: str) -> None:
        with self._cond:
            self._running.pop(prompt_id, None)
        self._on_change()

    def give_back(self, item: QueueItem) -> None:
        """Return a running item to pending, in its old place (its worker died
        before finishing it): it runs again from scratch."""
        with self._cond:
            self._running.pop(item.prompt_id, None)
            bisect.insort(self._pending, item, key=QueueItem.sort_key)
            self._cond.notify()
        self._on_change()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
