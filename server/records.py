"""The queue's and history's records, in ComfyUI's wire shapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class QueueItem:
    """One queued prompt.

    ``number`` orders the queue (ComfyUI's "number": front-of-queue items get
    negative ones); ``seq`` breaks ties in arrival order.
    """

    number: float
    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    seq: int = 0
    #: Found pending or running in the database at start-up (so the registry
    #: it was validated against may have changed: validate again before running).
    recovered: bool = False
    #: Times the server process died while running this prompt (counted at
    #: start-up; see ``server.store.RunMarker``).
    attempts: int = 0
    #: The engine's ValidationResult from ``POST /prompt`` (in memory only).
    validation: Any = field(default=None, repr=False, compare=False)

    @property
    def client_id(self) -> str | None:
        client_id = self.extra_data.get("client_id")
        return client_id if isinstance(client_id, str) and client_id else None

    def sort_key(self) -> tuple[float, int]:
        return (self.number, self.seq)

    def wire(self) -> list[Any]:
        """ComfyUI's queue tuple: ``[number, prompt_id, prompt, extra_data, outputs]``."""
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


@dataclass
class HistoryEntry:
    """A finished prompt: what ran, what it produced, how it ended."""

    item: QueueItem
    outputs: dict[str, Any]
    status_str: str  # "success" | "error"
    completed: bool
    messages: list[Any] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        return {
            node_id: {"node_id": node_id, "display_node": node_id, "parent_node": None,
                      "real_node_id": node_id}
            for node_id in self.outputs
        }

    def wire(self) -> dict[str, Any]:
        return {
            "prompt": self.item.wire(),
            "outputs": self.outputs,
            "status": {"status_str": self.status_str, "completed": self.completed,
                       "messages": self.messages},
            "meta": self.meta(),
        }

    def output_files(self) -> list[tuple[str, str, str, str, str]]:
        """(node id, kind, filename, subfolder, type) for every file the
        outputs name (``images``, ``gifs``, ``audio``... lists of file refs)."""
        files = []
        for node_id, ui in self.outputs.items():
            if not isinstance(ui, dict):
                continue
            for kind, values in ui.items():
                if not isinstance(values, list):
                    continue
                for value in values:
                    if isinstance(value, dict) and isinstance(value.get("filename"), str):
                        files.append((node_id, kind, value["filename"],
                                      str(value.get("subfolder", "") or ""),
                                      str(value.get("type", "output") or "output")))
        return files


class DuplicatePrompt(Exception):
    """A prompt id already queued, running or in history (ComfyUI clients pick their own ids)."""
