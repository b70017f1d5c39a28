"""The node registry: an object handed to the engine, never a module global."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .node import NodeDefinition
from .schema import NodeSchema


class NodeClashError(ValueError):
    """A node id is already registered by someone else."""


@dataclass
class Registry:
    """Node definitions by class type, plus the host's ``env`` (model folders,
    model manager...), which schemas read for their file lists and nodes
    receive in their context.  The engine never looks inside ``env``."""

    env: Any = None
    _definitions: dict[str, NodeDefinition] = field(default_factory=dict)
    #: Where each node came from ("builtin" or a plug-in's name).
    origins: dict[str, str] = field(default_factory=dict)
    #: Plug-in name → folder of web extension files (``WEB_DIRECTORY``).
    web_directories: dict[str, str] = field(default_factory=dict)

    def add(self, definition: NodeDefinition, origin: str = "builtin") -> None:
        name = definition.class_type
        if name in self._definitions:
            raise NodeClashError(
                f"node '{name}' from {origin} clashes with the one from {self.origins[name]}"
            )
        self._definitions[name] = definition
        self.origins[name] = origin

    def add_all(self, definitions: Iterable[NodeDefinition], origin: str = "builtin") -> None:
        for definition in definitions:
            self.add(definition, origin)

    def schema(self, class_type: str) -> NodeSchema | None:
        definition = self._definitions.get(class_type)
        return None if definition is None else definition.schema(self.env)

    def get(self, class_type: str) -> NodeDefinition | None:
        return self._definitions.get(class_type)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._definitions

    def __iter__(self) -> Iterator[NodeDefinition]:
        return iter(self._definitions.values())

    def __len__(self) -> int:
        return len(self._definitions)

    def class_types(self) -> list[str]:
        return list(self._definitions)
