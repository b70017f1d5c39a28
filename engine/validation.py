"""Prompt validation with ComfyUI's error shapes.

Every error of a prompt is reported at once.  Each node's own inputs are checked
once; validity then flows down the graph in topological order, so the whole
check is linear in the prompt's size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterable, Mapping
from typing import Any

from .awaiting import resolve
from .node import ExecutionBlocker, NodeDefinition
from .planning import DependencyGraph, natural_key
from .prompt import Link, ListLiteral, NodeCall, parse_node, unparse
from .registry import Registry
from .schema import MISSING, InputSpec, NodeSchema, types_compatible


@dataclass(frozen=True)
class ValidationIssue:
    """One problem, in ComfyUI's ``{type, message, details, extra_info}`` shape."""

    type: str
    message: str
    details: str = ""
    extra_info: Mapping[str, Any] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "details": self.details,
                "extra_info": dict(self.extra_info)}


@dataclass
class ValidationResult:
    error: ValidationIssue | None
    node_errors: dict[str, dict[str, Any]]
    #: The output nodes that passed validation and will run.
    outputs: list[str]
    #: The prompt with literals converted to their declared types.
    calls: dict[str, NodeCall]
    #: The nodes to run (ancestors of the valid outputs), in topological order.
    order: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.outputs)

    @property
    def prompt(self) -> dict[str, Any]:
        return unparse(self.calls)

    def response(self) -> dict[str, Any]:
        """The body ComfyUI answers ``POST /prompt`` with on failure."""
        return {"error": self.error.wire() if self.error else None, "node_errors": self.node_errors}


def _fail(kind: str, message: str, details: str = "", **extra: Any) -> ValidationResult:
    return ValidationResult(ValidationIssue(kind, message, details, extra), {}, [], {})


#: ComfyUI's validate_inputs converts literals of these types with Python's own
#: constructors — so "5" is an INT but "5.0" is not, any value is a STRING, and
#: any value is a BOOLEAN by its truth ("false" is True).  Other types pass as given.
_CONVERTERS = {
    "INT": int,
    "FLOAT": float,
    "STRING": str,
    "BOOLEAN": bool,
}


def _convert(spec: InputSpec, value: Any) -> Any:
    convert = _CONVERTERS.get(spec.type)
    return value if convert is None else convert(value)


class _NodeChecker:
    """Checks one node's inputs against its schema."""

    def __init__(self, call: NodeCall, schema: NodeSchema, definition: NodeDefinition,
                 calls: Mapping[str, NodeCall], schemas: Mapping[str, NodeSchema | None], env: Any = None):
        self.call, self.schema, self.definition, self.env = call, schema, definition, env
        self.calls, self.schemas = calls, schemas
        self.issues: list[ValidationIssue] = []
        self.converted: dict[str, Any] = dict(call.inputs)
        self.changed = False

    def issue(self, kind: str, message: str, spec: InputSpec, details: str = "", **extra: Any) -> None:
        info = {"input_name": spec.name, "input_config": spec.wire_format(), **extra}
        self.issues.append(ValidationIssue(kind, message, details or spec.name, info))

    def run(self) -> list[ValidationIssue]:
        hook = self.definition.validation
        inputs = self.call.inputs
        received_types: dict[str, str] = {}
        for spec in self.schema.inputs:
            if spec.section == "hidden":
                continue
            value = inputs.get(spec.name, MISSING)
            if value is MISSING:
                if spec.section == "required":
                    self.issue("required_input_missing", "Required input is missing", spec)
                continue
            kind = type(value)
            if kind is Link:
                received = self.check_link(spec, value, hook is not None and hook.wants_input_types)
                if received is not None:
                    received_types[spec.name] = received
            else:
                skip_range = hook is not None and (hook.takes_all or spec.name in hook.takes)
                self.check_literal(spec, value, skip_range)
        if hook is not None:
            self.run_hook(hook, received_types)
        return self.issues

    def check_link(self, spec: InputSpec, link: Link, hook_checks_types: bool) -> str | None:
        source = self.calls.get(link.node)
        if source is None:
            self.issue("bad_linked_input", "Bad linked input, the linked node does not exist", spec,
                       f"{spec.name} links to node '{link.node}', which is not in the prompt",
                       received_value=link.wire())
            return None
        source_schema = self.schemas.get(source.class_type)
        if source_schema is None:
            return None  # the unknown class is reported on the source node itself
        if not 0 <= link.slot < len(source_schema.outputs):
            self.issue("bad_linked_input", "Bad linked input, the output slot does not exist", spec,
                       f"{spec.name} links to output {link.slot} of node '{link.node}' "
                       f"({source.class_type}), which has {len(source_schema.outputs)} output(s)",
                       received_value=link.wire())
            return None
        received = source_schema.outputs[link.slot].type
        if not hook_checks_types and not types_compatible(received, spec.type):
            self.issue("return_type_mismatch", "Return type mismatch between linked nodes", spec,
                       f"{spec.name}, received_type({received}) mismatch input_type({spec.type})",
                       received_type=received, linked_node=link.wire())
        return received

    def check_literal(self, spec: InputSpec, value: Any, skip_range: bool) -> None:
        if isinstance(value, (list, tuple)):
            # A list in the prompt is a link in ComfyUI's format; one that is
            # not [node_id, slot] is a broken link, not a value.
            self.issue("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                       spec, spec.name, received_value=list(value))
            return
        if isinstance(value, ListLiteral):
            value = value.value  # {"__value__": ...}: a list widget value, converted like any other
            if spec.type not in _CONVERTERS:
                return
        try:
            converted = _convert(spec, value)
        except Exception as exc:  # whatever the constructor raises, as ComfyUI catches it
            self.issue("invalid_input_type", f"Failed to convert an input value to a {spec.type} value",
                       spec, f"{spec.name}, {value}, {exc}", received_value=value, exception_message=str(exc))
            return
        if converted is not value:
            self.changed = True  # (3 == 3.0 and 1 == True: compare by identity)
        value = converted
        self.converted[spec.name] = value
        if skip_range:
            return
        if spec.type in ("INT", "FLOAT"):
            if spec.min is not None and value < spec.min:
                self.issue("value_smaller_than_min", f"Value {value} smaller than min of {spec.min}",
                           spec, received_value=value)
                return
            if spec.max is not None and value > spec.max:
                self.issue("value_bigger_than_max", f"Value {value} bigger than max of {spec.max}",
                           spec, received_value=value)
                return
        if spec.type == "COMBO" and spec.choices is not None and value not in spec.choices:
            if spec.model_kind is not None and self.report_missing_model(spec, value):
                return
            shown = list(spec.choices)
            listing = str(shown) if len(shown) <= 20 else f"(list of length {len(shown)})"
            self.issue("value_not_in_list", "Value not in list", spec,
                       f"{spec.name}: {value!r} not in {listing}", received_value=value)

    def report_missing_model(self, spec: InputSpec, value: Any) -> bool:
        """Name the missing file and the folder it belongs in, when the host can."""
        describe = getattr(self.env, "missing_model_message", None)
        if describe is None:
            return False
        self.issue("value_not_in_list", "Model file not found", spec,
                   f"{spec.name}: {describe(spec.model_kind, str(value))}", received_value=value)
        return True

    def run_hook(self, hook, received_types: dict[str, str]) -> None:
        """ComfyUI's VALIDATE_INPUTS call: the inputs the node is given (literals
        converted, linked ones ``None`` — they have no value before execution,
        absent ones left out) and its hidden inputs, filtered to the hook's
        parameters unless it takes ``**kwargs``; ``input_types`` maps each
        linked input to the type linked in.  Anything but ``True`` fails the
        node with one error per input it was given, each naming that input."""
        given: dict[str, Any] = {}
        for name, value in self.converted.items():
            spec = self.schema.input(name)
            if isinstance(value, Link):
                given[name] = value.wire() if spec is not None and spec.raw_link else None
            elif spec is not None:
                given[name] = value.value if isinstance(value, ListLiteral) else value
        for spec in self.schema.section("hidden") if hook.takes_hidden else ():
            given[spec.name] = (self.call.id if spec.type == "UNIQUE_ID" else
                                {} if spec.type == "PROMPT" else None)
        args = dict(given) if hook.takes_all else {n: v for n, v in given.items() if n in hook.takes}
        if self.schema.input_is_list:
            args = {name: [value] for name, value in args.items()}
        if hook.wants_input_types:
            args["input_types"] = received_types
        if hook.wants_env:
            args["env"] = self.env
        try:
            outcome = resolve(hook.call(**args))
        except Exception as exc:  # a plug-in's hook must not take validation down
            self.issues.append(ValidationIssue(
                "exception_during_validation", "Exception when validating node", str(exc),
                {"exception_type": type(exc).__name__}))
            return
        if outcome is True or isinstance(outcome, ExecutionBlocker):
            return
        names = [n for n in args if n != "env"] or [None]
        for name in names:
            if name is None:
                details = "" if outcome is False else str(outcome)
            else:
                details = name if outcome is False else f"{name} - {outcome}"
            self.issues.append(ValidationIssue(
                "custom_validation_failed", "Custom validation failed for node", details,
                {"input_name": name} if name is not None else {}))


def validate_prompt(
    registry: Registry,
    prompt: Any,
    partial_execution_targets: Iterable[str] | None = None,
) -> ValidationResult:
    if not isinstance(prompt, Mapping):
        return _fail("invalid_prompt", "Invalid prompt: expected an object of nodes by id",
                     f"got {type(prompt).__name__}")
    calls: dict[str, NodeCall] = {}
    bad_nodes = []
    for node_id, raw in prompt.items():
        if not isinstance(raw, dict) or not isinstance(raw.get("class_type"), str):
            bad_nodes.append(str(node_id))
            continue
        if raw.get("inputs") is not None and not isinstance(raw.get("inputs"), dict):
            bad_nodes.append(str(node_id))
            continue
        calls[str(node_id)] = parse_node(str(node_id), raw)
    if bad_nodes:
        return _fail("invalid_prompt",
                     "Cannot execute because a node is missing the class_type property or has malformed inputs.",
                     ", ".join(f"Node ID '#{n}'" for n in bad_nodes), node_ids=bad_nodes)

    schemas: dict[str, NodeSchema | None] = {}
    for call in calls.values():
        if call.class_type not in schemas:
            schemas[call.class_type] = registry.schema(call.class_type)
    node_errors: dict[str, dict[str, Any]] = {}
    unknown = [c for c in calls.values() if schemas[c.class_type] is None]
    for call in unknown:
        node_errors[call.id] = {
            "errors": [ValidationIssue(
                "missing_node_type",
                f"Node '{call.class_type}' not found. The custom node may not be installed.",
                f"Node ID '#{call.id}'", {"node_id": call.id, "class_type": call.class_type}).wire()],
            "dependent_outputs": [], "class_type": call.class_type,
        }
    if unknown:
        first = unknown[0]
        error = ValidationIssue(
            "missing_node_type",
            f"Node '{first.class_type}' not found. The custom node may not be installed.",
            f"Node ID '#{first.id}'", {"node_id": first.id, "class_type": first.class_type})
        return ValidationResult(error, node_errors, [], calls)

    targets = [n for n, c in calls.items() if schemas[c.class_type].output_node]  # type: ignore[union-attr]
    if partial_execution_targets is not None:
        wanted = {str(t) for t in partial_execution_targets}
        targets = [n for n in targets if n in wanted]
    if not targets:
        return ValidationResult(
            ValidationIssue("prompt_no_outputs", "Prompt has no outputs",
                            "a prompt needs at least one output node (SaveImage, PreviewImage...)", {}),
            {}, [], calls)
    targets.sort(key=natural_key)

    graph = DependencyGraph.of(calls)
    needed = graph.ancestors(targets)
    order, on_cycles = graph.order(needed)
    own_issues: dict[str, list[ValidationIssue]] = {}
    if on_cycles:
        for cycle in graph.cycles(on_cycles):
            for node_id in cycle:
                own_issues.setdefault(node_id, []).append(ValidationIssue(
                    "dependency_cycle", "Dependency cycle detected",
                    "nodes " + " → ".join(cycle) + " depend on each other", {"cycle": cycle}))

    converted_calls = dict(calls)
    for node_id in needed:
        call = calls[node_id]
        checker = _NodeChecker(call, schemas[call.class_type], registry.get(call.class_type),  # type: ignore[arg-type]
                               calls, schemas, registry.env)
        issues = checker.run()
        if issues:
            own_issues.setdefault(node_id, []).extend(issues)
        if checker.changed:
            converted_calls[node_id] = NodeCall(call.id, call.class_type, checker.converted, call.title)

    valid: dict[str, bool] = {}
    for node_id in order:
        valid[node_id] = node_id not in own_issues and all(valid.get(s, False) for s in graph.sources[node_id])

    good = [t for t in targets if valid.get(t)]
    for target in targets:
        if valid.get(target):
            continue
        for node_id in graph.ancestors([target]):
            if node_id in own_issues:
                entry = node_errors.setdefault(node_id, {
                    "errors": [i.wire() for i in own_issues[node_id]],
                    "dependent_outputs": [], "class_type": calls[node_id].class_type,
                })
                entry["dependent_outputs"].append(target)

    if not good:
        error = ValidationIssue("prompt_outputs_failed_validation", "Prompt outputs failed validation", "", {})
        return ValidationResult(error, node_errors, [], converted_calls)
    if len(good) < len(targets):
        run_set = graph.ancestors(good)
        order = [n for n in order if n in run_set]
    return ValidationResult(None, node_errors, good, converted_calls, order)
