// ComfyUI UI workflow (version 0.4 or 1) → API prompt.
// The twin of engine/workflow_format.py; both run the fixtures in
// tests/workflow_format/fixtures, so keep the two in step.
import { ANY, typesCompatible } from "./types.js";
import { hasControl, widgetInputs } from "./schema.js";

export const MODE_MUTED = 2;
export const MODE_BYPASSED = 4;
export const NOTE_TYPES = new Set(["Note", "MarkdownNote"]);
export const REROUTE_TYPE = "Reroute";
export const PRIMITIVE_TYPE = "PrimitiveNode";
// ComfyUI's legacy group nodes (extra.groupNodes) have these type prefixes; Loom does not expand them.
export const GROUP_NODE_PREFIXES = ["workflow>", "workflow/"];
export const isGroupNodeType = (type) => GROUP_NODE_PREFIXES.some((p) => String(type).startsWith(p));
const SUBGRAPH_INPUT_ID = "-10";
const SUBGRAPH_OUTPUT_ID = "-20";
const CONTROL_VALUES = new Set(["fixed", "increment", "decrement", "randomize", "increment-wrap"]);
const REMOVED = Symbol("removed");

export class WorkflowConversionError extends Error {
  constructor(message, nodeId = null, classType = null) {
    super(message);
    this.name = "WorkflowConversionError";
    this.nodeId = nodeId;
    this.classType = classType;
  }
}

export const isEditorOnly = (type) => NOTE_TYPES.has(type) || type === REROUTE_TYPE || type === PRIMITIVE_TYPE;

function linksOf(raw) {
  const items = Array.isArray(raw) ? raw : raw && typeof raw === "object" ? Object.values(raw) : [];
  const links = new Map();
  for (const item of items) {
    let link;
    if (Array.isArray(item) && item.length >= 5) {
      link = { id: item[0], origin_id: item[1], origin_slot: Number(item[2]), target_id: item[3], target_slot: Number(item[4]), type: item.length > 5 ? String(item[5]) : ANY };
    } else if (item && typeof item === "object" && "id" in item) {
      link = { id: item.id, origin_id: item.origin_id, origin_slot: Number(item.origin_slot ?? 0), target_id: item.target_id, target_slot: Number(item.target_slot ?? 0), type: String(item.type ?? ANY) };
    } else continue;
    links.set(String(link.id), link);
  }
  return links;
}

/** Every subgraph definition in a workflow (nested definitions included), by id. */
export function subgraphDefinitions(workflow) {
  const found = new Map();
  const pending = [workflow];
  while (pending.length) {
    const holder = pending.pop();
    for (const sub of holder?.definitions?.subgraphs ?? []) {
      if (sub && sub.id != null && !found.has(String(sub.id))) {
        found.set(String(sub.id), sub);
        pending.push(sub);
      }
    }
  }
  return found;
}

/**
 * The widget inside subgraph `definition` that its input `index` feeds, or
 * null: {spec, node, name, schema}. Follows nested subgraph instances down
 * to a real node's widget. (ComfyUI calls such an input a promoted widget.)
 */
export function promotedTarget(definition, index, subgraphs, lookup, depth = 0) {
  if (depth > 32) return null;
  const nodes = new Map((definition.nodes ?? []).filter((n) => n && n.id != null).map((n) => [String(n.id), n]));
  for (const link of linksOf(definition.links).values()) {
    if (String(link.origin_id) !== SUBGRAPH_INPUT_ID || link.origin_slot !== index) continue;
    const node = nodes.get(String(link.target_id));
    const slots = (node?.inputs ?? []).filter(Boolean);
    const slot = slots.find((s) => String(s.link) === String(link.id)) ?? slots[link.target_slot];
    if (!slot) continue;
    const inner = subgraphs.get(String(node.type));
    if (inner) {
      const found = promotedTarget(inner, slots.indexOf(slot), subgraphs, lookup, depth + 1);
      if (found) return found;
      continue;
    }
    const name = String(slot.widget?.name ?? slot.name);
    const schema = lookup(String(node.type));
    const spec = schema?.inputs.find((s) => s.name === name && s.isWidget);
    if (spec) return { spec, node, name, schema };
  }
  return null;
}

/**
 * Where each widget input of a subgraph instance finds its value in the
 * instance's widgets_values: Map slot index → value index. One value per
 * slot that has a widget, in slot order; older files also kept a
 * control_after_generate value after a seed, recognised by the count.
 */
export function instanceValuePositions(slots, raw, targetOf) {
  const widgetSlots = [];
  slots.forEach((s, i) => { if (s && s.widget) widgetSlots.push(i); });
  const legacy = raw.length > widgetSlots.length;
  const positions = new Map();
  let at = 0;
  for (const index of widgetSlots) {
    if (at < raw.length) positions.set(index, at);
    at += 1;
    if (legacy && at < raw.length && isControl(raw[at])) {
      const spec = targetOf(index)?.spec;
      if (spec && hasControl(spec.name, spec.type, spec.options)) at += 1;
    }
  }
  return positions;
}

const isControl = (v) => typeof v === "boolean" || (typeof v === "string" && CONTROL_VALUES.has(v));
const wireValue = (v) => (Array.isArray(v) ? { __value__: v } : v);
const hasDefault = (spec) => spec.options && "default" in spec.options;

function dropLegacyForceInputs(schema, values) {
  const widgetTypes = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);
  const forced = schema.inputs.filter((s) => s.section !== "hidden" && s.forceInput && widgetTypes.has(s.type));
  if (!forced.length) return values;
  const legacy = schema.inputs.filter((s) => s.section !== "hidden" && (s.isWidget || forced.includes(s)));
  const width = legacy.reduce((n, s) => n + (hasControl(s.name, s.type, s.options) ? 2 : 1), 0);
  if (width !== values.length) return values;
  const kept = [];
  let index = 0;
  for (const spec of legacy) {
    const step = hasControl(spec.name, spec.type, spec.options) ? 2 : 1;
    if (!forced.includes(spec)) kept.push(...values.slice(index, index + step));
    index += step;
  }
  return kept;
}

/** Widget values by input name, read from a serialised node. `warn` hears of values
 *  where widgets_values and Loom's widgets_values_named disagree (the list wins, as in ComfyUI). */
export function widgetValuesOf(node, schema, execId = String(node.id), warn = null) {
  const specs = widgetInputs(schema);
  let named = node.widgets_values_named;
  let raw = node.widgets_values;
  if (raw && typeof raw === "object" && !Array.isArray(raw)) {
    named = { ...raw, ...(named ?? {}) };
    raw = null;
  }
  if (raw != null && !Array.isArray(raw)) {
    throw new WorkflowConversionError(`node #${execId} (${schema.classType}): widgets_values must be a list`, execId, schema.classType);
  }
  const positional = dropLegacyForceInputs(schema, Array.isArray(raw) ? raw : []);
  const values = {};
  const fromList = new Set();
  let index = 0;
  for (const spec of specs) {
    if (index < positional.length) {
      values[spec.name] = positional[index];
      fromList.add(spec.name);
      index += 1;
      if (hasControl(spec.name, spec.type, spec.options) && index < positional.length && isControl(positional[index])) index += 1;
    } else if (hasDefault(spec)) {
      values[spec.name] = spec.options.default;
    }
  }
  if (named && typeof named === "object") {
    // ComfyUI reads the list; the names only fill what it lacks, or replace it when it no
    // longer lines up with the node's widgets (the node gained or lost some).
    const listFits = index === positional.length && fromList.size === specs.length;
    for (const spec of specs) {
      if (!(spec.name in named)) continue;
      if (listFits && fromList.has(spec.name)) {
        if (JSON.stringify(named[spec.name]) !== JSON.stringify(values[spec.name])) {
          warn?.(`node #${execId} (${schema.classType}): widgets_values gives ${spec.name} = ${JSON.stringify(values[spec.name])} but widgets_values_named says ${JSON.stringify(named[spec.name])}; using widgets_values, as ComfyUI does`);
        }
        continue;
      }
      values[spec.name] = named[spec.name];
    }
  }
  for (const spec of specs) {
    const v = values[spec.name];
    if (typeof v === "number" && !Number.isFinite(v)) {
      if (hasDefault(spec)) values[spec.name] = spec.options.default;
      else delete values[spec.name];
    }
  }
  return values;
}

class Converter {
  constructor(workflow, schemas) {
    if (!workflow || typeof workflow !== "object" || Array.isArray(workflow)) throw new WorkflowConversionError("the workflow must be a JSON object");
    if (!("nodes" in workflow)) throw new WorkflowConversionError("this is not a UI workflow (it has no 'nodes' list); an API prompt can be queued as it is");
    this.lookup = typeof schemas === "function" ? schemas : (t) => (schemas instanceof Map ? schemas.get(t) : schemas[t]) ?? null;
    this.subgraphs = subgraphDefinitions(workflow);
    this.prompt = {};
  }

  schema(node) { return this.lookup(String(node.type)); }

  scopeOf(nodes, links, extra = {}) {
    const byId = new Map();
    for (const node of nodes ?? []) {
      if (!node || typeof node !== "object" || node.id == null) throw new WorkflowConversionError(`a node has no id: ${JSON.stringify(node).slice(0, 80)}`);
      byId.set(String(node.id), node);
    }
    const scope = { nodes: byId, links: linksOf(links), path: [], parent: null, instance: null, ...extra };
    scope.execId = (id) => [...scope.path, String(id)].join(":");
    return scope;
  }

  run(workflow) {
    const root = this.scopeOf(workflow.nodes, workflow.links);
    this.checkTypes(root);
    this.emitScope(root);
    for (const entry of Object.values(this.prompt)) {
      for (const [name, value] of Object.entries(entry.inputs)) {
        if (Array.isArray(value) && value.length === 2 && !(value[0] in this.prompt)) delete entry.inputs[name];
      }
    }
    return this.prompt;
  }

  checkTypes(scope) {
    const unknown = [];
    for (const [nid, node] of scope.nodes) {
      const t = String(node.type);
      if (!isEditorOnly(t) && !this.subgraphs.has(t) && !this.schema(node) && node.mode !== MODE_MUTED) unknown.push([nid, node.type]);
    }
    const group = unknown.find(([, t]) => isGroupNodeType(t));
    if (group) {
      throw new WorkflowConversionError(
        `node #${scope.execId(group[0])} '${group[1]}' is a ComfyUI group node, which Loom does not run; ungroup it in ComfyUI (or convert it to a subgraph) and save the workflow again`,
        scope.execId(group[0]), String(group[1]));
    }
    if (unknown.length) {
      const names = unknown.map(([nid, t]) => `#${scope.execId(nid)} '${t}'`).join(", ");
      const one = unknown.length === 1;
      throw new WorkflowConversionError(
        `this server has no node type for ${names}; install the node pack that provides ${one ? "it" : "them"} or remove ${one ? "it" : "them"}`,
        scope.execId(unknown[0][0]), String(unknown[0][1]));
    }
  }

  childScope(scope, instance) {
    const definition = this.subgraphs.get(String(instance.type));
    const path = [...scope.path, String(instance.id)];
    if (path.length > 32) {
      throw new WorkflowConversionError(`subgraph '${definition.name ?? instance.type}' contains itself`, path.slice(0, -1).join(":"), String(instance.type));
    }
    const child = this.scopeOf(definition.nodes, definition.links, { path, parent: scope, instance });
    this.checkTypes(child);
    return child;
  }

  emitScope(scope) {
    for (const node of scope.nodes.values()) {
      const mode = node.mode ?? 0;
      if (mode === MODE_MUTED || mode === MODE_BYPASSED || isEditorOnly(String(node.type))) continue;
      if (this.subgraphs.has(String(node.type))) { this.emitScope(this.childScope(scope, node)); continue; }
      this.emitNode(scope, node);
    }
  }

  emitNode(scope, node) {
    const schema = this.schema(node);
    const execId = scope.execId(node.id);
    const inputs = {};
    for (const [name, value] of Object.entries(widgetValuesOf(node, schema, execId))) inputs[name] = wireValue(value);
    for (const slot of node.inputs ?? []) {
      if (!slot || slot.link == null) continue;
      const resolved = this.resolveInput(scope, node, slot, new Set());
      if (resolved == null) continue;
      const name = String(slot.name);
      if (resolved === REMOVED) inputs[name] = ["\u0000removed", 0];
      else if ("literal" in resolved) inputs[name] = wireValue(resolved.literal);
      else inputs[name] = [resolved.nodeId, resolved.slot];
    }
    this.prompt[execId] = { inputs, class_type: schema.classType, _meta: { title: String(node.title || schema.displayName) } };
  }

  resolveInput(scope, node, slot, visited) {
    const link = scope.links.get(String(slot.link));
    if (!link) return null;
    const want = String(slot.type || ANY);
    if (String(link.origin_id) === SUBGRAPH_INPUT_ID && scope.parent) return this.resolveSubgraphInput(scope, link.origin_slot, visited);
    const origin = scope.nodes.get(String(link.origin_id));
    if (!origin) return null;
    return this.resolveOutput(scope, origin, link.origin_slot, want, visited);
  }

  resolveSubgraphInput(scope, index, visited) {
    const { instance, parent } = scope;
    const slots = instance.inputs ?? [];
    if (index >= slots.length) return null;
    const slot = slots[index];
    if (slot.link != null) return this.resolveInput(parent, instance, slot, visited);
    const raw = instance.widgets_values;
    if (slot.widget && Array.isArray(raw)) {
      const definition = this.subgraphs.get(String(instance.type));
      const positions = instanceValuePositions(slots, raw, (i) => promotedTarget(definition, i, this.subgraphs, this.lookup));
      if (positions.has(index)) return { literal: raw[positions.get(index)] };
    }
    return null;
  }

  resolveOutput(scope, node, slot, want, visited) {
    const execId = scope.execId(node.id);
    const key = `${execId}[O]${slot}`;
    if (visited.has(key)) {
      throw new WorkflowConversionError(`node #${execId} (${node.type}) is part of a loop of reroutes or bypassed nodes`, execId, String(node.type));
    }
    visited.add(key);
    const type = String(node.type);
    const mode = node.mode ?? 0;
    if (mode === MODE_BYPASSED) {
      const index = bypassInput(node, slot, want);
      return index < 0 ? null : this.resolveInput(scope, node, node.inputs[index], visited);
    }
    if (this.subgraphs.has(type)) {
      if (mode === MODE_MUTED) return REMOVED;
      return this.resolveSubgraphOutput(scope, node, slot, want, visited);
    }
    if (type === REROUTE_TYPE) {
      const slots = node.inputs ?? [];
      return slots.length ? this.resolveInput(scope, node, slots[0], visited) : null;
    }
    if (type === PRIMITIVE_TYPE) {
      const raw = node.widgets_values;
      return Array.isArray(raw) && raw.length ? { literal: raw[0] } : null;
    }
    if (NOTE_TYPES.has(type)) return null;
    if (mode === MODE_MUTED) return REMOVED;
    return { nodeId: execId, slot };
  }

  resolveSubgraphOutput(scope, instance, slot, want, visited) {
    const child = this.childScope(scope, instance);
    for (const link of child.links.values()) {
      if (String(link.target_id) === SUBGRAPH_OUTPUT_ID && link.target_slot === slot) {
        if (String(link.origin_id) === SUBGRAPH_INPUT_ID) return this.resolveSubgraphInput(child, link.origin_slot, visited);
        const origin = child.nodes.get(String(link.origin_id));
        return origin ? this.resolveOutput(child, origin, link.origin_slot, want, visited) : null;
      }
    }
    return null;
  }
}

/** The input a bypassed node passes to output `slot` (ComfyUI's order), or -1. */
export function bypassInput(node, slot, want) {
  const inputs = node.inputs ?? [];
  const types = inputs.map((s) => String(s.type || ANY));
  const outputs = node.outputs ?? [];
  const outType = slot < outputs.length ? String(outputs[slot].type || ANY) : ANY;
  if (!inputs.length) return -1;
  if (want === ANY || want === "") return slot < inputs.length ? slot : 0;
  if (slot < inputs.length && typesCompatible(types[slot], outType) && typesCompatible(types[slot], want)) return slot;
  const exact = types.indexOf(want);
  if (exact !== -1) return exact;
  return types.findIndex((t) => typesCompatible(t, outType) && typesCompatible(t, want));
}

/**
 * Convert a UI workflow to an API prompt. `schemas` is a Map / object of
 * class type → schema (see schema.js) or a lookup function.
 * Throws WorkflowConversionError naming the node at fault.
 */
export function workflowToApi(workflow, schemas) {
  return new Converter(workflow, schemas).run(workflow);
}
