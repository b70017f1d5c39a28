"""Latents as files: SaveLatent (to output/) and LoadLatent (from input/), in ComfyUI's
``.latent`` format so files move freely between Loom and ComfyUI.

A ``.latent`` file is a safetensors file holding ``latent_tensor`` (the raw VAE latent,
``[B, C, h, w]``) and an empty ``latent_format_version_0`` tensor that marks the raw-latent
convention; its metadata carries ``prompt`` (the API prompt as JSON, ``""`` when unknown)
and one JSON entry per ``extra_pnginfo`` key (the editor's ``workflow``), as ComfyUI writes
them.  A file without the version marker comes from before ComfyUI switched to raw latents:
its values were scaled by SD's 0.18215, so LoadLatent divides them back, as ComfyUI does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.declare import Combo, Socket, String, node
from engine.node import NodeContext, NodeOutput

from .folders import file_digest, split_annotation
from .latent_resize import _check

LATENT = Socket("LATENT")
EXTENSION = ".latent"
TENSOR_KEY = "latent_tensor"
VERSION_KEY = "latent_format_version_0"
#: What latents were multiplied by in files written before the version marker existed.
LEGACY_SCALE = 0.18215


def _jsonable(value: Any) -> Any:
    # prompts reach nodes as read-only mappings
    if hasattr(value, "items"):
        return dict(value.items())
    raise TypeError(f"{type(value).__name__} cannot be written as latent metadata")


def latent_metadata(prompt: Any, extra_pnginfo: Any) -> dict[str, str]:
    """The safetensors metadata ComfyUI's SaveLatent writes."""
    metadata = {"prompt": "" if prompt is None else json.dumps(prompt, default=_jsonable)}
    for key, value in (extra_pnginfo or {}).items():
        metadata[str(key)] = json.dumps(value, default=_jsonable)
    return metadata


def write_latent(folder: Path, filename: str, counter: int, samples: Any, metadata: dict[str, str]) -> str:
    """Write ``{filename}_{counter:05}_.latent`` (the next free counter: never overwrites a
    file, even when two saves race); returns the file's name."""
    import torch
    from safetensors.torch import save

    data = save({TENSOR_KEY: samples.contiguous(), VERSION_KEY: torch.tensor([])}, metadata=metadata)
    while True:
        name = f"{filename}_{counter:05}_{EXTENSION}"
        try:
            with open(folder / name, "xb") as stream:
                stream.write(data)
        except FileExistsError:
            counter += 1
            continue
        except BaseException:
            (folder / name).unlink(missing_ok=True)
            raise
        return name


@node(category="_for_testing", display_name="SaveLatent", output_node=True, output_names=("samples",))
def SaveLatent(ctx: NodeContext, samples: LATENT,
               filename_prefix: str = String("latents/ComfyUI")) -> LATENT:
    """Saves the latent to the output folder as a .latent file (with the prompt and workflow),
    for LoadLatent or ComfyUI to read back; passes the latent on."""
    latent = _check(samples)
    target = ctx.env.folders.next_save_path(filename_prefix, 0, 0, "output")
    name = write_latent(target.folder, target.filename, target.counter, latent.cpu(),
                        latent_metadata(ctx.prompt, ctx.extra_pnginfo))
    record = {"filename": name, "subfolder": target.subfolder, "type": "output"}
    return NodeOutput(samples, ui={"latents": [record]})


# -- loading ------------------------------------------------------------------------------


def _input_latents(env: Any) -> list[str]:
    return [] if env is None else env.folders.list_files("input", (EXTENSION,))


def _latent_file(env: Any, latent: str) -> Path:
    path = env.folders.annotated_path(latent, "input")
    if not path.is_file():
        root, name = split_annotation(latent, "input")
        raise FileNotFoundError(f"Invalid latent file: {name} (not found in the {root} folder)")
    return path


def _latent_digest(latent: str, env: Any = None) -> Any:
    """LoadLatent's fingerprint: the file's sha256, so a replaced file re-runs."""
    if env is None:
        return float("nan")
    return file_digest(_latent_file(env, latent))


def _check_latent_file(latent: str, env: Any = None) -> bool | str:
    if latent is None or env is None:
        return True
    try:
        _latent_file(env, latent)
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)
    return True


def read_latent(path: Path) -> dict:
    """A ``.latent`` file as a LATENT (raw values; pre-marker files rescaled by 1/0.18215)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"'{path.name}' is not a .latent (safetensors) file that can be read: {exc}") from None
    if TENSOR_KEY not in tensors:
        raise ValueError(f"'{path.name}' holds no '{TENSOR_KEY}' tensor, so it is not a .latent file "
                         f"(it has: {', '.join(sorted(tensors)) or 'nothing'})")
    multiplier = 1.0 if VERSION_KEY in tensors else 1.0 / LEGACY_SCALE
    return {"samples": tensors[TENSOR_KEY].float() * multiplier}


@node(category="_for_testing", display_name="LoadLatent", fingerprint=_latent_digest, validate=_check_latent_file)
def LoadLatent(ctx: NodeContext, latent: str = Combo(options=_input_latents)) -> LATENT:
    """Loads a .latent file (as SaveLatent or ComfyUI writes them) from the input folder."""
    return read_latent(_latent_file(ctx.env, latent))
