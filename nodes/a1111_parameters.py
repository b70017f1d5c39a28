"""AUTOMATIC1111's PNG ``parameters`` text as an equivalent ComfyUI txt2img prompt.

It names Loom's built-in nodes (CheckpointLoaderSimple, KSampler…), so it lives with
them, not in the engine: the editor's twin is web/lib/a1111.js.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping

from engine.workflow_format import WorkflowConversionError

#: A1111's sampler names → ComfyUI's sampler_name (schedule suffixes are split off first).
A1111_SAMPLERS = {
    "euler a": "euler_ancestral", "euler": "euler", "lms": "lms", "heun": "heun",
    "dpm2": "dpm_2", "dpm2 a": "dpm_2_ancestral", "dpm++ 2s a": "dpmpp_2s_ancestral",
    "dpm++ 2m": "dpmpp_2m", "dpm++ sde": "dpmpp_sde", "dpm++ 2m sde": "dpmpp_2m_sde",
    "dpm++ 3m sde": "dpmpp_3m_sde", "dpm fast": "dpm_fast", "dpm adaptive": "dpm_adaptive",
    "ddim": "ddim", "unipc": "uni_pc", "lcm": "lcm",
}
#: A1111's schedule types (a sampler-name suffix, or the "Schedule type" field) → ComfyUI's scheduler.
A1111_SCHEDULES = {
    "automatic": "normal", "karras": "karras", "exponential": "exponential", "sgm uniform": "sgm_uniform",
    "simple": "simple", "normal": "normal", "ddim": "ddim_uniform", "beta": "beta",
}
#: key: value pairs; values possibly "quoted, with commas"
_SETTING = re.compile(r'\s*([\w][\w \-/+.()]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def parse_a1111_parameters(text: str) -> tuple[str, str, dict[str, str]]:
    """A1111's ``parameters`` text → (prompt, negative prompt, settings by key)."""
    if not isinstance(text, str) or not text.strip():
        raise WorkflowConversionError("the A1111 parameters text is empty")
    lines = text.strip().replace("\r\n", "\n").split("\n")
    settings_at = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].lstrip().startswith("Steps:")), None)
    if settings_at is None:
        raise WorkflowConversionError("the A1111 parameters text has no settings line (one starting 'Steps:')")
    settings = {m.group(1).strip(): m.group(2).strip().strip('"') for m in _SETTING.finditer(lines[settings_at])
                if m.group(1).strip()}
    before = lines[:settings_at]
    neg_at = next((i for i, line in enumerate(before) if line.startswith("Negative prompt:")), None)
    if neg_at is None:
        return "\n".join(before).strip(), "", settings
    negative = "\n".join([before[neg_at][len("Negative prompt:"):], *before[neg_at + 1:]])
    return "\n".join(before[:neg_at]).strip(), negative.strip(), settings


def a1111_sampler(name: str, schedule_type: str | None = None) -> tuple[str, str]:
    """(sampler_name, scheduler) in ComfyUI's terms for A1111's sampler (and schedule type)."""
    key = " ".join(name.lower().split())
    scheduler = None
    for suffix, comfy in sorted(A1111_SCHEDULES.items(), key=lambda kv: -len(kv[0])):
        if key.endswith(" " + suffix) and key[: -len(suffix) - 1] in A1111_SAMPLERS:
            key, scheduler = key[: -len(suffix) - 1], comfy
            break
    if key not in A1111_SAMPLERS:
        raise WorkflowConversionError(
            f"A1111 sampler {name!r} has no ComfyUI equivalent; known: {', '.join(sorted(A1111_SAMPLERS))}",
            node_id="3", class_type="KSampler")
    if schedule_type:
        scheduler = A1111_SCHEDULES.get(" ".join(schedule_type.lower().split()))
        if scheduler is None:
            raise WorkflowConversionError(
                f"A1111 schedule type {schedule_type!r} has no ComfyUI equivalent; known: "
                f"{', '.join(sorted(A1111_SCHEDULES))}", node_id="3", class_type="KSampler")
    return A1111_SAMPLERS[key], scheduler or "normal"


def _a1111_number(settings: Mapping[str, str], key: str, kind: type, default: Any) -> Any:
    raw = settings.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = kind(float(raw)) if kind is int else kind(raw)
    except ValueError:
        raise WorkflowConversionError(f"A1111 setting {key!r} is {raw!r}, not a number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise WorkflowConversionError(f"A1111 setting {key!r} is {raw!r}, not a finite number")
    return value


def a1111_checkpoint(model: str | None, checkpoints: Iterable[str] = ()) -> str:
    """The checkpoint file for A1111's ``Model:`` name: one of ``checkpoints`` with that stem
    (any subfolder, any case), else the name with ``.safetensors``."""
    if not model:
        names = list(checkpoints)
        return names[0] if names else "model.safetensors"
    wanted = model.lower()
    for name in checkpoints:
        stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
        if wanted in (name.lower(), stem):
            return name
    return model if "." in model.rsplit("/", 1)[-1] else model + ".safetensors"


def a1111_to_api(text: str, checkpoints: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """A1111's PNG ``parameters`` text as an equivalent txt2img API prompt:
    CheckpointLoaderSimple → (CLIPSetLastLayer for ``Clip skip``) → CLIPTextEncode ×2,
    EmptyLatentImage → KSampler → VAEDecode → SaveImage.  Only the first (txt2img)
    pass is reproduced: hires fix and img2img settings are not."""
    prompt, negative, settings = parse_a1111_parameters(text)
    sampler_name, scheduler = a1111_sampler(settings.get("Sampler", "Euler"), settings.get("Schedule type"))
    size = settings.get("Size", "512x512")
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise WorkflowConversionError(f"A1111 setting 'Size' is {size!r}, not WIDTHxHEIGHT") from None
    clip: list[Any] = ["4", 1]
    api: dict[str, dict[str, Any]] = {
        "4": {"class_type": "CheckpointLoaderSimple",
              "inputs": {"ckpt_name": a1111_checkpoint(settings.get("Model"), checkpoints)}},
    }
    clip_skip = _a1111_number(settings, "Clip skip", int, 1)
    if clip_skip > 1:
        api["10"] = {"class_type": "CLIPSetLastLayer", "inputs": {"clip": clip, "stop_at_clip_layer": -clip_skip}}
        clip = ["10", 0]
    api["6"] = {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": clip}}
    api["7"] = {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": clip}}
    api["5"] = {"class_type": "EmptyLatentImage",
                "inputs": {"width": width, "height": height, "batch_size": _a1111_number(settings, "Batch size", int, 1)}}
    api["3"] = {"class_type": "KSampler", "inputs": {
        "seed": _a1111_number(settings, "Seed", int, 0), "steps": _a1111_number(settings, "Steps", int, 20),
        "cfg": _a1111_number(settings, "CFG scale", float, 7.0), "sampler_name": sampler_name,
        "scheduler": scheduler, "denoise": 1.0,
        "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}}
    api["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}}
    api["9"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "A1111", "images": ["8", 0]}}
    return api
