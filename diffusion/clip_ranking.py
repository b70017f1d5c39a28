"""Scoring images against a prompt with a CLIP model (transformers' ``CLIPModel``), offline.

A model is a transformers folder (``config.json`` + weights) or a single
``.safetensors`` file with its ``CLIPConfig`` as a ``.json`` of the same name beside
it.  Images are preprocessed as CLIP was trained (shortest side resized bicubically
to the model's image size, centre crop, CLIP's mean/std); the prompt uses Loom's
offline CLIP tokenizer.  The score is the cosine similarity of the two embeddings.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True, eq=False)
class ClipScorer:
    model: Any          # transformers CLIPModel
    source: str = ""


def load_clip_scorer(path: str | os.PathLike) -> ClipScorer:
    from transformers import CLIPConfig, CLIPModel

    from .loading import load_pretrained_folder
    from .lora import read_weights

    path = Path(path)
    if path.is_dir():
        return ClipScorer(load_pretrained_folder(CLIPModel, path, "CLIP model"), path.name)
    config_file = path.with_suffix(".json")
    if not config_file.is_file():
        raise ModelLoadError(f"{path.name}: a single-file CLIP model needs its CLIPConfig beside it as "
                             f"{config_file.name}")
    try:
        config = CLIPConfig(**json.loads(config_file.read_text()))
    except (ValueError, TypeError) as exc:
        raise ModelLoadError(f"{config_file.name}: not a CLIP config ({exc})") from exc
    state = read_weights(path)
    model = CLIPModel(config)
    expected = set(model.state_dict())
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    missing = sorted(k for k in expected - set(state) if not k.endswith("position_ids"))
    if missing or not expected & set(state):
        raise ModelLoadError(f"{path.name}: not a CLIPModel matching {config_file.name} "
                             f"({len(missing)} tensors missing, e.g. {missing[:2]})")
    try:
        model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    except RuntimeError as exc:
        raise ModelLoadError(f"{path.name}: weights do not fit {config_file.name} ({str(exc).splitlines()[1:2]})") from exc
    return ClipScorer(model.eval().requires_grad_(False), path.name)


def preprocess(images: Any, size: int) -> Any:
    """IMAGE ``[B, H, W, C]`` → CLIP pixel values ``[B, 3, size, size]``."""
    import torch
    import torch.nn.functional as F

    x = images[..., :3].movedim(-1, 1).float()
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[..., top:top + size, left:left + size]
    mean = torch.tensor(CLIP_MEAN).reshape(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).reshape(1, 3, 1, 1)
    return (x - mean) / std


def score(scorer: ClipScorer, images: Any, prompt: str) -> Any:
    """Cosine similarity of each image with the prompt, ``[B]``."""
    import torch

    from .tokenizer import clip_tokenizer

    model = scorer.model
    config = model.config
    max_len = int(config.text_config.max_position_embeddings)
    tokens = clip_tokenizer()(prompt, padding="max_length", truncation=True, max_length=max_len,
                              return_tensors="pt")
    p = next(model.parameters())
    pixels = preprocess(images, int(config.vision_config.image_size)).to(p.device, p.dtype)
    with torch.inference_mode():
        image_embeds = model.get_image_features(pixel_values=pixels)
        text_embeds = model.get_text_features(input_ids=tokens.input_ids.to(p.device),
                                              attention_mask=tokens.attention_mask.to(p.device))
    image_embeds = getattr(image_embeds, "pooler_output", image_embeds)
    text_embeds = getattr(text_embeds, "pooler_output", text_embeds)
    image_embeds = torch.nn.functional.normalize(image_embeds.float(), dim=-1)
    text_embeds = torch.nn.functional.normalize(text_embeds.float(), dim=-1)
    return (image_embeds @ text_embeds.T)[:, 0].cpu()


def rank(scorer: ClipScorer, images: Any, prompt: str, keep_top_k: int = 0) -> tuple[Any, list[float]]:
    """(images sorted best first, their scores), keeping the best ``keep_top_k`` (0 = all)."""
    scores = score(scorer, images, prompt)
    order = scores.argsort(descending=True, stable=True)
    if keep_top_k > 0:
        order = order[:keep_top_k]
    return images[order.to(images.device)], [float(scores[i]) for i in order]
