"""The messages between the server and its remote workers (no Ray here: plain
dataclasses that pickle, so the transport can change without touching them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Job:
    """One prompt handed to a worker."""

    prompt_id: str
    prompt: dict[str, Any]
    extra_data: dict[str, Any]
    outputs: list[str]
    #: Send the output files back with the result (the worker's output folder
    #: is not the server's); False when both see the same folder.
    ship_files: bool = True


@dataclass(frozen=True)
class Accepted:
    """First message of a run: the worker has started the prompt."""

    prompt_id: str
    worker: str


@dataclass(frozen=True)
class ShippedFile:
    """An output file travelling back to the server's folders."""

    root: str        # "output" | "temp"
    subfolder: str
    filename: str
    data: bytes


@dataclass(frozen=True)
class JobResult:
    """Last message of a run."""

    prompt_id: str
    status: str  # "success" | "error" | "interrupted"
    outputs: dict[str, Any]
    messages: list[Any]
    error: Any = None  # engine.events.ExecutionError | None
    files: list[ShippedFile] = field(default_factory=list)
    resident: tuple[str, ...] = ()
    loads: int = 0


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says about itself (``/system_stats`` lists these)."""

    worker: str
    host: str
    pid: int
    device: str
    output_dir: str
    resident: tuple[str, ...] = ()
    current_prompt: str | None = None
    completed: int = 0
    #: Checkpoints this worker has loaded since it started (affinity keeps it low).
    loads: int = 0

    def wire(self) -> dict[str, Any]:
        return {"worker": self.worker, "host": self.host, "pid": self.pid, "device": self.device,
                "resident_models": list(self.resident), "current_prompt": self.current_prompt,
                "completed": self.completed, "model_loads": self.loads}


class WorkerStartError(RuntimeError):
    """The workers could not be started (Ray missing or unreachable)."""
