"""``comfy_api.latest.ui``: what a V3 node shows in the editor (``NodeOutput(ui=...)``)."""

from __future__ import annotations

import random
import string
from typing import Any

from .io import FolderType, _UIOutput


class SavedResult(dict):
    """A file the editor can fetch through ``/view``."""

    def __init__(self, filename: str, subfolder: str, type: FolderType | str):
        super().__init__(filename=filename, subfolder=subfolder, type=getattr(type, "value", type))


class SavedImages(_UIOutput):
    def __init__(self, results: list[SavedResult], is_animated: bool = False):
        self.results = results
        self.is_animated = is_animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": [dict(r) for r in self.results], "animated": (self.is_animated,)}


class PreviewText(_UIOutput):
    def __init__(self, value: str, **kwargs: Any):
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        return {"text": (self.value,)}


class PreviewImage(_UIOutput):
    """Writes the images to temp/ (as ComfyUI's preview does) and shows them."""

    def __init__(self, image: Any, animated: bool = False, cls: Any = None, **kwargs: Any):
        self.results = _save_to_temp(image)
        self.animated = animated

    def as_dict(self) -> dict[str, Any]:
        return {"images": [dict(r) for r in self.results], "animated": (self.animated,)}


class PreviewMask(PreviewImage):
    def __init__(self, mask: Any, animated: bool = False, cls: Any = None, **kwargs: Any):
        super().__init__(mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3),
                         animated, cls)


def _save_to_temp(images: Any) -> list[SavedResult]:
    import numpy as np
    from PIL import Image as PILImage

    from loom_compat.binding import active

    folders = active().folders
    suffix = "_temp_" + "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    target = folders.next_save_path("ComfyUI" + suffix, images.shape[2], images.shape[1], root="temp")
    saved = []
    for index, image in enumerate(images):
        pixels = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)
        name = target.file_name(target.counter + index, index)
        PILImage.fromarray(pixels).save(target.folder / name, compress_level=1)
        saved.append(SavedResult(name, target.subfolder, FolderType.temp))
    return saved


__all__ = ["SavedResult", "SavedImages", "PreviewText", "PreviewImage", "PreviewMask"]
