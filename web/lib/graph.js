// The editor's graph model: nodes, links, groups, and their UI-format JSON.
// Pure (no DOM), so it is unit tested under node.
//
// Files round-trip through ComfyUI's UI format in the version they were read
// (0.4, or 1 with link objects and top-level reroutes; new graphs are 0.4).
// Keys this editor does not understand are kept on every node, link holder and
// the workflow itself, so a file saved by ComfyUI and re-saved here loses nothing.
// Subgraph instances are drawn from their definitions (subgraphs.js), and a
// definition's inside opens as a Graph of its own (subgraph_edit.js); native
// reroutes are points links are drawn through (reroutes.js).
import { ANY, linkRefusal } from "./types.js";
import { defaultValue, hasControl, socketInputs, widgetInputs } from "./schema.js";
import { NOTE_TYPES, PRIMITIVE_TYPE, REROUTE_TYPE, widgetValuesOf } from "./workflow_to_api.js";
import { promotedValues, proxyWidgetSpecs, subgraphDefinitions, subgraphSchema } from "./subgraphs.js";
import { forgetLink, readReroutes, serializeReroutes } from "./reroutes.js";

export const MODE_ALWAYS = 0;
export const MODE_MUTED = 2;
export const MODE_BYPASSED = 4;

const NODE_KEYS = new Set(["id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties", "widgets_values", "widgets_values_named", "title", "color", "bgcolor"]);
const WORKFLOW_KEYS = new Set(["last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra", "version", "state", "definitions", "reroutes"]);

/** Editor-side node types that are not on the server. */
export const EDITOR_TYPES = {
  Note: { classType: "Note", displayName: "Note", category: "utils", description: "A note on the canvas; never runs.", inputs: [{ name: "text", type: "STRING", section: "required", options: { multiline: true, default: "" }, isWidget: true }], outputs: [], outputNode: false, editorOnly: true },
  MarkdownNote: { classType: "MarkdownNote", displayName: "Markdown Note", category: "utils", description: "A note on the canvas; never runs.", inputs: [{ name: "text", type: "STRING", section: "required", options: { multiline: true, default: "" }, isWidget: true }], outputs: [], outputNode: false, editorOnly: true },
  Reroute: { classType: "Reroute", displayName: "Reroute", category: "utils", description: "Passes its input through, to tidy long links.", inputs: [{ name: "", type: ANY, section: "required", options: {}, isWidget: false }], outputs: [{ name: "", type: ANY }], outputNode: false, editorOnly: true },
  PrimitiveNode: { classType: "PrimitiveNode", displayName: "Primitive", category: "utils", description: "A value that feeds widget inputs.", inputs: [], outputs: [{ name: "connect to widget input", type: ANY }], outputNode: false, editorOnly: true },
};

export class Graph {
  constructor(schemaLookup = () => null) {
    // Types inside subgraph definitions resolve without the subgraphs themselves (those recurse in subgraphs.js).
    this.innerLookup = (type) => EDITOR_TYPES[type] ?? schemaLookup(type);
    this.lookup = (type) => EDITOR_TYPES[type] ?? this.localSchemas.get(String(type)) ?? this.subgraphSchemas.get(String(type)) ?? schemaLookup(type);
    // Types only this graph knows: the boundary nodes of a subgraph opened for editing (subgraph_edit.js).
    this.localSchemas = new Map();
    this.subgraphs = new Map();
    this.subgraphSchemas = new Map();
    this.reroutes = new Map();
    this.rerouteKeys = { reroutes: false, linkExtensions: false };
    this.formatVersion = 0.4;
    this.state = null;
    this.nodes = new Map();
    this.links = new Map();
    this.groups = [];
    this.lastNodeId = 0;
    this.lastLinkId = 0;
    this.extra = {};
    this.config = {};
    this.rest = {};
    this.version = 0;  // bumps on every change, so views know when to redraw
  }

  touch() { this.version += 1; }

  // ---------------------------------------------------------------- nodes

  /** Create a node of `type` from its schema at `pos` (world coordinates). */
  addNode(type, pos = [0, 0], opts = {}) {
    const schema = this.lookup(type);
    const id = opts.id ?? ++this.lastNodeId;
    this.lastNodeId = Math.max(this.lastNodeId, Number(id) || 0);
    const node = {
      id, type, pos: [...pos], size: null, flags: {}, order: 0, mode: MODE_ALWAYS,
      inputs: [], outputs: [], properties: { "Node name for S&R": type }, values: {}, controls: {}, rest: {},
      missing: !schema, title: undefined,
    };
    if (schema) {
      node.inputs = socketInputs(schema).map((s) => ({ name: s.name, type: s.type, link: null }));
      node.outputs = schema.outputs.map((o, i) => ({ name: o.name, type: o.type, links: [], slot_index: i }));
      for (const spec of widgetInputs(schema)) {
        node.values[spec.name] = defaultValue(spec);
        if (hasControl(spec.name, spec.type, spec.options)) node.controls[spec.name] = spec.options.control_after_generate && typeof spec.options.control_after_generate === "string" ? spec.options.control_after_generate : "randomize";
      }
    }
    this.nodes.set(id, node);
    this.touch();
    return node;
  }

  /** A node's schema; a subgraph instance with proxy widgets has its own (they differ per instance). */
  schemaOf(node) { return node.missing ? null : node.ownSchema ?? this.lookup(node.type); }

  removeNode(id) {
    const node = this.nodes.get(id);
    if (!node) return;
    for (const input of node.inputs) if (input.link != null) this.removeLink(input.link);
    for (const output of node.outputs) for (const l of [...(output.links ?? [])]) this.removeLink(l);
    this.nodes.delete(id);
    this.touch();
  }

  // ---------------------------------------------------------------- links

  /** Why origin→target cannot be linked, or null. */
  canConnect(originId, originSlot, targetId, inputName) {
    const origin = this.nodes.get(originId);
    const target = this.nodes.get(targetId);
    if (!origin || !target) return "the node is gone";
    if (originId === targetId) return "a node cannot feed itself";
    const out = origin.outputs[originSlot];
    if (!out) return "no such output";
    const inputType = this.inputType(target, inputName);
    if (inputType == null) return `${target.type} has no input '${inputName}'`;
    if (target.type === PRIMITIVE_TYPE) return "a primitive has no inputs";
    const refusal = linkRefusal(out.type, inputType);
    if (refusal) return refusal;
    if (this.reaches(targetId, originId)) return "that link would make a loop";
    return null;
  }

  /** The type of input `name` on `node`: a socket, or a widget that may take a link. */
  inputType(node, name) {
    const slot = node.inputs.find((i) => i.name === name);
    if (slot) return slot.type;
    const spec = this.schemaOf(node)?.inputs.find((s) => s.name === name && s.isWidget);
    return spec ? spec.type : null;
  }

  /** Whether `fromId` feeds `toId` through links (a new link toId→fromId would loop). */
  reaches(fromId, toId) {
    const seen = new Set();
    const stack = [fromId];
    while (stack.length) {
      const id = stack.pop();
      if (id === toId) return true;
      if (seen.has(id)) continue;
      seen.add(id);
      const node = this.nodes.get(id);
      for (const out of node?.outputs ?? []) for (const l of out.links ?? []) {
        const link = this.links.get(l);
        if (link) stack.push(link.target_id);
      }
    }
    return false;
  }

  /** Link origin output → target input `inputName`; a widget input becomes a slot. Returns the link or throws with the reason. */
  connect(originId, originSlot, targetId, inputName) {
    const reason = this.canConnect(originId, originSlot, targetId, inputName);
    if (reason) throw new Error(reason);
    const origin = this.nodes.get(originId);
    const target = this.nodes.get(targetId);
    let index = target.inputs.findIndex((i) => i.name === inputName);
    if (index === -1) {  // convert a widget to an input
      const spec = this.schemaOf(target).inputs.find((s) => s.name === inputName);
      target.inputs.push({ name: inputName, type: spec.type, link: null, widget: { name: inputName } });
      index = target.inputs.length - 1;
    }
    const slot = target.inputs[index];
    if (slot.link != null) this.removeLink(slot.link, { keepWidgetSlot: true });
    const id = ++this.lastLinkId;
    const out = origin.outputs[originSlot];
    const link = { id, origin_id: originId, origin_slot: originSlot, target_id: targetId, target_slot: index, type: out.type === ANY ? slot.type : out.type };
    this.links.set(id, link);
    slot.link = id;
    (out.links ??= []).push(id);
    if (origin.type === PRIMITIVE_TYPE) this.adoptPrimitive(origin, target, inputName);
    this.touch();
    return link;
  }

  /** A primitive takes the type and value of the first widget it feeds. */
  adoptPrimitive(primitive, target, inputName) {
    const spec = this.schemaOf(target)?.inputs.find((s) => s.name === inputName);
    if (!spec) return;
    const out = primitive.outputs[0];
    if (out.type === ANY || !out.widget) {
      out.type = spec.type;
      out.name = spec.type;
      out.widget = { name: inputName };
      primitive.primitiveSpec = { ...spec, name: "value" };
      primitive.values = { value: target.values[inputName] ?? defaultValue(spec) };
      if (hasControl(spec.name, spec.type, spec.options)) primitive.controls = { value: "fixed" };
    }
  }

  removeLink(id, { keepWidgetSlot = false } = {}) {
    const link = this.links.get(id);
    if (!link) return;
    this.links.delete(id);
    forgetLink(this.reroutes, id);
    const origin = this.nodes.get(link.origin_id);
    const out = origin?.outputs[link.origin_slot];
    if (out?.links) out.links = out.links.filter((l) => l !== id);
    const target = this.nodes.get(link.target_id);
    if (target) {
      const index = target.inputs.findIndex((i) => i.link === id);
      if (index !== -1) {
        const slot = target.inputs[index];
        slot.link = null;
        // A widget turned input goes back to being a widget once unlinked.
        if (slot.widget && !keepWidgetSlot && !slot.keep) this.removeInputSlot(target, index);
      }
    }
    this.touch();
  }

  removeInputSlot(node, index) {
    node.inputs.splice(index, 1);
    for (let i = index; i < node.inputs.length; i++) {
      const l = this.links.get(node.inputs[i].link);
      if (l) l.target_slot = i;
    }
  }

  linkInto(node, inputName) {
    const slot = node.inputs.find((i) => i.name === inputName);
    return slot?.link != null ? this.links.get(slot.link) ?? null : null;
  }

  // ---------------------------------------------------------------- serialisation

  /** The workflow in ComfyUI's UI format, the version it was read in (plus Loom's widgets_values_named). */
  serialize() {
    const nodes = [...this.nodes.values()].map((n) => this.serializeNode(n));
    // Saved slots may sit elsewhere than in memory (a subgraph instance writes all its inputs).
    const savedSlot = new Map();
    for (const n of nodes) n.inputs.forEach((slot, k) => { if (slot.link != null) savedSlot.set(slot.link, k); });
    const targetSlot = (l) => savedSlot.get(l.id) ?? l.target_slot;
    const groups = this.groups.map((g) => ({ ...g.rest, title: g.title, bounding: [...g.bounding], color: g.color, font_size: g.font_size ?? 24, flags: g.flags ?? {} }));
    const reroutes = serializeReroutes(this.reroutes);
    if (this.formatVersion === 1) {
      const links = [...this.links.values()].map((l) => ({
        id: l.id, origin_id: l.origin_id, origin_slot: l.origin_slot, target_id: l.target_id, target_slot: targetSlot(l), type: l.type,
        ...(l.parentId != null ? { parentId: l.parentId } : {}),
      }));
      const lastRerouteId = Math.max(Number(this.state?.lastRerouteId) || 0, ...reroutes.map((r) => Number(r.id) || 0));
      return {
        ...this.rest,
        version: 1,
        state: { ...(this.state ?? {}), lastNodeId: this.lastNodeId, lastLinkId: this.lastLinkId, lastRerouteId },
        nodes,
        links,
        groups,
        config: this.config,
        extra: this.extra,
        ...(reroutes.length || this.rerouteKeys.reroutes ? { reroutes } : {}),
      };
    }
    const extra = { ...this.extra };
    if (reroutes.length || this.rerouteKeys.reroutes) extra.reroutes = reroutes;
    const extensions = [...this.links.values()].filter((l) => l.parentId != null).map((l) => ({ id: l.id, parentId: l.parentId }));
    if (extensions.length || this.rerouteKeys.linkExtensions) extra.linkExtensions = extensions;
    return {
      ...this.rest,
      last_node_id: this.lastNodeId,
      last_link_id: this.lastLinkId,
      nodes,
      links: [...this.links.values()].map((l) => [l.id, l.origin_id, l.origin_slot, l.target_id, targetSlot(l), l.type]),
      groups,
      config: this.config,
      extra,
      version: 0.4,
    };
  }

  serializeNode(n) {
    const out = {
      ...n.rest,
      id: n.id,
      type: n.type,
      pos: [...n.pos],
      size: n.size ? [...n.size] : [240, 80],
      flags: { ...n.flags },
      order: n.order ?? 0,
      mode: n.mode,
      inputs: n.inputs.map((i) => ({ ...i })),
      outputs: n.outputs.map((o, k) => ({ ...o, links: o.links?.length ? [...o.links] : (o.links === null || o.nullWhenEmpty ? null : []), slot_index: k })),
      properties: { ...n.properties },
    };
    if (n.title !== undefined) out.title = n.title;
    if (n.color) out.color = n.color;
    if (n.bgcolor) out.bgcolor = n.bgcolor;
    if (n.subgraph) return this.serializeInstance(n, out);
    if (n.missing) {
      if (n.rawWidgets !== undefined) out.widgets_values = n.rawWidgets;
      if (n.rawNamed !== undefined) out.widgets_values_named = n.rawNamed;
      return out;
    }
    const specs = n.primitiveSpec ? [n.primitiveSpec] : widgetInputs(this.schemaOf(n) ?? { inputs: [] });
    if (specs.length) {
      const positional = [];
      const named = {};
      for (const spec of specs) {
        positional.push(n.values[spec.name]);
        named[spec.name] = n.values[spec.name];
        if (spec.name in n.controls) positional.push(n.controls[spec.name]);
      }
      out.widgets_values = positional;
      if (!NOTE_TYPES.has(n.type) && n.type !== PRIMITIVE_TYPE) out.widgets_values_named = named;
    } else if (n.type === PRIMITIVE_TYPE && n.rawWidgets !== undefined) {
      out.widgets_values = n.rawWidgets;
    }
    return out;
  }

  /** A subgraph instance as ComfyUI writes one: every input of the definition in
   *  order (promoted widget inputs carry `widget`), and one value per widget input. */
  serializeInstance(n, out) {
    const schema = this.schemaOf(n);
    const inputs = [];
    const written = new Set();
    for (const spec of schema.inputs) {
      if (spec.proxy) continue;  // a view of an inner node's widget, saved in the definition
      const slot = n.inputs.find((i) => i.name === spec.name && !written.has(i));
      if (slot) {
        written.add(slot);
        inputs.push(spec.isWidget ? { ...slot, widget: slot.widget ?? { name: spec.name } } : { ...slot });
      } else if (spec.isWidget) {
        inputs.push({ ...(n.hiddenSlots?.get(spec.name) ?? {}), name: spec.name, type: spec.slotType ?? spec.type, link: null, widget: { name: spec.name } });
      } else {
        inputs.push({ name: spec.name, type: spec.type, link: null });
      }
    }
    for (const slot of n.inputs) if (!written.has(slot)) inputs.push({ ...slot });
    out.inputs = inputs;
    const values = inputs.filter((i) => i.widget).map((i) => n.values[i.name]);
    if (values.length) out.widgets_values = values;
    else if (n.rawWidgets !== undefined) out.widgets_values = n.rawWidgets;
    return out;
  }

  /** Load a UI-format workflow (0.4, or version 1 with link objects). */
  static fromJSON(data, schemaLookup) {
    const g = new Graph(schemaLookup);
    g.load(data);
    return g;
  }

  /** `subgraphs`: the definitions an opened subgraph's inside uses (its root's); a root graph reads its own. */
  load(data, { subgraphs = null } = {}) {
    if (!data || !Array.isArray(data.nodes)) throw new Error("this file is not a workflow (no 'nodes' list)");
    this.nodes.clear();
    this.links.clear();
    /** What loading noticed but could read anyway (e.g. widget values that disagree). */
    this.warnings = [];
    this.rest = Object.fromEntries(Object.entries(data).filter(([k]) => !WORKFLOW_KEYS.has(k)));
    // Our own copy: editing inside a subgraph writes into these definitions (subgraph_edit.js).
    if (data.definitions && !subgraphs) this.rest.definitions = structuredClone(data.definitions);
    this.formatVersion = data.version === 1 ? 1 : 0.4;
    this.state = data.state && typeof data.state === "object" ? { ...data.state } : null;
    this.subgraphs = subgraphs ?? subgraphDefinitions(this.rest);
    this.subgraphSchemas = this.buildSubgraphSchemas();
    const { reroutes, parents, had } = readReroutes(data);
    this.reroutes = reroutes;
    this.rerouteKeys = had;
    this.extra = { ...(data.extra ?? {}) };
    if (this.formatVersion !== 1) { delete this.extra.reroutes; delete this.extra.linkExtensions; }  // written back from this.reroutes
    this.config = data.config ?? {};
    this.lastNodeId = Number(data.last_node_id ?? data.state?.lastNodeId ?? 0) || 0;
    this.lastLinkId = Number(data.last_link_id ?? data.state?.lastLinkId ?? 0) || 0;
    for (const raw of data.nodes) this.loadNode(raw);
    const linkItems = Array.isArray(data.links) ? data.links : Object.values(data.links ?? {});
    for (const item of linkItems) {
      if (!item) continue;
      const link = Array.isArray(item)
        ? { id: item[0], origin_id: item[1], origin_slot: item[2], target_id: item[3], target_slot: item[4], type: item[5] ?? ANY }
        : { id: item.id, origin_id: item.origin_id, origin_slot: item.origin_slot, target_id: item.target_id, target_slot: item.target_slot, type: item.type ?? ANY, ...(item.parentId != null ? { parentId: item.parentId } : {}) };
      if (link.parentId == null && parents.has(link.id)) link.parentId = parents.get(link.id);
      this.links.set(link.id, link);
      this.lastLinkId = Math.max(this.lastLinkId, Number(link.id) || 0);
    }
    this.groups = (data.groups ?? []).map((g) => {
      const { title, bounding, color, font_size, flags, ...rest } = g;
      return { title: title ?? "Group", bounding: [...(bounding ?? [0, 0, 300, 200])], color: color ?? "#3f789e", font_size, flags, rest };
    });
    this.resolvePrimitives();
    // Links into slots that the load dropped (unlinked widget slots) keep their indices right.
    for (const node of this.nodes.values()) node.inputs.forEach((slot, i) => { const l = this.links.get(slot.link); if (l) l.target_slot = i; });
    this.touch();
  }

  buildSubgraphSchemas() {
    return new Map([...this.subgraphs].map(([id, def]) => [id, subgraphSchema(def, this.subgraphs, this.innerLookup)]));
  }

  /** After a definition changed: instances take its new promoted widgets and the inner
   *  values their proxy widgets show; links keep pointing at the right slots. */
  refreshInstances() {
    this.subgraphSchemas = this.buildSubgraphSchemas();
    for (const node of this.nodes.values()) {
      if (!node.subgraph) continue;
      const schema = this.lookup(node.type);
      const definition = this.subgraphs.get(String(node.type));
      const widgets = new Set(schema.inputs.filter((s) => s.isWidget).map((s) => s.name));
      node.hiddenSlots ??= new Map();
      node.inputs = node.inputs.filter((slot) => {
        if (slot.link != null || !widgets.has(slot.name)) return true;
        node.hiddenSlots.set(slot.name, slot);
        return false;
      });
      for (const slot of node.inputs) if (slot.widget && !widgets.has(slot.name) && schema.inputs.some((s) => s.name === slot.name)) delete slot.widget;
      for (const s of schema.inputs) {
        if (!s.isWidget && !node.inputs.some((i) => i.name === s.name)) node.inputs.push({ ...(node.hiddenSlots.get(s.name) ?? {}), name: s.name, type: s.type, link: null, widget: undefined });
      }
      for (const slot of node.inputs) if (slot.widget === undefined) delete slot.widget;
      const inner = promotedValues({ inputs: [], widgets_values: [] }, definition, this.subgraphs, this.innerLookup);
      const values = {};
      for (const name of widgets) values[name] = name in node.values ? node.values[name] : inner[name];
      node.values = values;
      this.attachProxies(node, schema, definition);
    }
    for (const node of this.nodes.values()) node.inputs.forEach((slot, i) => { const l = this.links.get(slot.link); if (l) l.target_slot = i; });
    this.touch();
  }

  /** Widgets shown on an instance by its properties.proxyWidgets: values read from the inner nodes. */
  attachProxies(node, schema, definition) {
    const proxies = proxyWidgetSpecs(node.properties, definition, this.innerLookup);
    node.ownSchema = proxies.length ? { ...schema, inputs: [...schema.inputs, ...proxies.map((p) => p.spec)] } : undefined;
    if (!proxies.length) delete node.ownSchema;
    for (const p of proxies) node.values[p.spec.name] = p.value;
  }

  /** Node types this server lacks, inside subgraph definitions too (muted nodes don't count, as in the converter). */
  missingTypes() {
    const missing = new Set([...this.nodes.values()].filter((n) => n.missing).map((n) => String(n.type)));
    for (const def of this.subgraphs.values()) {
      for (const n of def.nodes ?? []) {
        const t = String(n?.type);
        if (n && n.mode !== MODE_MUTED && !this.subgraphs.has(t) && !this.innerLookup(t)) missing.add(t);
      }
    }
    return [...missing];
  }

  loadNode(raw) {
    const schema = this.lookup(raw.type);
    const node = {
      id: raw.id, type: raw.type, pos: sanePair(raw.pos, [0, 0]), size: raw.size ? sanePair(raw.size, [240, 80]) : null,
      flags: { ...(raw.flags ?? {}) }, order: raw.order ?? 0, mode: raw.mode ?? 0,
      inputs: (raw.inputs ?? []).filter(Boolean).map((i) => ({ ...i })),
      outputs: (raw.outputs ?? []).filter(Boolean).map((o) => outputSlot(o)),
      properties: { ...(raw.properties ?? {}) }, values: {}, controls: {}, title: raw.title, color: raw.color, bgcolor: raw.bgcolor,
      rest: Object.fromEntries(Object.entries(raw).filter(([k]) => !NODE_KEYS.has(k))),
      missing: !schema,
    };
    if (schema?.subgraph) {
      this.loadInstance(node, raw, schema);
      this.nodes.set(node.id, node);
      this.lastNodeId = Math.max(this.lastNodeId, Number(node.id) || 0);
      return node;
    }
    if (node.missing || raw.type === PRIMITIVE_TYPE) {
      node.rawWidgets = raw.widgets_values;
      node.rawNamed = raw.widgets_values_named;
    }
    if (!node.missing) {
      if (raw.type === PRIMITIVE_TYPE) {
        this.loadPrimitive(node, raw);
      } else {
        node.values = widgetValuesOf(raw, schema, String(raw.id), (message) => this.warnings.push(message));
        for (const spec of widgetInputs(schema)) {
          if (!(spec.name in node.values)) node.values[spec.name] = defaultValue(spec);
          if (hasControl(spec.name, spec.type, spec.options)) node.controls[spec.name] = controlFrom(raw, schema, spec) ?? "randomize";
        }
        // Sockets the schema has but the file lacks (a node that gained inputs) appear unlinked.
        for (const s of socketInputs(schema)) if (!node.inputs.some((i) => i.name === s.name)) node.inputs.push({ name: s.name, type: s.type, link: null });
        // Unlinked widget slots written by newer ComfyUI versions are just widgets here.
        node.inputs = node.inputs.filter((i) => !(i.widget && i.link == null && !i.label));
      }
    }
    this.nodes.set(node.id, node);
    this.lastNodeId = Math.max(this.lastNodeId, Number(node.id) || 0);
    return node;
  }

  /** A subgraph instance: promoted widget values; unlinked widget slots become widgets (their keys kept for saving). */
  loadInstance(node, raw, schema) {
    node.subgraph = true;
    const definition = this.subgraphs.get(String(raw.type));
    node.values = promotedValues(raw, definition, this.subgraphs, this.innerLookup);
    const widgets = new Set(schema.inputs.filter((s) => s.isWidget).map((s) => s.name));
    node.hiddenSlots = new Map();
    node.inputs = node.inputs.filter((i) => {
      if (i.link != null || !widgets.has(i.name)) return true;
      node.hiddenSlots.set(i.name, i);
      return false;
    });
    for (const s of schema.inputs) {
      if (!s.isWidget && !node.inputs.some((i) => i.name === s.name)) node.inputs.push({ name: s.name, type: s.type, link: null });
    }
    if (node.outputs.length < schema.outputs.length) {
      schema.outputs.slice(node.outputs.length).forEach((o) => node.outputs.push({ name: o.name, type: o.type, links: [] }));
    }
    if (raw.widgets_values !== undefined && !widgets.size) node.rawWidgets = raw.widgets_values;
    this.attachProxies(node, schema, definition);
  }

  loadPrimitive(node, raw) {
    node.primitivePending = { values: raw.widgets_values ?? [] };
  }

  /** After load: primitives learn their spec from the widget they feed. */
  resolvePrimitives() {
    for (const node of this.nodes.values()) {
      if (node.type !== PRIMITIVE_TYPE || !node.primitivePending) continue;
      const out = node.outputs[0];
      const linkId = out?.links?.[0];
      const link = this.links.get(linkId);
      const target = link && this.nodes.get(link.target_id);
      const name = out?.widget?.name ?? (target && target.inputs[link.target_slot]?.name);
      const spec = target && this.schemaOf(target)?.inputs.find((s) => s.name === name);
      const raw = node.primitivePending.values;
      if (spec) {
        node.primitiveSpec = { ...spec, name: "value" };
        node.values = { value: raw[0] ?? defaultValue(spec) };
        if (hasControl(spec.name, spec.type, spec.options)) node.controls = { value: typeof raw[1] === "string" ? raw[1] : "fixed" };
      }
      delete node.primitivePending;
    }
  }
}

function controlFrom(raw, schema, spec) {
  const values = Array.isArray(raw.widgets_values) ? raw.widgets_values : [];
  let index = 0;
  for (const s of widgetInputs(schema)) {
    index += 1;
    if (hasControl(s.name, s.type, s.options)) {
      const v = values[index];
      const isControl = typeof v === "string" && ["fixed", "increment", "decrement", "randomize"].includes(v);
      if (s === spec) return isControl ? v : (v === true ? "randomize" : v === false ? "fixed" : null);
      if (isControl || typeof v === "boolean") index += 1;
    } else if (s === spec) return null;
  }
  return null;
}

/** An output slot read from a file; `links: null` is written back as null when still empty. */
function outputSlot(o) {
  const slot = { ...o, links: o.links == null ? [] : [...o.links] };
  if (o.links === null) Object.defineProperty(slot, "nullWhenEmpty", { value: true, enumerable: false });
  return slot;
}

function sanePair(v, fallback) {
  const arr = Array.isArray(v) ? v : v && typeof v === "object" ? [v[0], v[1]] : fallback;
  return [Number.isFinite(arr[0]) ? arr[0] : fallback[0], Number.isFinite(arr[1]) ? arr[1] : fallback[1]];
}
