// ComfyUI subgraphs (version 1 files, `definitions.subgraphs`) as the editor
// shows them: an instance is one node titled with the subgraph's name, with
// the definition's inputs and outputs, a widget for each input that feeds a
// widget inside (a "promoted" widget), and a widget for each inner widget its
// `properties.proxyWidgets` names. Opening an instance to edit its inside is
// subgraph_edit.js's job (the edits go into the shared definition); adding,
// renaming and removing a subgraph's own inputs and outputs, on the definition
// and every instance, is subgraph_io.js's.
// Pure (no DOM); the conversion to an API prompt is workflow_to_api.js's job.
import { ANY } from "./types.js";
import { WIDGET_TYPES } from "./schema.js";
import { instanceValuePositions, promotedTarget, widgetValuesOf } from "./workflow_to_api.js";

export { subgraphDefinitions } from "./workflow_to_api.js";

/** The schema an instance of `definition` is drawn and edited with. */
export function subgraphSchema(definition, definitions, lookup) {
  const inputs = (definition.inputs ?? []).map((input, index) => {
    const name = String(input?.name ?? `input ${index}`);
    const type = String(input?.type ?? ANY);
    const target = promotedTarget(definition, index, definitions, lookup);
    if (target && WIDGET_TYPES.has(target.spec.type)) {
      // No control_after_generate on the instance: the control belongs to the inner widget.
      return { ...target.spec, name, label: input.label, slotType: type, section: "required", isWidget: true, control: false, promoted: true };
    }
    return { name, label: input?.label, type, section: "required", options: {}, isWidget: false };
  });
  const outputs = (definition.outputs ?? []).map((output, index) => ({
    name: String(output?.name ?? `output ${index}`), type: String(output?.type ?? ANY), label: output?.label, isList: false,
  }));
  return {
    classType: String(definition.id),
    displayName: String(definition.name || "Subgraph"),
    category: "subgraph",
    description: String(definition.description ?? "A subgraph: its nodes run flattened, with ids 'instance:inner'."),
    inputs,
    outputs,
    outputNode: false,
    subgraph: true,
  };
}

/**
 * The promoted widget values of a saved instance, by input name. A value
 * comes from the instance's widgets_values (one per input slot that has a
 * widget, in slot order; older files also kept a control_after_generate
 * value after a seed, recognised by the count), else from the inner widget.
 */
export function promotedValues(instance, definition, definitions, lookup) {
  const slots = Array.isArray(instance.inputs) ? instance.inputs : [];
  const raw = Array.isArray(instance.widgets_values) ? instance.widgets_values : [];
  const positions = instanceValuePositions(slots, raw, (index) => promotedTarget(definition, index, definitions, lookup));
  const values = {};
  (definition.inputs ?? []).forEach((input, index) => {
    const target = promotedTarget(definition, index, definitions, lookup);
    if (!target || !WIDGET_TYPES.has(target.spec.type)) return;
    const name = String(input?.name ?? `input ${index}`);
    if (positions.has(index)) values[name] = raw[positions.get(index)];
    else values[name] = innerValue(target);
  });
  return values;
}

function innerValue({ node, spec, schema }) {
  try {
    const values = widgetValuesOf(node, schema);
    return spec.name in values ? values[spec.name] : spec.options?.default;
  } catch {
    return spec.options?.default;  // a malformed inner node: the conversion names it
  }
}

/** ComfyUI's properties.proxyWidgets: [[innerNodeId, widgetName], ...], stored as a
 *  list or (older frontends) as its JSON text. Anything else reads as no entries. */
export function proxyWidgetEntries(properties) {
  let raw = properties?.proxyWidgets;
  if (typeof raw === "string") {
    try { raw = JSON.parse(raw); } catch { return []; }
  }
  if (!Array.isArray(raw)) return [];
  return raw.filter((e) => Array.isArray(e) && e.length >= 2 && e[0] != null && e[1] != null).map((e) => [String(e[0]), String(e[1])]);
}

/** The key an instance keeps a proxy widget's value under (never clashes with an input name). */
export const proxyKey = (nodeId, widget) => `proxy:${nodeId}:${widget}`;

/**
 * The proxy widgets an instance shows: [{spec, value}], one per proxyWidgets entry
 * naming a widget of a real node inside (entries "-1" are the input-backed promoted
 * widgets, shown already; a nested subgraph's widgets or a linked widget are not shown).
 * A proxy's value lives in the inner node, so every instance shows the same one.
 */
export function proxyWidgetSpecs(properties, definition, lookup) {
  const found = [];
  for (const [nodeId, widget] of proxyWidgetEntries(properties)) {
    if (nodeId === "-1") continue;
    const node = (definition?.nodes ?? []).find((n) => n && String(n.id) === nodeId);
    const schema = node ? lookup(String(node.type)) : null;
    const spec = schema?.inputs.find((s) => s.name === widget && s.isWidget);
    if (!spec) continue;
    if ((node.inputs ?? []).some((i) => i && i.link != null && (i.widget?.name ?? i.name) === widget)) continue;
    const name = proxyKey(nodeId, widget);
    found.push({
      spec: { ...spec, name, label: widget, section: "required", isWidget: true, control: false, proxy: { nodeId, widget } },
      value: innerValue({ node, spec, schema }),
    });
  }
  return found;
}
