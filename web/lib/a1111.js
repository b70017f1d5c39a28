// A1111's PNG "parameters" text as an equivalent txt2img API prompt.
// The twin of a1111_to_api in engine/workflow_format.py; both run the fixtures in
// tests/workflow_format/fixtures/a1111.
import { WorkflowConversionError } from "./workflow_to_api.js";

/** A1111's sampler names → ComfyUI's sampler_name (schedule suffixes are split off first). */
export const A1111_SAMPLERS = {
  "euler a": "euler_ancestral", "euler": "euler", "lms": "lms", "heun": "heun",
  "dpm2": "dpm_2", "dpm2 a": "dpm_2_ancestral", "dpm++ 2s a": "dpmpp_2s_ancestral",
  "dpm++ 2m": "dpmpp_2m", "dpm++ sde": "dpmpp_sde", "dpm++ 2m sde": "dpmpp_2m_sde",
  "dpm++ 3m sde": "dpmpp_3m_sde", "dpm fast": "dpm_fast", "dpm adaptive": "dpm_adaptive",
  "ddim": "ddim", "unipc": "uni_pc", "lcm": "lcm",
};
/** A1111's schedule types (a sampler-name suffix, or the "Schedule type" field) → ComfyUI's scheduler. */
export const A1111_SCHEDULES = {
  "automatic": "normal", "karras": "karras", "exponential": "exponential", "sgm uniform": "sgm_uniform",
  "simple": "simple", "normal": "normal", "ddim": "ddim_uniform", "beta": "beta",
};
const SETTING = /\s*([\w][\w \-/+.()]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)/g;
const squash = (s) => s.toLowerCase().split(/\s+/).filter(Boolean).join(" ");
const pyRepr = (s) => `'${s}'`;

/** [prompt, negative prompt, settings by key]. */
export function parseA1111Parameters(text) {
  if (typeof text !== "string" || !text.trim()) throw new WorkflowConversionError("the A1111 parameters text is empty");
  const lines = text.trim().replace(/\r\n/g, "\n").split("\n");
  let settingsAt = -1;
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i].trimStart().startsWith("Steps:")) { settingsAt = i; break; }
  if (settingsAt < 0) throw new WorkflowConversionError("the A1111 parameters text has no settings line (one starting 'Steps:')");
  const settings = {};
  for (const m of lines[settingsAt].matchAll(SETTING)) {
    const key = m[1].trim();
    if (key) settings[key] = m[2].trim().replace(/^"+|"+$/g, "");
  }
  const before = lines.slice(0, settingsAt);
  const negAt = before.findIndex((line) => line.startsWith("Negative prompt:"));
  if (negAt < 0) return [before.join("\n").trim(), "", settings];
  const negative = [before[negAt].slice("Negative prompt:".length), ...before.slice(negAt + 1)].join("\n");
  return [before.slice(0, negAt).join("\n").trim(), negative.trim(), settings];
}

/** [sampler_name, scheduler] in ComfyUI's terms. */
export function a1111Sampler(name, scheduleType = null) {
  let key = squash(name);
  let scheduler = null;
  const suffixes = Object.entries(A1111_SCHEDULES).sort((a, b) => b[0].length - a[0].length);
  for (const [suffix, comfy] of suffixes) {
    const base = key.slice(0, -suffix.length - 1);
    if (key.endsWith(` ${suffix}`) && base in A1111_SAMPLERS) { key = base; scheduler = comfy; break; }
  }
  if (!(key in A1111_SAMPLERS)) {
    throw new WorkflowConversionError(`A1111 sampler ${pyRepr(name)} has no ComfyUI equivalent; known: ${Object.keys(A1111_SAMPLERS).sort().join(", ")}`, "3", "KSampler");
  }
  if (scheduleType) {
    scheduler = A1111_SCHEDULES[squash(scheduleType)] ?? null;
    if (scheduler === null) throw new WorkflowConversionError(`A1111 schedule type ${pyRepr(scheduleType)} has no ComfyUI equivalent; known: ${Object.keys(A1111_SCHEDULES).sort().join(", ")}`, "3", "KSampler");
  }
  return [A1111_SAMPLERS[key], scheduler ?? "normal"];
}

function number(settings, key, integer, fallback) {
  const raw = settings[key];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(value)) throw new WorkflowConversionError(`A1111 setting ${pyRepr(key)} is ${pyRepr(raw)}, not a number`);
  return integer ? Math.trunc(value) : value;
}

/** The checkpoint file for A1111's "Model:" name: one of `checkpoints` with that stem, else name.safetensors. */
export function a1111Checkpoint(model, checkpoints = []) {
  if (!model) return checkpoints[0] ?? "model.safetensors";
  const wanted = model.toLowerCase();
  for (const name of checkpoints) {
    const file = name.split("/").pop();
    const stem = (file.includes(".") ? file.slice(0, file.lastIndexOf(".")) : file).toLowerCase();
    if (wanted === name.toLowerCase() || wanted === stem) return name;
  }
  return model.split("/").pop().includes(".") ? model : `${model}.safetensors`;
}

/** CheckpointLoaderSimple → (CLIPSetLastLayer) → CLIPTextEncode ×2, EmptyLatentImage → KSampler → VAEDecode → SaveImage. */
export function a1111ToApi(text, checkpoints = []) {
  const [prompt, negative, settings] = parseA1111Parameters(text);
  const [samplerName, scheduler] = a1111Sampler(settings.Sampler ?? "Euler", settings["Schedule type"] ?? null);
  const size = settings.Size ?? "512x512";
  const parts = size.toLowerCase().split("x");
  const dims = parts.map((p) => (/^\s*\d+\s*$/.test(p) ? Number(p) : NaN));
  if (dims.length !== 2 || dims.some((d) => !Number.isInteger(d))) throw new WorkflowConversionError(`A1111 setting 'Size' is ${pyRepr(size)}, not WIDTHxHEIGHT`);
  let clip = ["4", 1];
  const api = { 4: { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: a1111Checkpoint(settings.Model, checkpoints) } } };
  const clipSkip = number(settings, "Clip skip", true, 1);
  if (clipSkip > 1) {
    api[10] = { class_type: "CLIPSetLastLayer", inputs: { clip, stop_at_clip_layer: -clipSkip } };
    clip = ["10", 0];
  }
  api[6] = { class_type: "CLIPTextEncode", inputs: { text: prompt, clip } };
  api[7] = { class_type: "CLIPTextEncode", inputs: { text: negative, clip } };
  api[5] = { class_type: "EmptyLatentImage", inputs: { width: dims[0], height: dims[1], batch_size: number(settings, "Batch size", true, 1) } };
  api[3] = { class_type: "KSampler", inputs: {
    seed: number(settings, "Seed", true, 0), steps: number(settings, "Steps", true, 20), cfg: number(settings, "CFG scale", false, 7),
    sampler_name: samplerName, scheduler, denoise: 1, model: ["4", 0], positive: ["6", 0], negative: ["7", 0], latent_image: ["5", 0],
  } };
  api[8] = { class_type: "VAEDecode", inputs: { samples: ["3", 0], vae: ["4", 2] } };
  api[9] = { class_type: "SaveImage", inputs: { filename_prefix: "A1111", images: ["8", 0] } };
  return api;
}
