// Boot: fetch the schemas, restore or create a workflow, wire toolbar, panels,
// file drops and the websocket's live execution events.
import { api, app } from "./ui/loom_app.js";
import { Editor } from "./ui/editor.js";
import { Panels, renderErrors, showLightbox } from "./ui/panels.js";
import { toast } from "./ui/popups.js";
import { MissingModels } from "./ui/missing_models.js";
import { renderBreadcrumb } from "./ui/breadcrumb.js";
import { schemasFromObjectInfo } from "./lib/schema.js";
import { parseJSONLenient } from "./lib/json.js";
import { pngTextChunks } from "./lib/png.js";
import { apiToGraph, isApiPrompt } from "./lib/api_to_graph.js";
import { defaultWorkflow } from "./lib/default_workflow.js";
import { a1111ToApi } from "./lib/a1111.js";
import { WorkflowFiles, pathOfListEntry } from "./ui/workflow_files.js";
import { WorkflowTabs } from "./ui/tabs.js";
import { followRuns } from "./ui/live_events.js";
import { Settings } from "./ui/settings.js";

const $ = (sel) => document.querySelector(sel);
const editor = new Editor($("#canvas"), api);
const lookup = (t) => editor.schemas.get(t) ?? null;
app.attach(editor);
app.dispatchError = (message) => toast(message, "error", 8000);
// Lists the models a loaded workflow names (properties.models) that the server lacks, with Download buttons.
const missingModels = new MissingModels(api, { onDownloaded: () => loadSchemas() });
const files = new WorkflowFiles(api, editor);
const tabs = new WorkflowTabs($("#tabs"), editor, files);
const settings = new Settings(api);
settings.addEventListener("change", () => {
  document.documentElement.dataset.theme = settings.get("theme");
  editor.renderer.setStyle({ theme: settings.get("theme"), linkMode: settings.get("linkMode"), minimap: settings.get("minimap") });
  editor.prefs = { snapToGrid: settings.get("snapToGrid"), clampCue: settings.get("clampCue") };
});
window.loom = { editor, api, app, missingModels, files, tabs, settings };  // for the browser tests and the console

// ------------------------------------------------------------------ schemas

async function loadSchemas() {
  const info = await api.objectInfo();
  await app.registerNodeDefs(info);
  editor.setSchemas(schemasFromObjectInfo(info));
}

/** Puts a workflow on the canvas and checks that the server has the models it names. */
function showWorkflow(data, options) {
  editor.loadWorkflow(data, options);
  missingModels.check(data);
}

function loadDefault() {
  showWorkflow(defaultWorkflow(lookup).serialize(), { fit: true, undoable: editor.undo.current !== null });
  editor.markSaved();
}

// ------------------------------------------------------------------ files

/** Opens a dropped or chosen file: a workflow (JSON, or a PNG carrying one) replaces the
 * graph; any other image goes into the Load Image node under the drop point, or a new one. */
async function loadFile(file, at = null) {
  try {
    const isPng = file.type === "image/png" || /\.png$/i.test(file.name);
    const isImage = isPng || /^image\//.test(file.type) || /\.(jpe?g|webp|gif|bmp)$/i.test(file.name);
    let data;
    if (isPng) {
      const chunks = pngTextChunks(await file.arrayBuffer());
      if (chunks.workflow) data = parseJSONLenient(chunks.workflow);
      else if (chunks.prompt) data = parseJSONLenient(chunks.prompt);
      else if (chunks.parameters) data = a1111ToApi(chunks.parameters, checkpointNames());
      else { await editor.placeImage(file, at?.x, at?.y); return; }
    } else if (isImage) {
      await editor.placeImage(file, at?.x, at?.y);
      return;
    } else {
      data = parseJSONLenient(await file.text());
    }
    openData(data, file.name);
  } catch (err) {
    toast(`Could not open ${file.name}: ${err.message}`, "error", 8000);
  }
}

/** The server's checkpoint files (the loader's choices), to match A1111's "Model:" names. */
function checkpointNames() {
  return editor.schemas.get("CheckpointLoaderSimple")?.inputs.find((i) => i.name === "ckpt_name")?.choices ?? [];
}

/** Puts a parsed workflow (UI format or API prompt) on the canvas, named `name`;
 * `path` is its file on the server when it is a saved workflow (Save writes there). */
function openData(data, name, path = null) {
  if (isApiPrompt(data)) data = apiToGraph(data, lookup).serialize();
  if (!Array.isArray(data?.nodes)) throw new Error("this file is not a workflow (no 'nodes' list, not an API prompt)");
  if (!tabs.confirmReplace(`open ${name}`)) return;
  showWorkflow(data, { undoable: true, fit: !data.extra?.ds });
  files.setDocument(name.replace(/^.*\//, "").replace(/\.(json|png)$/i, ""), path);
  editor.markSaved();
  toast(`Loaded ${name}`);
}

/** One entry of the Open list (GET /workflows/{name}); read leniently (ComfyUI writes NaN). */
async function openWorkflow(name) {
  try {
    const response = await fetch(api.url(`/workflows/${name.split("/").map(encodeURIComponent).join("/")}`));
    const text = await response.text();
    if (!response.ok) throw new Error(JSON.parse(text)?.error?.message ?? response.statusText);
    openData(parseJSONLenient(text), name, pathOfListEntry(name));
  } catch (err) {
    toast(`Could not open ${name}: ${err.message}`, "error", 8000);
  }
}

function download(name, data) {
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

/** Runs a save action (Save, Save As, Rename, Delete) and says how it went. */
async function fileAction(action, done) {
  try {
    if (await action()) { toast(done()); panels.refresh(); }
  } catch (err) {
    toast(`Could not save: ${err.message}`, "error", 8000);
  }
}
const save = () => fileAction(() => files.save(), () => `Saved ${files.name}`);
const saveAs = () => fileAction(() => files.saveAs(), () => `Saved ${files.name}`);

function exportWorkflow() {
  download(`${files.name}.json`, editor.serialize());
}

function exportApi() {
  try { download(`${files.name}_api.json`, editor.toApi()); }
  catch (err) { editor.showConversionError(err); toast(err.message, "error", 8000); }
}

function openFile() {
  const input = document.createElement("input");
  input.type = "file";
  input.accept = ".json,.png,application/json,image/png";
  input.addEventListener("change", () => input.files?.[0] && loadFile(input.files[0]));
  input.click();
}

// ------------------------------------------------------------------ running

let lastPrompt = null;

async function queue({ front = false } = {}) {
  if (!api.online) { toast("The server is offline; waiting for it to come back", "error"); return; }
  const count = Math.max(1, Math.min(100, Number($("#batch").value) || 1));
  for (let i = 0; i < count; i++) {
    let prompt;
    try {
      prompt = editor.toApi();
    } catch (err) {
      editor.showConversionError(err);
      toast(`Cannot queue: ${err.message}`, "error", 8000);
      return;
    }
    if (!Object.keys(prompt).length) { toast("The canvas has nothing to run: add some nodes first", "error"); return; }
    try {
      await api.queuePrompt(prompt, editor.serialize(), { front });
      lastPrompt = prompt;
    } catch (err) {
      if (err.body?.node_errors || err.body?.error) {
        editor.showValidationErrors(err.body);
        const msg = err.body.error?.message ?? "validation failed";
        const first = Object.values(err.body.node_errors ?? {})[0]?.errors?.[0];
        toast(`Cannot queue: ${first ? `${first.message}${first.details ? ` (${first.details})` : ""}` : msg}`, "error", 8000);
      } else toast(`Cannot queue: ${err.message}`, "error", 8000);
      return;
    }
    editor.errors = { nodes: new Map(), execution: null };
    renderErrors($("#errors"), editor);
    editor.applyControls();
  }
  toast(count > 1 ? `Queued ${count} runs` : "Queued");
  panels.refresh();
}

// ------------------------------------------------------------------ live events (live_events.js)

followRuns(api, editor, {
  expectedNodes: () => (lastPrompt ? Object.keys(lastPrompt).length : 0),
  onChange: () => panels.refresh(),
});
api.addEventListener("offline", () => { $("#offline").hidden = false; $("#conn").textContent = "offline"; $("#conn").className = "offline"; });
api.addEventListener("online", async () => {
  $("#offline").hidden = true;
  $("#conn").textContent = "connected";
  $("#conn").className = "online";
  if (editor.schemas.size) { try { await loadSchemas(); } catch { /* next reconnect retries */ } }
});

// ------------------------------------------------------------------ chrome

const panels = new Panels($("#panels"), editor, api, {
  loadHistoryItem: (entry) => {
    const extra = entry.prompt?.[3] ?? {};
    const workflow = extra.extra_pnginfo?.workflow;
    const data = workflow ?? (entry.prompt?.[2] ? apiToGraph(entry.prompt[2], lookup).serialize() : null);
    if (!data) { toast("This run has no workflow stored", "error"); return; }
    if (!tabs.confirmReplace("load this run's workflow")) return;
    showWorkflow(data, { undoable: true });
    files.setDocument(null);  // a run's graph is not the file that was open: Save asks for a name
    editor.markSaved();
    toast("Loaded the run's workflow");
  },
  openWorkflow,
  openFile,
  renameWorkflow: (path) => fileAction(() => files.rename(path), () => "Renamed"),
  deleteWorkflow: (path) => fileAction(() => files.remove(path), () => "Deleted"),
});

window.loom.panels = panels;

function updateTitle() {
  $("#workflow-name").textContent = files.name + (editor.unsaved ? " •" : "");
  $("#workflow-name").title = editor.unsaved ? "Unsaved changes" : files.path ? `Saved as user/${files.path}` : "Not saved on the server";
  document.title = `${editor.unsaved ? "• " : ""}${files.name} – Loom`;
}

files.addEventListener("change", updateTitle);
editor.addEventListener("graph", updateTitle);
editor.addEventListener("scope", () => renderBreadcrumb($("#breadcrumb"), editor));
editor.addEventListener("errors", () => renderErrors($("#errors"), editor));
editor.addEventListener("queue-request", (e) => queue(e.detail));
editor.addEventListener("save-request", save);
editor.addEventListener("save-as-request", saveAs);
editor.addEventListener("open-request", () => panels.show("workflows", { toggle: false }));
editor.addEventListener("lightbox", (e) => showLightbox(e.detail.images, e.detail.index));

$("#queue").addEventListener("click", (e) => queue({ front: e.shiftKey }));
$("#interrupt").addEventListener("click", async () => { try { await api.interrupt(); } catch (err) { toast(err.message, "error"); } });
$("#save").addEventListener("click", save);
$("#save-as").addEventListener("click", saveAs);
$("#export").addEventListener("click", exportWorkflow);
$("#open").addEventListener("click", () => panels.show("workflows"));
$("#export-api").addEventListener("click", exportApi);
$("#new").addEventListener("click", () => {
  if (!tabs.confirmReplace("start a new workflow")) return;
  files.setDocument(null);
  loadDefault();
});
tabs.addEventListener("new-tab", () => tabs.open(() => loadDefault()));
$("#clear").addEventListener("click", () => { showWorkflow({ nodes: [], links: [], groups: [], version: 0.4 }, { undoable: true }); files.setDocument(null); });
$("#fit").addEventListener("click", () => editor.fitView());
$("#settings").addEventListener("click", () => settings.showDialog());
$("#refresh").addEventListener("click", async () => {
  try { await loadSchemas(); editor.fillEmptyChoices(); toast("Node list refreshed"); } catch (err) { toast(err.message, "error"); }
});
$("#undo").addEventListener("click", () => editor.doUndo(false));
$("#redo").addEventListener("click", () => editor.doUndo(true));
$("#workflow-name").addEventListener("dblclick", () => {
  if (files.path) { fileAction(() => files.rename(files.path), () => `Renamed to ${files.name}`); return; }
  const name = prompt("Workflow name", files.name);
  if (name?.trim()) files.setDocument(name.trim());
});

addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("dropping"); });
addEventListener("dragleave", () => document.body.classList.remove("dropping"));
addEventListener("drop", (e) => {
  e.preventDefault();
  document.body.classList.remove("dropping");
  const file = e.dataTransfer?.files?.[0];
  if (file) loadFile(file, { x: e.clientX, y: e.clientY });
});
// An image on the clipboard (a screenshot, a copied picture) goes into a Load Image node.
addEventListener("paste", (e) => {
  const tag = document.activeElement?.tagName;
  if (tag === "INPUT" || tag === "TEXTAREA") return;
  const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
  if (!file) return;
  e.preventDefault();
  clearTimeout(editor.pendingPaste);  // an image, not the copied nodes
  editor.placeImage(file, null, null, { preferSelected: true });
});
addEventListener("beforeunload", (e) => { if (editor.unsaved) e.preventDefault(); });

// ------------------------------------------------------------------ boot

/** Plug-ins' web extensions (GET /extensions), imported before the node types register. */
async function loadExtensions() {
  let urls = [];
  try { urls = await api.request("/extensions"); } catch (err) {
    if (err.status === 0) throw err;  // offline: the boot loop waits and retries
    toast(`Could not list extensions: ${err.message}`, "error");
  }
  const failed = await app.loadExtensions(Array.isArray(urls) ? urls : []);
  for (const f of failed) toast(`Extension ${f.url} failed to load: ${f.error}`, "error", 8000);
  await app.invoke("init", app);
}

async function boot() {
  for (let attempt = 0; ; attempt++) {
    try {
      if (!app.extensionsLoaded) {
        await loadExtensions();
        app.extensionsLoaded = true;
      }
      await loadSchemas();
      break;
    } catch (err) {
      $("#offline").hidden = false;
      if (attempt === 0) toast(`Waiting for the server: ${err.message}`, "error");
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** attempt)));
    }
  }
  $("#offline").hidden = true;
  await settings.load();
  let restored = false;
  try { restored = tabs.restore(); } catch { restored = false; }
  if (!restored) {
    const saved = editor.restoreSaved();
    if (saved?.nodes) {
      try { showWorkflow(saved); } catch { loadDefault(); }
    } else loadDefault();
    tabs.adoptCurrent();
  }
  updateTitle();
  api.connect();
  await app.invoke("setup", app);
  document.body.dataset.ready = "true";
}

boot();
