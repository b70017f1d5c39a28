// The path to the graph on the canvas when a subgraph is open:
// "Root › Sample and decode › inner", each earlier step a button back to it.
import { el } from "./panels.js";

export function renderBreadcrumb(box, editor) {
  const trail = editor.scopes.trail();
  box.hidden = trail.length < 2;
  if (box.hidden) { box.replaceChildren(); return; }
  const items = [];
  trail.forEach((step, i) => {
    if (i) items.push(el("span", { class: "sep", "aria-hidden": "true" }, "›"));
    const last = i === trail.length - 1;
    items.push(last
      ? el("span", { class: "crumb current", "aria-current": "page", title: "Editing this subgraph: changes apply to every instance of it" }, step.title)
      : el("button", { class: "crumb", "data-depth": String(step.depth), title: i ? `Back to ${step.title}` : "Back to the workflow (Esc goes up one level)", onclick: () => editor.closeSubgraph(step.depth) }, step.title));
  });
  box.replaceChildren(...items);
}
