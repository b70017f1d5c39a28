"""Scoring images against a prompt with a CLIP model (transformers' ``CLIPModel``), offline.

A model is a transformers folder (``config.json`` + weights) or a single
``.safetensors`` file of ``CLIPModel`` tensors.  A single file's ``CLIPConfig`` is
read from the tensor shapes (as :mod:`diffusion.clip_vision` does for the image
tower), so a downloaded model file is enough; a ``.json`` of the same name beside
it, when there is one, is used instead (for a model the shapes mislead about, e.g.
LAION's ViT-B/32, which uses gelu where OpenAI's uses quick_gelu).  Images are
preprocessed as CLIP was trained (shortest side resized bicubically to the model's
image size, centre crop, CLIP's mean/std); the prompt uses Loom's offline CLIP
tokenizer.  The score is the cosine similarity of the two embeddings.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import ModelLoadError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True, eq=False)
class ClipScorer:
    model: Any          # transformers CLIPModel
    source: str = ""


#: Head width of every released CLIP text tower (ViT-B 512 → 8 heads, ViT-L 768 → 12,
#: ViT-H/g 1024 → 16, ViT-bigG 1280 → 20); shapes cannot tell the head count.
TEXT_HEAD_WIDTH = 64
#: Keys of transformers' CLIPModel layout that a single file must have.
TEXT_PROBE = "text_model.embeddings.token_embedding.weight"
VISION_PROBE = "vision_model.embeddings.patch_embedding.weight"


def clip_config_from_shapes(shapes: Mapping[str, Sequence[int]], what: str) -> dict[str, Any]:
    """``CLIPConfig`` kwargs for the CLIPModel tensors whose shapes are given.

    Sizes, layers, patch and image size, vocabulary and positions come from the
    shapes; the vision tower's heads and the activation from the known CLIP towers
    (:func:`diffusion.clip_vision.vision_family`, keyed by width), which the text
    tower of the same model shares; text heads are ``width / 64``."""
    from .clip_vision import VisionLayout, vision_config_from_shapes

    if TEXT_PROBE not in shapes or VISION_PROBE not in shapes:
        if any(k.endswith(VISION_PROBE) for k in shapes):
            raise ModelLoadError(f"{what} is a CLIP vision tower only; ranking needs a whole CLIP model "
                                 "(text and vision towers, transformers' CLIPModel layout)")
        raise ModelLoadError(f"{what} is not a CLIP model in transformers' CLIPModel layout "
                             f"(no {TEXT_PROBE} / {VISION_PROBE})")
    vision = vision_config_from_shapes(shapes, VisionLayout("", openclip=False), what)
    try:
        vocab, width = shapes[TEXT_PROBE]
        positions = shapes["text_model.embeddings.position_embedding.weight"][0]
        mlp = shapes["text_model.encoder.layers.0.mlp.fc1.weight"][0]
        projection = shapes["text_projection.weight"][0]
    except KeyError as exc:
        raise ModelLoadError(f"{what}: the CLIP text weights are incomplete: cannot find {exc}") from exc
    layer = re.compile(r"text_model\.encoder\.layers\.(\d+)\.")
    layers = len({m.group(1) for k in shapes if (m := layer.match(k))})
    if int(projection) != vision["projection_dim"]:
        raise ModelLoadError(f"{what}: the text and image projections differ in width "
                             f"({projection} and {vision['projection_dim']}); not one CLIP model")
    text = dict(vocab_size=int(vocab), hidden_size=int(width), intermediate_size=int(mlp), num_hidden_layers=layers,
                num_attention_heads=max(1, int(width) // TEXT_HEAD_WIDTH), max_position_embeddings=int(positions),
                hidden_act=vision["hidden_act"], projection_dim=int(projection), layer_norm_eps=1e-5)
    return dict(text_config=text, vision_config=vision, projection_dim=int(projection))


def _config(path: Path):
    """The single file's CLIPConfig: from ``<name>.json`` beside it, else from its shapes."""
    from transformers import CLIPConfig

    from .loading import WeightSource

    config_file = path.with_suffix(".json")
    if config_file.is_file():
        try:
            return CLIPConfig(**json.loads(config_file.read_text())), config_file.name
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"{config_file.name}: not a CLIP config ({exc})") from exc
    return CLIPConfig(**clip_config_from_shapes(WeightSource(path).shapes(), path.name)), "the config its shapes give"


def load_clip_scorer(path: str | os.PathLike) -> ClipScorer:
    import torch
    from transformers import CLIPModel

    from .loading import load_pretrained_folder
    from .lora import read_weights

    path = Path(path)
    if path.is_dir():
        return ClipScorer(load_pretrained_folder(CLIPModel, path, "CLIP model"), path.name)
    config, config_name = _config(path)
    state = read_weights(path, torch.float32)
    from .loading import _empty

    model = _empty(lambda: CLIPModel(config))  # no random init of weights about to be replaced
    expected = set(model.state_dict())
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    missing = sorted(k for k in expected - set(state) if not k.endswith("position_ids"))
    if missing or not expected & set(state):
        raise ModelLoadError(f"{path.name}: not a CLIPModel matching {config_name} "
                             f"({len(missing)} tensors missing, e.g. {missing[:2]})")
    try:
        model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False, assign=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{path.name}: weights do not fit {config_name} ({str(exc).splitlines()[1:2]})") from exc
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
