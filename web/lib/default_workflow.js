// The txt2img graph a first-time user sees, built from the server's schemas.
import { Graph } from "./graph.js";

export const CHECKPOINT_HELP = "No checkpoint found. Put a .safetensors checkpoint in models/checkpoints (in the folder Loom runs from), then press Refresh.";

/** A Graph with txt2img wired up, or a graph with one note when the server lacks the nodes. */
export function defaultWorkflow(schemaLookup) {
  const g = new Graph(schemaLookup);
  const needed = ["CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage"];
  const missing = needed.filter((t) => !schemaLookup(t));
  if (missing.length) {
    const note = g.addNode("Note", [80, 80]);
    note.values.text = `Welcome to Loom. This server has no ${missing.join(", ")} node yet, so there is no default txt2img graph. Double-click the canvas to add nodes.`;
    note.size = [420, 120];
    return g;
  }
  const loader = g.addNode("CheckpointLoaderSimple", [40, 200]);
  const positive = g.addNode("CLIPTextEncode", [420, 60]);
  const negative = g.addNode("CLIPTextEncode", [420, 300]);
  const latent = g.addNode("EmptyLatentImage", [420, 540]);
  const sampler = g.addNode("KSampler", [820, 120]);
  const decode = g.addNode("VAEDecode", [1180, 120]);
  const save = g.addNode("SaveImage", [1480, 120]);
  positive.title = "Positive prompt";
  negative.title = "Negative prompt";
  positive.values.text = "a photograph of a lighthouse on a cliff at sunset, detailed, warm light";
  negative.values.text = "blurry, low quality, watermark, text";
  const checkpoints = schemaLookup("CheckpointLoaderSimple").inputs.find((s) => s.name === "ckpt_name")?.choices ?? [];
  loader.values.ckpt_name = checkpoints[0] ?? "";
  if (!checkpoints.length) {
    const note = g.addNode("Note", [40, 420]);
    note.values.text = CHECKPOINT_HELP;
    note.size = [330, 110];
    note.color = "#5a4a1f";
  }
  g.connect(loader.id, 0, sampler.id, "model");
  g.connect(loader.id, 1, positive.id, "clip");
  g.connect(loader.id, 1, negative.id, "clip");
  g.connect(positive.id, 0, sampler.id, "positive");
  g.connect(negative.id, 0, sampler.id, "negative");
  g.connect(latent.id, 0, sampler.id, "latent_image");
  g.connect(sampler.id, 0, decode.id, "samples");
  g.connect(loader.id, 2, decode.id, "vae");
  g.connect(decode.id, 0, save.id, "images");
  save.size = [320, 340];
  return g;
}
