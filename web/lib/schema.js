// Node schemas read from /object_info (the server's one source of truth).
// Twin of engine.workflow_format.schemas_from_object_info.

export const WIDGET_TYPES = new Set(["INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"]);
export const SEED_NAMES = new Set(["seed", "noise_seed"]);
export const CONTROL_VALUES = ["fixed", "increment", "decrement", "randomize"];

function inputFromWire(name, wire, section) {
  if (typeof wire === "string") return { name, type: wire, section, options: {}, isWidget: false };
  const head = Array.isArray(wire) && wire.length ? wire[0] : "*";
  const options = Array.isArray(wire) && wire.length > 1 && wire[1] && typeof wire[1] === "object" ? { ...wire[1] } : {};
  let type;
  let choices = null;
  if (Array.isArray(head)) {
    type = "COMBO";
    choices = head;
  } else {
    type = String(head);
    if (type === "COMBO" && Array.isArray(options.options)) choices = options.options;
  }
  const forceInput = Boolean(options.forceInput);
  const isWidget = section !== "hidden" && WIDGET_TYPES.has(type) && !forceInput;
  return { name, type, section, options, choices, forceInput, isWidget, control: isWidget && hasControl(name, type, options) };
}

/** Whether the editor shows a control_after_generate widget after this input. */
export function hasControl(name, type, options = {}) {
  if (type === "INT") return Boolean(options.control_after_generate) || SEED_NAMES.has(name);
  return type === "COMBO" && Boolean(options.control_after_generate);
}

export function schemaFromEntry(classType, entry) {
  const inputs = [];
  const sections = entry.input ?? {};
  const order = entry.input_order ?? {};
  for (const section of ["required", "optional", "hidden"]) {
    const specs = sections[section] ?? {};
    const names = (order[section] ?? []).filter((n) => n in specs);
    for (const n of Object.keys(specs)) if (!names.includes(n)) names.push(n);
    for (const n of names) inputs.push(inputFromWire(n, specs[n], section));
  }
  const types = entry.output ?? [];
  const outNames = entry.output_name ?? types;
  const outputs = types.map((t, i) => ({
    type: Array.isArray(t) ? "COMBO" : String(t),
    name: String(outNames[i] ?? t),
    isList: Boolean(entry.output_is_list?.[i]),
    tooltip: entry.output_tooltips?.[i] ?? null,
  }));
  return {
    classType,
    displayName: String(entry.display_name || entry.name || classType),
    category: String(entry.category ?? ""),
    description: String(entry.description ?? ""),
    inputs,
    outputs,
    outputNode: Boolean(entry.output_node),
    deprecated: Boolean(entry.deprecated),
    experimental: Boolean(entry.experimental),
  };
}

export function schemasFromObjectInfo(info) {
  const out = new Map();
  for (const [classType, entry] of Object.entries(info)) out.set(classType, schemaFromEntry(classType, entry));
  return out;
}

/** Inputs drawn as widgets, in the order their values are stored. */
export const widgetInputs = (schema) => schema.inputs.filter((s) => s.isWidget);

/** Inputs drawn as slots: sockets, plus forceInput values. */
export const socketInputs = (schema) => schema.inputs.filter((s) => s.section !== "hidden" && !s.isWidget);

export function defaultValue(spec) {
  const o = spec.options ?? {};
  if ("default" in o) return o.default;
  switch (spec.type) {
    case "INT": return Math.max(0, o.min ?? 0);
    case "FLOAT": return o.min ?? 0;
    case "BOOLEAN": return false;
    case "STRING": return "";
    case "COMBO": return spec.choices?.[0] ?? "";
    default: return null;
  }
}
