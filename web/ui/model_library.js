// The Models sidebar: the server's model files per kind (GET /models, /models/{kind}),
// with a search. Clicking a file puts it into the selected node when one of its lists
// offers it (a Load Checkpoint for a checkpoint, a LoRA loader for a LoRA…), else adds
// that kind's loader with the file chosen, as ComfyUI's model library does.
import { el } from "./panels.js";
import { toast } from "./popups.js";

/** The loader node and its list input for each model folder. */
export const LOADERS = {
  checkpoints: ["CheckpointLoaderSimple", "ckpt_name"],
  loras: ["LoraLoader", "lora_name"],
  vae: ["VAELoader", "vae_name"],
  controlnet: ["ControlNetLoader", "control_net_name"],
  upscale_models: ["UpscaleModelLoader", "model_name"],
  clip_vision: ["CLIPVisionLoader", "clip_name"],
  clip: ["CLIPLoader", "clip_name"],
  text_encoders: ["CLIPLoader", "clip_name"],
  diffusion_models: ["UNETLoader", "unet_name"],
  unet: ["UNETLoader", "unet_name"],
  gligen: ["GLIGENLoader", "gligen_name"],
  style_models: ["StyleModelLoader", "style_model_name"],
};

/** The list input of `node` that offers `file`, or null. */
function listOffering(editor, node, file) {
  return editor.graph.schemaOf(node)?.inputs.find((i) => i.type === "COMBO" && i.choices?.includes(file)) ?? null;
}

/** Puts `file` of folder `kind` into the selected node, or into a new loader. */
export function useModel(editor, kind, file) {
  const selected = editor.selection.size === 1 ? editor.graph.nodes.get([...editor.selection][0]) : null;
  const input = selected && listOffering(editor, selected, file);
  if (input) { editor.setValue(selected, input.name, file); return selected; }
  const [type, name] = LOADERS[kind] ?? [];
  if (!type || !editor.schemas.get(type)) { toast(`No loader node for ${kind} files on this server`, "error"); return null; }
  const rect = editor.canvas.getBoundingClientRect();
  const node = editor.addNode(type, editor.toWorld(rect.left + rect.width / 2, rect.top + rect.height / 2));
  editor.setValue(node, name, file);
  return node;
}

export async function renderModelLibrary(body, editor, api) {
  const kinds = (await api.request("/models")).filter((k) => k in LOADERS || k === "embeddings");
  const files = Object.fromEntries(await Promise.all(kinds.map(async (k) => [k, await api.request(`/models/${encodeURIComponent(k)}`).catch(() => [])])));
  const search = el("input", { placeholder: "Search models…", "aria-label": "Search models" });
  const list = el("div", { class: "model-library" });
  const total = kinds.reduce((n, k) => n + files[k].length, 0);
  const render = () => {
    const q = search.value.toLowerCase();
    list.replaceChildren(...kinds.filter((k) => files[k].length).map((kind) => {
      const shown = files[kind].filter((f) => f.toLowerCase().includes(q));
      const details = el("details", { class: "model-kind", "data-kind": kind }, el("summary", {}, `${kind} (${shown.length})`),
        ...shown.map((file) => el("button", { class: "model-file", title: kind === "embeddings" ? `embedding:${file}` : `Use ${file}`, "data-file": file,
          onclick: () => {
            if (kind === "embeddings") { navigator.clipboard?.writeText(`embedding:${file}`); toast(`Copied embedding:${file} — paste it into a prompt`); return; }
            useModel(editor, kind, file);
          } }, file)));
      details.open = Boolean(q) || total <= 100;  // a small collection shows whole; a big one by folder
      return details;
    }));
    if (!list.children.length) list.append(el("p", { class: "muted" }, q ? "No model matches." : "No models yet: put files in models/<kind>/ and press Refresh."));
  };
  search.addEventListener("input", render);
  body.replaceChildren(el("h3", {}, "Models"), search, list);
  render();
}
