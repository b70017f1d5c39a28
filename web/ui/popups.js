// Small DOM overlays: node search, combo list, context menu, inline entry, toasts.
import { searchNodes } from "../lib/search.js";
import { typesCompatible } from "../lib/types.js";
import { adjustWeight, WEIGHT_STEP } from "../lib/prompt_weight.js";

let open = null;

/** Closes the open popup; an entry keeps what was typed (as a click elsewhere does in ComfyUI). */
export function closePopup() {
  if (open) {
    const el = open;
    open = null;
    if (el.closePopup) el.closePopup(); else el.remove();
  }
}

function place(el, x, y) {
  document.body.appendChild(el);
  const r = el.getBoundingClientRect();
  el.style.left = `${Math.max(4, Math.min(x, innerWidth - r.width - 8))}px`;
  el.style.top = `${Math.max(4, Math.min(y, innerHeight - r.height - 8))}px`;
  open = el;
}

/** A filterable list; `items` = [{label, detail, value}]; resolves through onPick. */
function listPopup({ x, y, items, placeholder, onPick, className = "", initial = "" }) {
  closePopup();
  const el = document.createElement("div");
  el.className = `popup list-popup ${className}`;
  const input = document.createElement("input");
  input.placeholder = placeholder;
  input.value = initial;
  input.setAttribute("aria-label", placeholder);
  const list = document.createElement("ul");
  el.append(input, list);
  let shown = [];
  let active = 0;
  const render = () => {
    shown = typeof items === "function" ? items(input.value) : items.filter((i) => i.label.toLowerCase().includes(input.value.toLowerCase()));
    active = Math.min(active, Math.max(0, shown.length - 1));
    list.replaceChildren(...shown.map((item, i) => {
      const li = document.createElement("li");
      li.className = i === active ? "active" : "";
      li.dataset.value = String(item.value?.classType ?? item.value);
      const label = document.createElement("span");
      label.textContent = item.label;
      li.append(label);
      if (item.detail) {
        const d = document.createElement("small");
        d.textContent = item.detail;
        li.append(d);
      }
      li.addEventListener("mousedown", (e) => { e.preventDefault(); pick(item); });
      return li;
    }));
    list.children[active]?.scrollIntoView({ block: "nearest" });
  };
  const pick = (item) => { closePopup(); onPick(item.value); };
  input.addEventListener("input", () => { active = 0; render(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown") { active = Math.min(shown.length - 1, active + 1); render(); e.preventDefault(); }
    else if (e.key === "ArrowUp") { active = Math.max(0, active - 1); render(); e.preventDefault(); }
    else if (e.key === "Enter") { if (shown[active]) pick(shown[active]); e.preventDefault(); }
    else if (e.key === "Escape") closePopup();
    e.stopPropagation();
  });
  input.addEventListener("blur", () => setTimeout(() => { if (open === el) closePopup(); }, 100));
  render();
  place(el, x, y);
  input.focus();
  return el;
}

/** The double-click / link-drop node search. `filter` narrows to nodes that fit a dragged link. */
export function nodeSearch({ x, y, schemas, filter = {}, onPick }) {
  const what = filter.outputType ? ` taking ${filter.outputType}` : filter.inputType ? ` giving ${filter.inputType}` : "";
  return listPopup({
    x, y, placeholder: `Search nodes${what}…`, className: "node-search",
    items: (q) => searchNodes(schemas, q, filter, typesCompatible).map((s) => ({ label: s.displayName, detail: s.category, value: s })),
    onPick,
  });
}

export function comboList({ x, y, choices, value, onPick }) {
  return listPopup({
    x, y, placeholder: "Filter…", className: "combo-list",
    items: (q) => choices.filter((c) => String(c).toLowerCase().includes(q.toLowerCase())).map((c) => ({ label: String(c), detail: c === value ? "current" : "", value: c })),
    onPick,
  });
}

/** A right-click menu: entries = [{label, action, disabled}] or null for a separator. */
export function contextMenu({ x, y, entries }) {
  closePopup();
  const el = document.createElement("div");
  el.className = "popup context-menu";
  for (const entry of entries) {
    if (!entry) { el.append(document.createElement("hr")); continue; }
    const item = document.createElement("button");
    item.textContent = entry.label;
    item.disabled = Boolean(entry.disabled);
    item.addEventListener("mousedown", (e) => e.preventDefault());
    item.addEventListener("click", () => { closePopup(); entry.action(); });
    el.append(item);
  }
  place(el, x, y);
  setTimeout(() => addEventListener("pointerdown", function away(e) {
    if (!el.contains(e.target)) { if (open === el) closePopup(); removeEventListener("pointerdown", away, true); }
  }, true), 0);
}

/** An inline text/number entry over the canvas; resolves with the text or null.
 *  A multiline one is a prompt: `caret` places the caret (else all is selected),
 *  Ctrl+Up/Down weights the selected words, and Ctrl+Enter keeps the text and calls
 *  `onCtrlEnter` (before resolving) when given. */
export function inlineEntry({ x, y, w, h, value, multiline = false, numeric = false, caret = null, onCtrlEnter = null }) {
  closePopup();
  return new Promise((resolve) => {
    const el = document.createElement(multiline ? "textarea" : "input");
    el.className = "popup inline-entry";
    if (numeric) el.inputMode = "decimal";
    el.value = value;
    el.style.width = `${w}px`;
    el.style.height = `${multiline ? Math.max(h, 120) : h}px`;
    // Removing a focused element fires its blur inside remove(): `done` makes that
    // second finish a no-op instead of a nested remove() that throws.
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      if (open === el) open = null;
      el.remove();
      resolve(result);
    };
    el.closePopup = () => finish(el.value);
    el.addEventListener("keydown", (e) => {
      e.stopPropagation();
      const mod = e.ctrlKey || e.metaKey;
      if (multiline && mod && (e.key === "ArrowUp" || e.key === "ArrowDown")) {
        e.preventDefault();
        const next = adjustWeight(el.value, el.selectionStart, el.selectionEnd, e.key === "ArrowUp" ? WEIGHT_STEP : -WEIGHT_STEP);
        if (next) { el.value = next.text; el.setSelectionRange(next.start, next.end); }
      } else if (e.key === "Enter" && (!multiline || mod)) {
        e.preventDefault();
        if (multiline && mod) onCtrlEnter?.();
        finish(el.value);
      } else if (e.key === "Escape") finish(null);
    });
    el.addEventListener("blur", () => finish(el.value));
    place(el, x, y);
    el.focus();
    if (caret != null) el.setSelectionRange(caret, caret);
    else el.select?.();
  });
}

export function toast(message, kind = "info", ms = 4000) {
  let box = document.getElementById("toasts");
  if (!box) {
    box = document.createElement("div");
    box.id = "toasts";
    document.body.append(box);
  }
  const el = document.createElement("div");
  el.className = `toast ${kind}`;
  el.textContent = message;
  el.setAttribute("role", kind === "error" ? "alert" : "status");
  box.append(el);
  setTimeout(() => el.remove(), ms);
  return el;
}
