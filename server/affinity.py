"""Which worker runs a prompt: one that already holds its checkpoint, else the
least loaded.  Pure functions, so the rule is tested without a cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Iterable, Sequence

#: Inputs that name a checkpoint file in ComfyUI's loader nodes
#: (CheckpointLoaderSimple, CheckpointLoader, unCLIP/ImageOnly loaders, UNETLoader).
CHECKPOINT_INPUTS = ("ckpt_name", "unet_name")


def checkpoint_names(prompt: dict[str, Any]) -> frozenset[str]:
    """File names (without folders) of the checkpoints a prompt's loaders ask for;
    the model manager reports resident models by file name too."""
    names = set()
    for node in prompt.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for key in CHECKPOINT_INPUTS:
            value = inputs.get(key)
            if isinstance(value, str) and value:
                names.add(PurePosixPath(value.replace("\\", "/")).name)
    return frozenset(names)


@dataclass(frozen=True)
class Candidate:
    """A worker with room for one more prompt."""

    index: int
    in_flight: int
    resident: frozenset[str]


def choose(candidates: Sequence[Candidate], wanted: Iterable[str]) -> int | None:
    """The index of the worker to use, or None when there is none.

    An idle worker holding one of the wanted checkpoints wins; otherwise the
    least loaded, and among equals the one holding fewest models (so a new
    checkpoint lands where it evicts nothing), then the first.
    """
    if not candidates:
        return None
    wanted = frozenset(wanted)
    if wanted:
        warm = [c for c in candidates if c.in_flight == 0 and c.resident & wanted]
        if warm:
            return max(warm, key=lambda c: (len(c.resident & wanted), -c.index)).index
    return min(candidates, key=lambda c: (c.in_flight, len(c.resident), c.index)).index
