// Missing models: workflows name the model files their loaders need in
// `properties.models` (ComfyUI's templates do: [{name, url, directory}]), and
// sometimes in a top-level `models` list. When a workflow is loaded, the ones
// the server lacks are listed with a Download button; the server fetches them
// (POST /models/download) and reports progress over the websocket. A running
// download has a Cancel button (POST /models/downloads/{id}/cancel): the server
// removes the partial file and the row offers Download again.

import { el } from "./panels.js";

const isText = (v) => typeof v === "string" && v.trim() !== "";

/** The hash to check, from `sha256` or ComfyUI's `hash` + `hash_type`. */
function sha256Of(entry) {
  if (isText(entry.sha256)) return entry.sha256;
  if (isText(entry.hash) && String(entry.hash_type ?? "sha256").toLowerCase() === "sha256") return entry.hash;
  return null;
}

/** Every model a UI-format workflow names (nodes, subgraph nodes, the top-level list), once each. */
export function modelsOfWorkflow(workflow) {
  const lists = [];
  const fromNodes = (nodes) => { for (const node of Array.isArray(nodes) ? nodes : []) lists.push(node?.properties?.models); };
  fromNodes(workflow?.nodes);
  for (const sub of workflow?.definitions?.subgraphs ?? []) fromNodes(sub?.nodes);
  lists.push(workflow?.models);
  const seen = new Map();
  for (const list of lists) {
    for (const entry of Array.isArray(list) ? list : []) {
      if (!entry || !isText(entry.name) || !isText(entry.directory)) continue;
      const key = `${entry.directory}/${entry.name}`;
      if (!seen.has(key)) seen.set(key, { name: entry.name, directory: entry.directory, url: isText(entry.url) ? entry.url : null, sha256: sha256Of(entry) });
      else if (!seen.get(key).url && isText(entry.url)) seen.get(key).url = entry.url;
    }
  }
  return [...seen.values()];
}

function formatBytes(n) {
  if (n == null) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export class MissingModels {
  /** `onDownloaded()` runs after each finished download (the editor reloads its node schemas, so combos list the file). */
  constructor(api, { onDownloaded = async () => {}, parent = document.body } = {}) {
    this.api = api;
    this.onDownloaded = onDownloaded;
    this.rows = new Map();  // "directory/name" → row state
    this.byId = new Map();  // download id → row state
    this.ended = new Set();  // ids of cancelled downloads: their late progress events are stale
    this.generation = 0;
    this.box = el("section", { id: "missing-models", "aria-live": "polite", "aria-label": "Missing models" });
    this.box.hidden = true;
    parent.append(this.box);
    api.addEventListener("download_progress", (e) => this.progress(e.detail));
    api.addEventListener("download_done", (e) => this.finished(e.detail, null));
    api.addEventListener("download_error", (e) => this.finished(e.detail, e.detail?.message ?? "the download failed"));
    api.addEventListener("download_cancelled", (e) => this.cancelled(e.detail));
  }

  /** Asks the server which of the workflow's models are missing and shows them (hides the panel if none). */
  async check(workflow) {
    const generation = ++this.generation;
    const models = modelsOfWorkflow(workflow);
    const missing = [];
    const folders = new Map();
    for (const model of models) {
      if (!folders.has(model.directory)) {
        folders.set(model.directory, this.api.request(`/models/${encodeURIComponent(model.directory)}`)
          .then((names) => ({ names: new Set(Array.isArray(names) ? names : []) }), (err) => ({ error: err })));
      }
    }
    for (const model of models) {
      const folder = await folders.get(model.directory);
      if (folder.error?.status === 0) return;  // offline: nothing sensible to say
      if (folder.error) missing.push({ ...model, problem: `the server has no model folder '${model.directory}'` });
      else if (!folder.names.has(model.name)) missing.push(model);
    }
    if (generation !== this.generation) return;  // another workflow was loaded meanwhile
    this.rows = new Map(missing.map((m) => [`${m.directory}/${m.name}`, { ...m, state: "missing", done: 0, total: null, error: null, id: null }]));
    this.render();
  }

  hide() { this.box.hidden = true; }

  render() {
    if (!this.rows.size) { this.box.hidden = true; this.box.replaceChildren(); return; }
    const rows = [...this.rows.values()];
    const waiting = rows.filter((r) => r.url && !r.problem && (r.state === "missing" || r.state === "error"));
    const allDone = rows.every((r) => r.state === "done");
    this.box.hidden = false;
    this.box.replaceChildren(
      el("button", { class: "small close", "aria-label": "Close the missing models list", onclick: () => this.hide() }, "×"),
      el("h3", {}, allDone ? "All models are in place" : `This workflow needs ${rows.length === 1 ? "a model" : `${rows.length} models`} this server lacks`),
      el("ul", {}, ...rows.map((row) => this.renderRow(row))),
      ...(waiting.length > 1 ? [el("button", { class: "download-all", onclick: () => waiting.forEach((r) => this.download(r)) }, `Download all (${waiting.length})`)] : []),
    );
  }

  renderRow(row) {
    const item = el("li", { class: `missing-model ${row.state}`, "data-name": row.name, "data-directory": row.directory },
      el("div", { class: "model-name" }, el("code", {}, row.name), el("span", { class: "muted" }, ` in models/${row.directory}/`)));
    if (row.problem) item.append(el("div", { class: "model-error" }, row.problem));
    else if (!row.url) item.append(el("div", { class: "muted" }, `No download link; put the file in models/${row.directory}/ and press Refresh.`));
    else if (row.state === "downloading") {
      const bar = el("progress", { max: String(row.total || 1) });
      if (row.total) bar.value = row.done;
      item.append(bar, el("span", { class: "model-progress" }, `${formatBytes(row.done)} / ${formatBytes(row.total)}`),
        el("button", { class: "small cancel-download", title: "Stop this download and delete what was received",
                       onclick: () => this.cancel(row), ...(row.cancelling ? { disabled: "" } : {}) },
           row.cancelling ? "Cancelling…" : "Cancel"));
      if (row.cancelError) item.append(el("div", { class: "model-error" }, row.cancelError));
    } else if (row.state === "done") item.append(el("span", { class: "model-done" }, "✓ downloaded"));
    else {
      if (row.error) item.append(el("div", { class: "model-error" }, row.error));
      item.append(el("button", { class: "small download", title: row.url, onclick: () => this.download(row) }, row.state === "error" ? "Retry" : "Download"));
    }
    return item;
  }

  async download(row) {
    row.state = "downloading";
    row.error = row.cancelError = null;
    row.cancelling = false;
    this.render();
    try {
      const started = await this.api.json("/models/download", { url: row.url, directory: row.directory, name: row.name, ...(row.sha256 ? { sha256: row.sha256 } : {}) });
      row.id = started.id;
      this.byId.set(started.id, row);
      // Events may have come before the answer: the listing tells where it stands.
      if (started.state === "cancelled") this.cancelled(started);
      else if (started.state !== "downloading") this.finished(started, started.error);
      else if (row.cancelling) { await this.cancel(row); return; }  // Cancel was pressed before the server answered
    } catch (err) {
      row.state = "error";
      row.error = err.message;
    }
    this.render();
  }

  /** Asks the server to stop `row`'s download; the row returns to its Download state once it has. */
  async cancel(row) {
    row.cancelling = true;
    row.cancelError = null;
    this.render();
    if (!row.id) return;  // the download's id is not known yet: download() cancels once it is
    try {
      this.cancelled(await this.api.json(`/models/downloads/${encodeURIComponent(row.id)}/cancel`, {}));
    } catch (err) {
      // 409: it ended meanwhile; its download_done / download_error event says how.
      row.cancelling = false;
      if (err.status !== 409 && row.state === "downloading") row.cancelError = `could not cancel: ${err.message}`;
      this.render();
    }
  }

  /** The server stopped the download (the user's cancel or the server shutting down). */
  cancelled(data) {
    if (data?.id) this.ended.add(data.id);
    const row = this.rowFor(data);
    if (!row || row.state === "done" || (row.id && data?.id && row.id !== data.id)) return;
    if (row.state !== "downloading" && !row.cancelling) return;  // already handled (the answer and the event both come)
    this.byId.delete(row.id);
    Object.assign(row, { state: "missing", id: null, done: 0, total: null, cancelling: false, cancelError: null,
                         error: data?.by_user === false ? "the server stopped before the download finished" : null });
    this.render();
  }

  rowFor(data) {
    return this.byId.get(data?.id) ?? this.rows.get(`${data?.directory}/${data?.name}`) ?? null;
  }

  progress(data) {
    if (this.ended.has(data?.id)) return;  // a cancelled download's last reports, arriving after the cancel
    const row = this.rowFor(data);
    if (!row || row.state === "done") return;
    row.state = "downloading";
    row.done = data.done ?? 0;
    row.total = data.total ?? null;
    const bar = this.box.querySelector(`li[data-name="${CSS.escape(row.name)}"][data-directory="${CSS.escape(row.directory)}"] progress`);
    const text = bar?.parentElement.querySelector(".model-progress");
    if (bar && text) {  // update in place: a progress event must not rebuild the panel
      bar.max = row.total || 1;
      if (row.total) bar.value = row.done;
      text.textContent = `${formatBytes(row.done)} / ${formatBytes(row.total)}`;
    } else this.render();
  }

  async finished(data, error) {
    const row = this.rowFor(data);
    if (!row || row.state === "done") return;
    if (error) {
      row.state = "error";
      row.error = error;
      this.render();
      return;
    }
    row.state = "done";
    row.done = row.total = data.done ?? row.total;
    try { await this.onDownloaded(row); } catch (err) { row.error = `downloaded, but the node list could not be refreshed: ${err.message}`; }
    this.render();
  }
}
