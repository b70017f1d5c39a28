// Side panels: queue, history, node library; the errors panel; the image lightbox.
import { toast } from "./popups.js";
import { renderModelLibrary } from "./model_library.js";
import { copyImage, openImage, saveImage } from "./image_actions.js";

/** A DOM element with attributes (`on…` ones become listeners) and children. */
export const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  e.append(...children.filter((c) => c != null));
  return e;
};

export class Panels {
  constructor(root, editor, api, { loadHistoryItem, openWorkflow, openFile, renameWorkflow, deleteWorkflow }) {
    this.root = root;
    this.editor = editor;
    this.api = api;
    this.loadHistoryItem = loadHistoryItem;
    this.openWorkflow = openWorkflow;
    this.openFile = openFile;
    this.renameWorkflow = renameWorkflow;
    this.deleteWorkflow = deleteWorkflow;
    this.tab = null;
    this.body = root.querySelector(".panel-body");
    for (const button of root.querySelectorAll("[data-tab]")) button.addEventListener("click", () => this.show(button.dataset.tab));
  }

  show(tab, { toggle = true } = {}) {
    this.tab = toggle && this.tab === tab ? null : tab;
    this.root.classList.toggle("open", Boolean(this.tab));
    for (const b of this.root.querySelectorAll("[data-tab]")) b.classList.toggle("active", b.dataset.tab === this.tab);
    this.refresh();
  }

  async refresh() {
    if (!this.tab) return;
    try {
      if (this.tab === "queue") await this.renderQueue();
      else if (this.tab === "history") await this.renderHistory();
      else if (this.tab === "library") this.renderLibrary();
      else if (this.tab === "workflows") await this.renderWorkflows();
      else if (this.tab === "models") await renderModelLibrary(this.body, this.editor, this.api);
    } catch (err) {
      this.body.replaceChildren(el("p", { class: "muted" }, `Could not load: ${err.message}`));
    }
  }

  async renderQueue() {
    const q = await this.api.queue();
    const row = (item, running) => el("li", { class: running ? "running" : "" },
      el("span", { class: "queue-entry", title: promptSnippet(item[2]) }, `${running ? "▶ running" : `#${item[0]}`} `, el("code", {}, String(item[1]).slice(0, 8)),
        promptSnippet(item[2]) ? el("small", { class: "run-snippet" }, ` ${promptSnippet(item[2])}`) : null),
      el("button", { class: "small", title: running ? "Interrupt" : "Cancel", onclick: async () => {
        if (running) await this.api.interrupt(); else await this.api.deleteFromQueue([item[1]]);
        this.refresh();
      } }, running ? "Stop" : "Cancel"));
    const running = q.queue_running ?? [];
    const pending = [...(q.queue_pending ?? [])].sort((a, b) => a[0] - b[0]);
    this.body.replaceChildren(
      el("h3", {}, `Queue (${running.length} running, ${pending.length} pending)`),
      el("ul", { class: "queue-list" }, ...running.map((i) => row(i, true)), ...pending.map((i) => row(i, false))),
      el("button", { onclick: async () => { await this.api.clearQueue(); this.refresh(); } }, "Clear pending"),
    );
  }

  /** Rename and Delete for a saved workflow of the Open list ("user/<path under workflows/>"). */
  savedFileButtons(name) {
    const path = `workflows/${name.slice("user/".length)}`;
    return [
      el("button", { class: "small rename-workflow", title: `Rename ${name}`, "data-name": name, onclick: () => this.renameWorkflow(path) }, "Rename"),
      el("button", { class: "small delete-workflow", title: `Delete ${name}`, "data-name": name, onclick: () => this.deleteWorkflow(path) }, "Delete"),
    ];
  }

  /** The Open list: shipped example workflows and the user's saved ones (GET /workflows). */
  async renderWorkflows() {
    const entries = await this.api.workflows();
    const section = (source, title, empty) => {
      const mine = entries.filter((e) => e.source === source);
      return [el("h4", {}, title), mine.length
        ? el("ul", { class: "workflow-list" }, ...mine.map((e) => el("li", { class: e.description ? "described" : "" },
          el("button", { class: "workflow-entry", title: `Open ${e.name}`, "data-name": e.name, onclick: () => this.openWorkflow(e.name) },
            e.title || e.name.replace(/^user\//, "").replace(/\.json$/i, ""),
            e.description ? el("small", { class: "workflow-description" }, e.description) : null),
          ...(source === "user" ? this.savedFileButtons(e.name) : []))))
        : el("p", { class: "muted" }, empty)];
    };
    this.body.replaceChildren(el("h3", {}, "Open a workflow"),
      el("button", { onclick: () => this.openFile() }, "From a file on this computer…"),
      ...section("shipped", "Examples", "No example workflows are installed."),
      ...section("user", "Saved", "No saved workflows (user/workflows/ is empty)."));
  }

  async renderHistory() {
    const history = await this.api.history(64);
    const runs = Object.entries(history).reverse().map(([id, entry]) => describeRun(id, entry));
    const gallery = runs.flatMap((run) => run.images);
    const card = (run) => el("li", { class: `history-item ${run.status}`, "data-prompt-id": run.id },
      run.images[0]
        ? el("img", { src: this.api.viewUrl(run.images[0]), alt: "output", loading: "lazy", title: "Show the outputs",
          onclick: () => showLightbox(run.images.map((info) => this.viewImage(info)), 0) })
        : el("div", { class: "thumb-empty" }, run.status === "success" ? "no image" : run.status),
      el("div", { class: "run-info" },
        el("span", { class: `run-status ${run.status}` }, run.status),
        el("small", { title: run.finishedAt ? new Date(run.finishedAt).toLocaleString() : "" },
          [run.finishedAt ? new Date(run.finishedAt).toLocaleTimeString() : null, run.seconds != null ? `${run.seconds.toFixed(1)} s` : null,
            run.images.length > 1 ? `${run.images.length} images` : null].filter(Boolean).join(" · ")),
        run.snippet ? el("small", { class: "run-snippet", title: run.snippet }, run.snippet) : null),
      el("div", { class: "run-actions" },
        el("button", { class: "small load-run", title: "Load this run's workflow", onclick: () => this.loadHistoryItem(run.entry) }, "Load"),
        el("button", { class: "small delete-run", title: "Delete from history", onclick: async () => { await this.api.json("/history", { delete: [run.id] }); this.refresh(); } }, "Delete")));
    this.body.replaceChildren(el("h3", {}, "History"),
      runs.length ? el("ul", { class: "history-list" }, ...runs.map(card)) : el("p", { class: "muted" }, "Nothing has run yet."),
      gallery.length ? el("button", { class: "open-gallery", onclick: () => this.showGallery(gallery) }, `Gallery (${gallery.length})`) : null,
      el("button", { onclick: async () => { await this.api.clearHistory(); this.refresh(); } }, "Clear history"));
  }

  viewImage(info) {
    const img = new Image();
    img.src = this.api.viewUrl(info);
    img.dataset.filename = info.filename;
    return img;
  }

  /** Every output of the listed runs as thumbnails; a click opens the lightbox there. */
  showGallery(infos) {
    const images = infos.map((info) => this.viewImage(info));
    const close = () => { box.remove(); removeEventListener("keydown", onKey); };
    const onKey = (e) => { if (e.key === "Escape" && !document.querySelector(".lightbox")) close(); };
    const box = el("div", { class: "gallery", onclick: (e) => { if (e.target === box) close(); } },
      el("div", { class: "gallery-head" }, el("h3", {}, `All outputs (${images.length})`), el("button", { class: "small", onclick: close }, "Close")),
      el("div", { class: "gallery-grid" }, ...infos.map((info, i) =>
        el("img", { src: this.api.viewUrl(info), alt: info.filename, title: info.filename, loading: "lazy", onclick: () => showLightbox(images, i) }))));
    addEventListener("keydown", onKey);
    document.body.append(box);
  }

  renderLibrary() {
    const tree = new Map();
    for (const schema of this.editor.schemaList) {
      if ((schema.category ?? "").split("/").includes("_for_testing")) continue;  // ComfyUI hides these too
      const cat = schema.category || "other";
      if (!tree.has(cat)) tree.set(cat, []);
      tree.get(cat).push(schema);
    }
    const filter = el("input", { placeholder: "Filter nodes…", "aria-label": "Filter nodes" });
    const list = el("div", { class: "library" });
    const render = () => {
      const q = filter.value.toLowerCase();
      list.replaceChildren(...[...tree.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([cat, schemas]) => {
        const shown = schemas.filter((s) => !q || s.displayName.toLowerCase().includes(q) || s.classType.toLowerCase().includes(q));
        if (!shown.length) return null;
        return el("details", q ? { open: "" } : {}, el("summary", {}, cat),
          ...shown.sort((a, b) => a.displayName.localeCompare(b.displayName)).map((s) => el("button", {
            class: "library-node", title: s.description || s.classType,
            onclick: () => {
              const W = this.editor.canvas.clientWidth;
              const H = this.editor.canvas.clientHeight;
              const r = this.editor.canvas.getBoundingClientRect();
              const [x, y] = this.editor.toWorld(r.left + W / 2, r.top + H / 2);
              this.editor.addNode(s.classType, [x - 100, y - 50]);
            },
          }, s.displayName)));
      }).filter(Boolean));
    };
    filter.addEventListener("input", render);
    filter.addEventListener("keydown", (e) => e.stopPropagation());
    render();
    this.body.replaceChildren(el("h3", {}, "Node library"), filter, list);
  }
}

/** Lists node errors (validation or execution) with a collapsible traceback. */
export function renderErrors(box, editor) {
  const { nodes, execution } = editor.errors;
  box.replaceChildren();
  if (!nodes.size && !execution) { box.hidden = true; return; }
  box.hidden = false;
  const close = el("button", { class: "small close", "aria-label": "Dismiss errors", onclick: () => { editor.errors = { nodes: new Map(), execution: null }; editor.graph.touch(); editor.redraw(); renderErrors(box, editor); } }, "×");
  box.append(close, el("h3", {}, execution ? "The run failed" : "The workflow has errors"));
  if (execution) {
    box.append(el("p", { class: "error-node" }, el("a", { href: "#", onclick: (e) => { e.preventDefault(); editor.centerOn(execution.node_id); } }, `#${execution.node_id} ${execution.node_type ?? ""}`)),
      el("p", { class: "error-message" }, `${execution.exception_type ? `${execution.exception_type}: ` : ""}${execution.exception_message ?? ""}`));
    if (execution.traceback?.length) box.append(el("details", {}, el("summary", {}, "Traceback"), el("pre", {}, execution.traceback.join(""))));
    return;
  }
  for (const [id, info] of nodes) {
    const node = editor.nodeById(id);
    box.append(el("div", { class: "error-entry" },
      el("a", { href: "#", onclick: (e) => { e.preventDefault(); editor.centerOn(node?.id ?? id); } }, `#${id} ${node ? editor.titleOf(node) : info.classType ?? ""}`),
      el("ul", {}, ...info.messages.map((m) => el("li", {}, m)))));
  }
}

/** One history entry as the panel shows it: status (success, error, interrupted), when it
 *  ended, how long it ran, its images and a snippet of its prompt text. */
export function describeRun(id, entry) {
  const messages = entry.status?.messages ?? [];
  const at = (type) => messages.find((m) => m[0] === type)?.[1]?.timestamp ?? null;
  const interrupted = messages.some((m) => m[0] === "execution_interrupted");
  const status = interrupted ? "interrupted" : entry.status?.status_str ?? (entry.status?.completed ? "success" : "unknown");
  const started = at("execution_start");
  const finishedAt = at("execution_success") ?? at("execution_error") ?? at("execution_interrupted");
  return {
    id, entry, status, finishedAt,
    seconds: started != null && finishedAt != null ? (finishedAt - started) / 1000 : null,
    images: Object.values(entry.outputs ?? {}).flatMap((o) => o.images ?? []),
    snippet: promptSnippet(entry.prompt?.[2]),
  };
}

/** The first prompt text of an API prompt, shortened, to tell runs apart. */
export function promptSnippet(prompt, length = 80) {
  const text = Object.values(prompt ?? {}).map((n) => n?.inputs?.text).find((t) => typeof t === "string" && t.trim()) ?? "";
  return text.length > length ? `${text.slice(0, length)}…` : text;
}

/** Scale that fits a w×h image into the lightbox: small outputs grow, large ones shrink. */
export function lightboxScale(w, h, viewW, viewH) {
  if (!w || !h) return 1;
  return Math.min((0.85 * viewW) / w, (0.78 * viewH) / h);
}

export function showLightbox(images, index = 0) {
  let i = index;
  const img = el("img", { alt: "output image" });
  const caption = el("span", {});
  const fit = () => {
    const scale = lightboxScale(img.naturalWidth, img.naturalHeight, innerWidth, innerHeight);
    img.style.width = `${Math.round(img.naturalWidth * scale)}px`;
    img.style.height = `${Math.round(img.naturalHeight * scale)}px`;
    img.style.imageRendering = scale >= 3 ? "pixelated" : "auto";  // a 64 px image stays crisp, not a blur
  };
  img.addEventListener("load", fit);
  const show = () => { img.src = images[i].src; caption.textContent = `${i + 1} / ${images.length}`; };
  const close = () => { box.remove(); removeEventListener("keydown", onKey); };
  const box = el("div", { class: "lightbox", onclick: (e) => { if (e.target === box) close(); } },
    el("button", { class: "nav", onclick: () => { i = (i - 1 + images.length) % images.length; show(); } }, "‹"),
    el("figure", {}, img, el("figcaption", {}, caption,
      el("button", { class: "small lightbox-open", onclick: () => openImage(images[i]) }, "Open"),
      el("button", { class: "small lightbox-download", onclick: () => saveImage(images[i]) }, "Download"),
      el("button", { class: "small lightbox-copy", onclick: () => copyImage(images[i]) }, "Copy"))),
    el("button", { class: "nav", onclick: () => { i = (i + 1) % images.length; show(); } }, "›"));
  const onKey = (e) => { if (e.key === "Escape") close(); };
  addEventListener("keydown", onKey);
  document.body.append(box);
  show();
}
