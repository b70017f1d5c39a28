"""CLIPRankImages (Loom's node): score a batch of images against a prompt with a CLIP model
from models/clip_vision and keep the best — the "generate many, keep the best" loop."""

from __future__ import annotations

from engine.declare import Combo, Int, String, node
from engine.node import NodeContext

from .imaging import IMAGE


def _clip_models(env):
    if env is None:
        return []
    files = env.folders.list_models("clip_vision", extensions=(".safetensors",))
    folders = sorted({p.name for d in env.folders.model_dirs("clip_vision") if d.is_dir()
                      for p in d.iterdir() if p.is_dir() and (p / "config.json").is_file()})
    return sorted(set(files) | set(folders))


@node(category="image/ranking", display_name="CLIP Rank Images", output_names=("images", "scores", "scores_text"),
      output_is_list=(False, True, False))
def CLIPRankImages(ctx: NodeContext,
                   images: IMAGE,
                   clip_name: str = Combo(_clip_models, model_kind="clip_vision"),
                   prompt: str = String("", multiline=True),
                   keep_top_k: int = Int(0, min=0, max=4096,
                                         tooltip="How many of the best images to keep; 0 keeps all.")
                   ) -> tuple[IMAGE, float, str]:
    """Sorts the images by CLIP similarity to the prompt (best first), keeps the top k, and
    outputs their scores (cosine similarity) as a list and as text."""
    from diffusion.clip_ranking import load_clip_scorer, rank

    folders = ctx.env.folders
    plain = clip_name and "/" not in clip_name and "\\" not in clip_name and not clip_name.startswith(".")
    path = next((d / clip_name for d in folders.model_dirs("clip_vision")
                 if plain and (d / clip_name / "config.json").is_file()), None)
    if path is None:
        path = folders.model_path("clip_vision", clip_name)
    models = ctx.env.models  # kept resident: a "generate, rank" loop reads the model once
    scorer = models.load_file(path, "clip_scorer", load_clip_scorer, modules=lambda loaded: (loaded.model,))
    models.use(scorer.model)
    ranked, scores = rank(scorer, images, prompt, keep_top_k)
    return ranked, scores, ", ".join(f"{s:.4f}" for s in scores)
