// The open workflow's identity (its name, and its file on the server when it has
// one) and saving it into the server through ComfyUI's userdata API, as
// `user/workflows/<name>.json`: Save, Save As (overwrite asks first), Rename, Delete.
// Downloading a copy is Export; it does not change where Save writes.

export const WORKFLOWS_DIR = "workflows";
const UNSAVED = "Unsaved workflow";

/** A name typed by the user → its userdata path, or null when it cannot be a file name. */
export function userdataPath(name) {
  const parts = String(name ?? "").trim().replace(/\.json$/i, "").split("/").map((p) => p.trim()).filter(Boolean);
  if (!parts.length || parts.some((p) => p === "." || p === ".." || p.startsWith(".") || /[\\:*?"<>|\x00-\x1f]/.test(p))) return null;
  return `${WORKFLOWS_DIR}/${parts.join("/")}.json`;
}

/** The Open list's name of a saved workflow ("user/sub/a.json") → its userdata path. */
export function pathOfListEntry(entryName) {
  return entryName.startsWith("user/") ? `${WORKFLOWS_DIR}/${entryName.slice(5)}` : null;
}

const displayName = (path) => path.slice(WORKFLOWS_DIR.length + 1).replace(/\.json$/i, "");

export class WorkflowFiles extends EventTarget {
  /** `ask(message, default)` and `confirm(message)` are the dialogs (window.prompt/confirm by default). */
  constructor(api, editor, { ask = (m, d) => window.prompt(m, d), confirm = (m) => window.confirm(m), storage = localStorage } = {}) {
    super();
    this.api = api;
    this.editor = editor;
    this.ask = ask;
    this.confirm = confirm;
    this.storage = storage;
    this.name = storage.getItem("loom.workflowName") || UNSAVED;
    this.path = storage.getItem("loom.workflowPath") || null;
  }

  /** What the canvas now shows: a file's name and, for a saved one, its server path. */
  setDocument(name, path = null) {
    this.name = name || UNSAVED;
    this.path = path;
    this.storage.setItem("loom.workflowName", this.name);
    if (path) this.storage.setItem("loom.workflowPath", path); else this.storage.removeItem("loom.workflowPath");
    this.dispatchEvent(new Event("change"));
  }

  /** Save to the workflow's own file; asks for a name the first time. True when written. */
  async save() {
    if (!this.path) return this.saveAs();
    await this.write(this.path, true);
    return true;
  }

  async saveAs() {
    const answer = this.ask("Save the workflow as", this.name === UNSAVED ? "" : this.name);
    if (answer == null) return false;
    const path = userdataPath(answer);
    if (!path) throw new Error(`"${answer}" cannot be a workflow name`);
    try {
      await this.write(path, false);
    } catch (err) {
      if (err.status !== 409) throw err;
      if (!this.confirm(`A workflow named "${displayName(path)}" exists. Overwrite it?`)) return false;
      await this.write(path, true);
    }
    return true;
  }

  async write(path, overwrite) {
    await this.api.writeUserdata(path, JSON.stringify(this.editor.serialize(), null, 2), { overwrite });
    this.setDocument(displayName(path), path);
    this.editor.markSaved();
  }

  /** Renames a saved workflow (the open one keeps pointing at it). False when cancelled. */
  async rename(path) {
    const answer = this.ask("Rename the workflow to", displayName(path));
    if (answer == null) return false;
    const dest = userdataPath(answer);
    if (!dest) throw new Error(`"${answer}" cannot be a workflow name`);
    if (dest === path) return false;
    try {
      await this.api.moveUserdata(path, dest, { overwrite: false });
    } catch (err) {
      if (err.status !== 409) throw err;
      if (!this.confirm(`A workflow named "${displayName(dest)}" exists. Overwrite it?`)) return false;
      await this.api.moveUserdata(path, dest, { overwrite: true });
    }
    if (this.path === path) this.setDocument(displayName(dest), dest);
    return true;
  }

  async remove(path) {
    if (!this.confirm(`Delete the workflow "${displayName(path)}"? This cannot be undone.`)) return false;
    await this.api.deleteUserdata(path);
    if (this.path === path) this.setDocument(this.name, null);  // still on the canvas, now unsaved
    return true;
  }
}
