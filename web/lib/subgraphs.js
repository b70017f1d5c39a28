// ComfyUI subgraphs (version 1 files, `definitions.subgraphs`) as the editor
// shows them: an instance is one node titled with the subgraph's name, with
// the definition's inputs and outputs, and a widget for each input that feeds
// a widget inside (a "promoted" widget). Editing inside a subgraph is not
// supported; the definitions are kept as they were read.
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
