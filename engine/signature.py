"""Cache keys: a node's signature is a sha256 of its class, version, literal
inputs, upstream signatures and fingerprint (``IS_CHANGED``).  Nothing else
decides reuse.  Computed in topological order, each node once: linear."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from typing import Any, Mapping

from .awaiting import resolve
from .node import NodeDefinition
from .prompt import Link, ListLiteral, NodeCall
from .schema import NodeSchema


def _encode(value: Any) -> str:
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return "n" + repr(value)
    if isinstance(value, ListLiteral):
        value = {"__value__": value.value}
    return "j" + json.dumps(value, sort_keys=True, default=repr)


def _always_changes(fingerprint: Any) -> bool:
    return isinstance(fingerprint, float) and math.isnan(fingerprint)


def fingerprint_of(definition: NodeDefinition, call: NodeCall, env: Any = None,
                   schema: NodeSchema | None = None) -> Any:
    """``IS_CHANGED`` as ComfyUI's IsChangedCache calls it: on the prompt's
    constants — every input the node is given, a linked one as ``None`` (its
    value does not exist yet; the upstream signature covers it) — plus the
    hidden inputs.  A failing hook means 'always re-run' (as in ComfyUI)."""
    if not definition.has_fingerprint:
        return None
    literals = {k: (None if isinstance(v, Link) else v.value if isinstance(v, ListLiteral) else v)
                for k, v in call.inputs.items()}
    for spec in (schema.section("hidden") if schema is not None else ()):
        literals.setdefault(spec.name, call.id if spec.type == "UNIQUE_ID" else
                            {} if spec.type == "PROMPT" else None)
    try:
        return resolve(definition.fingerprint(None, literals, env))
    except Exception:
        return float("nan")


def node_signature(
    call: NodeCall,
    schema: NodeSchema,
    definition: NodeDefinition,
    upstream: Mapping[str, str],
    env: Any = None,
) -> str:
    """The signature of one node given its sources' signatures."""
    parts = [call.class_type, schema.version]
    for name in sorted(call.inputs):
        value = call.inputs[name]
        if isinstance(value, Link):
            parts.append(f"{name}>{upstream.get(value.node, 'missing:' + value.node)}:{value.slot}")
        else:
            parts.append(f"{name}={_encode(value)}")
    fingerprint = fingerprint_of(definition, call, env, schema)
    if schema.not_idempotent or _always_changes(fingerprint):
        parts.append("nonce=" + secrets.token_hex(16))
    elif fingerprint is not None:
        parts.append("fp=" + _encode(fingerprint))
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
