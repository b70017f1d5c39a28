// Workflow tabs: several open graphs, one on the canvas at a time. Each tab keeps its
// own graph, view, undo history, saved mark and file (name and server path); the
// editor and WorkflowFiles always describe the active tab. Tabs survive a reload.
import { UndoStack } from "../lib/undo.js";
import { el } from "./panels.js";

const STORAGE_KEY = "loom.tabs";

export class WorkflowTabs extends EventTarget {
  constructor(bar, editor, files, { confirm = (m) => window.confirm(m), storage = localStorage } = {}) {
    super();
    this.bar = bar;
    this.editor = editor;
    this.files = files;
    this.confirm = confirm;
    this.storage = storage;
    this.tabs = [];  // [{id, name, path, workflow, undo, savedState}] — the active one's live state is the editor's
    this.active = null;
    this.nextId = 1;
    editor.addEventListener("graph", () => { this.persistSoon(); this.render(); });
    files.addEventListener("change", () => this.render());
  }

  /** The active tab, as the editor and files now hold it. */
  current() { return this.tabs.find((t) => t.id === this.active) ?? null; }

  /** Copies the editor's live state into the active tab's record. */
  capture() {
    const tab = this.current();
    if (!tab) return;
    this.editor.scopes.sync();
    Object.assign(tab, { workflow: this.editor.serialize(), undo: this.editor.undo, savedState: this.editor.savedState,
      name: this.files.name, path: this.files.path });
  }

  /** Adopts what the editor shows now as the first tab (at boot, after restoring it). */
  adoptCurrent() {
    const tab = { id: this.nextId++, name: this.files.name, path: this.files.path, workflow: null, undo: this.editor.undo, savedState: this.editor.savedState };
    this.tabs.push(tab);
    this.active = tab.id;
    this.render();
    return tab;
  }

  /** Opens a new tab showing `workflow` (the caller's loader fills it when null). */
  open(load) {
    this.capture();
    const tab = { id: this.nextId++, name: null, path: null, workflow: null, undo: new UndoStack(), savedState: null };
    this.tabs.push(tab);
    this.active = tab.id;
    this.editor.undo = tab.undo;
    this.files.setDocument(null);
    load();
    this.capture();
    this.persistSoon();
    this.render();
    return tab;
  }

  switchTo(id) {
    if (id === this.active) return;
    const target = this.tabs.find((t) => t.id === id);
    if (!target) return;
    this.capture();
    this.active = id;
    this.show(target);
  }

  show(tab) {
    this.editor.loadWorkflow(tab.workflow, { resetHistory: false });
    this.editor.undo = tab.undo;
    this.editor.savedState = tab.savedState;
    this.files.setDocument(tab.name, tab.path);
    this.editor.emit("graph");
    this.dispatchEvent(new Event("switch"));
    this.persistSoon();
    this.render();
  }

  /** Closes a tab, asking first when it has unsaved changes; the last tab is never closed. */
  close(id) {
    if (this.tabs.length < 2) return false;
    this.capture();
    const tab = this.tabs.find((t) => t.id === id);
    if (!tab) return false;
    const unsaved = tab.savedState !== null && tab.undo.current !== tab.savedState;
    if (unsaved && !this.confirm(`"${tab.name}" has unsaved changes. Close it anyway?`)) return false;
    const index = this.tabs.indexOf(tab);
    this.tabs.splice(index, 1);
    if (id === this.active) {
      const next = this.tabs[Math.min(index, this.tabs.length - 1)];
      this.active = next.id;
      this.show(next);
    } else {
      this.persistSoon();
      this.render();
    }
    return true;
  }

  /** True when the active tab may be replaced: unmodified, or the user agreed to discard. */
  confirmReplace(what) {
    if (!this.editor.unsaved || this.editor.rootGraph.nodes.size === 0) return true;  // an empty canvas loses nothing
    return this.confirm(`Discard the unsaved changes to "${this.files.name}" and ${what}?`);
  }

  persistSoon() {
    clearTimeout(this.persistTimer);
    this.persistTimer = setTimeout(() => this.persist(), 300);
  }

  persist() {
    this.capture();
    const saved = this.tabs.map((t) => ({ name: t.name, path: t.path, workflow: t.workflow, active: t.id === this.active }));
    try { this.storage.setItem(STORAGE_KEY, JSON.stringify(saved)); } catch { /* storage full: not fatal */ }
  }

  /** Restores the tabs of the last session; false when there were none. */
  restore() {
    let saved;
    try { saved = JSON.parse(this.storage.getItem(STORAGE_KEY)); } catch { saved = null; }
    if (!Array.isArray(saved) || !saved.length || !saved.every((t) => Array.isArray(t?.workflow?.nodes))) return false;
    this.tabs = saved.map((t) => ({ id: this.nextId++, name: t.name, path: t.path, workflow: t.workflow, undo: new UndoStack(), savedState: null }));
    const active = this.tabs[Math.max(0, saved.findIndex((t) => t.active))];
    this.active = active.id;
    this.editor.loadWorkflow(active.workflow);  // a fresh history; the graph counts as saved
    active.undo = this.editor.undo;
    active.savedState = this.editor.savedState;
    for (const t of this.tabs) if (t !== active) { t.undo.reset(t.workflow); t.savedState = t.undo.current; }
    this.files.setDocument(active.name, active.path);
    this.render();
    return true;
  }

  render() {
    if (!this.bar) return;
    const live = this.current();
    const items = this.tabs.map((t) => {
      const isActive = t === live;
      const name = isActive ? this.files.name : t.name;
      const unsaved = isActive ? this.editor.unsaved : t.savedState !== null && t.undo.current !== t.savedState;
      return el("div", { class: `tab${isActive ? " active" : ""}`, "data-tab-id": String(t.id), role: "tab", "aria-selected": String(isActive) },
        el("button", { class: "tab-name", title: name, onclick: () => this.switchTo(t.id) }, `${unsaved ? "• " : ""}${name}`),
        this.tabs.length > 1 ? el("button", { class: "tab-close", title: `Close ${name}`, "aria-label": `Close ${name}`, onclick: () => this.close(t.id) }, "×") : null);
    });
    this.bar.replaceChildren(...items, el("button", { class: "tab-new", title: "New tab (default workflow)", onclick: () => this.dispatchEvent(new Event("new-tab")) }, "+"));
  }
}
