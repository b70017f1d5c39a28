"""How a node's call results become its outputs: values gathered per output (lists
flattened, blockers kept, missing unconnected outputs allowed), ui merged, and
expansions added to the running prompt and resolved when their nodes finish.
Mixed into the executor's per-prompt run (``_PromptRun``), whose state it reads.
"""

from __future__ import annotations

from typing import Any, Mapping

from .node import CallResult, ExecutionBlocker
from .planning import DependencyGraph
from .prompt import Link, NodeCall, is_link, parse_input
from .schema import NodeSchema


class NodeFailure(Exception):
    """An error attributed to a node (bad return value, bad expansion...)."""


class CallResults:
    @staticmethod
    def merge_ui(results: list[CallResult]) -> dict[str, Any] | None:
        uis = [r.ui for r in results if r.ui]
        if not uis:
            return None
        if len(uis) == 1:
            return dict(uis[0])
        merged: dict[str, Any] = {}
        for ui in uis:
            for key, value in ui.items():
                merged.setdefault(key, []).extend(value if isinstance(value, list) else [value])
        return merged

    def _links_from(self, node_id: str | None, first_slot: int) -> bool:
        """Whether any node reads an output of ``node_id`` at ``first_slot`` or later."""
        return node_id is None or any(
            isinstance(value, Link) and value.node == node_id and value.slot >= first_slot
            for call in self.calls.values() for value in call.inputs.values())

    def assemble(self, schema: NodeSchema, results: list[CallResult], node_id: str | None = None) -> list[list[Any]]:
        outputs: list[list[Any]] = [[] for _ in schema.outputs]
        for result in results:
            if result.block_execution is not None:
                blocker = ExecutionBlocker(result.block_execution)
                for slot in outputs:
                    slot.append(blocker)
                continue
            if not schema.outputs:
                continue
            # ComfyUI lets a node return fewer values than it declares when the
            # missing outputs are not connected (they read as None).
            if len(result.values) > len(schema.outputs) or (
                    len(result.values) < len(schema.outputs) and self._links_from(node_id, len(result.values))):
                raise NodeFailure(
                    f"{schema.class_type} returned {len(result.values)} value(s) but declares "
                    f"{len(schema.outputs)} output(s)")
            for i, spec in enumerate(schema.outputs):
                value = result.values[i] if i < len(result.values) else None
                if spec.is_list:
                    outputs[i].extend(value if isinstance(value, (list, tuple)) else [value])
                else:
                    outputs[i].append(value)
        return outputs

    def expand(self, node_id: str, results: list[CallResult], ui: dict[str, Any] | None) -> None:
        """Add a node's expansion graph and wait for the nodes its results link to.

        As in ComfyUI, an expansion's nodes keep the ids they were given —
        ``GraphBuilder`` prefixes them with ``{node}.{call}.{graph}.`` — and a
        link may name any node of the running prompt: one of this expansion,
        one added by an earlier expansion, or one of the submitted prompt.  An
        id that is not under this node's prefix (a plain ``{"a": …}`` graph) is
        namespaced as ``{node}.{id}`` so that two expansions cannot collide.
        """
        new_ids: list[str] = []
        link_sources: set[str] = set()
        rewritten: list[CallResult] = []
        own_prefix = f"{node_id}."
        for index, result in enumerate(results):
            graph = result.expand or {}
            if not isinstance(graph, Mapping):
                raise NodeFailure(f"expansion of node {node_id} is not an object of nodes by id")
            prefix = own_prefix if len(results) == 1 else f"{node_id}.{index}."
            renamed = {str(k): (str(k) if str(k).startswith(own_prefix) else prefix + str(k)) for k in graph}

            def remap(value: Any) -> Any:
                if is_link(value) and str(value[0]) in renamed:
                    return Link(renamed[str(value[0])], int(value[1]))
                parsed = parse_input(value)
                if isinstance(parsed, Link) and parsed.node not in self.calls:
                    raise NodeFailure(f"expansion of node {node_id} links to unknown node '{parsed.node}'")
                return parsed

            for child_id, raw in graph.items():
                if not isinstance(raw, Mapping) or "class_type" not in raw:
                    raise NodeFailure(f"expansion of node {node_id}: node '{child_id}' has no class_type")
                new_id = renamed[str(child_id)]
                if new_id in self.calls:
                    raise NodeFailure(f"expansion of node {node_id} adds node '{new_id}', which already exists")
                display = raw.get("override_display_id")
                self.calls[new_id] = NodeCall(new_id, str(raw["class_type"]), {}, parent=node_id,
                                              display=str(display) if display is not None else None)
                self.schema(new_id)  # unknown class → a clear error on the parent
                new_ids.append(new_id)
            for child_id, raw in graph.items():
                self.calls[renamed[str(child_id)]].inputs.update(
                    {str(k): remap(v) for k, v in (raw.get("inputs") or {}).items()})
            values = tuple(remap(v) for v in result.values)
            link_sources.update(v.node for v in values if isinstance(v, Link))
            rewritten.append(CallResult(values, result.ui, None, result.block_execution))
        order, on_cycles = DependencyGraph.of({n: self.calls[n] for n in new_ids}).order(new_ids)
        if on_cycles:
            raise NodeFailure(f"expansion of node {node_id} has a dependency cycle through {sorted(on_cycles)}")
        self.sign(order)
        outputs_inside = [n for n in new_ids if self.schema(n).output_node]
        self.expanding[node_id] = (rewritten, ui)
        self.stage(outputs_inside)
        self.wait_for(node_id, link_sources)

    def finish_expansion(self, node_id: str) -> None:
        results, ui = self.expanding.pop(node_id)
        schema = self.schema(node_id)
        outputs: list[list[Any]] = [[] for _ in schema.outputs]
        for result in results:
            for i in range(min(len(schema.outputs), len(result.values))):
                value = result.values[i]
                if isinstance(value, Link):
                    outputs[i].extend(self.results[value.node][value.slot])
                elif schema.outputs[i].is_list and isinstance(value, (list, tuple)):
                    outputs[i].extend(value)
                else:
                    outputs[i].append(value)
        self.resolve(node_id, outputs, ui)
