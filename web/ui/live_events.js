// The run as it happens, from the websocket's events: the running node and its
// progress, cached nodes, live previews, finished images, the overall progress bar,
// and a failed run's error on its node.
import { renderErrors } from "./panels.js";
import { toast } from "./popups.js";

/** Wires `api`'s run events to the editor. `expectedNodes()` is how many nodes the
 *  prompt now running has (for the progress bar); `onChange()` runs when the queue or
 *  history changed. */
export function followRuns(api, editor, { expectedNodes, onChange }) {
  const exec = editor.exec;
  let progressTimer = null;
  const throttledDraw = () => {
    if (progressTimer) return;
    progressTimer = setTimeout(() => { progressTimer = null; editor.redraw(); }, 80);
  };

  function setOverall(done, total) {
    document.querySelector("#progress").style.width = total ? `${Math.min(100, (100 * done) / total)}%` : "0";
  }

  api.addEventListener("status", (e) => {
    const remaining = e.detail?.status?.exec_info?.queue_remaining ?? 0;
    document.querySelector("#queue-size").textContent = remaining ? `${remaining} in queue` : "idle";
    onChange();
  });
  api.addEventListener("execution_start", (e) => {
    exec.promptId = e.detail.prompt_id;
    exec.cached = new Set();
    exec.done = 0;
    exec.total = expectedNodes();
    editor.errors.execution = null;
    setOverall(0, 1);
    editor.redraw();
  });
  api.addEventListener("execution_cached", (e) => {
    for (const id of e.detail.nodes ?? []) exec.cached.add(String(id));
    exec.done += (e.detail.nodes ?? []).length;
    setOverall(exec.done, exec.total);
    editor.graph.touch();
    editor.redraw();
  });
  api.addEventListener("executing", (e) => {
    const id = e.detail.display_node ?? e.detail.node;
    if (exec.running != null) exec.done += 1;
    exec.running = id == null ? null : editor.localId(id);
    exec.progress = null;
    setOverall(id == null ? 0 : exec.done, id == null ? 0 : exec.total);  // node null: the run is over
    editor.redraw();
  });
  api.addEventListener("progress", (e) => {
    exec.progress = { value: e.detail.value, max: e.detail.max };
    throttledDraw();
  });
  api.addEventListener("executed", (e) => {
    const local = editor.localId(e.detail.display_node ?? e.detail.node);
    const node = local == null ? null : editor.nodeById(local);
    if (node) editor.hooks.executed(node, e.detail.output ?? {});
    const images = e.detail.output?.images ?? [];
    if (!node || !images.length) return;
    node.preview = null;
    node.imageIndex = 0;
    node.images = images.map((info) => {
      const img = new Image();
      img.onload = () => { editor.graph.touch(); editor.redraw(); };
      img.src = api.viewUrl(info);
      img.dataset.filename = info.filename;
      return img;
    });
    editor.graph.touch();
    editor.redraw();
  });
  const finish = () => {
    exec.running = null;
    exec.progress = null;
    setOverall(0, 0);
    editor.redraw();
    onChange();
  };
  api.addEventListener("execution_success", finish);
  api.addEventListener("execution_interrupted", () => { finish(); toast("Interrupted"); });
  api.addEventListener("execution_error", (e) => {
    finish();
    editor.errors.execution = e.detail;
    editor.errors.nodes = new Map([[editor.localId(e.detail.node_id) ?? String(e.detail.node_id), { messages: [e.detail.exception_message], inputs: [] }]]);
    renderErrors(document.querySelector("#errors"), editor);
    toast(`Run failed in #${e.detail.node_id} ${e.detail.node_type}: ${e.detail.exception_message}`, "error", 8000);
  });
  api.addEventListener("b_preview", (e) => {
    const node = exec.running && editor.nodeById(exec.running);
    if (!node) return;
    const img = new Image();
    img.onload = () => {
      const first = !node.preview;
      if (node.preview?.src?.startsWith("blob:")) URL.revokeObjectURL(node.preview.src);
      node.preview = img;
      if (first) editor.graph.touch();  // the node grows to show it
      throttledDraw();
    };
    img.src = URL.createObjectURL(e.detail);
  });
}
