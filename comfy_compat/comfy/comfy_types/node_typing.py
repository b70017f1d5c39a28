"""Type names and typing helpers for V1 nodes (``comfy.comfy_types.node_typing``)."""

from __future__ import annotations

from abc import ABC
from enum import Enum
from typing import Any, Literal, TypedDict

from engine.schema import ANY


class IO(str, Enum):
    """Socket type names.  Members compare equal to their strings (``IO.IMAGE ==
    "IMAGE"``); ``IO.ANY`` is ``"*"``, which Loom's type check matches with everything."""

    def __str__(self) -> str:
        return self.value

    ANY = ANY
    NUMBER = "FLOAT,INT"
    PRIMITIVE = "STRING,FLOAT,INT,BOOLEAN"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    INT = "INT"
    FLOAT = "FLOAT"
    COMBO = "COMBO"
    CONDITIONING = "CONDITIONING"
    SAMPLER = "SAMPLER"
    SIGMAS = "SIGMAS"
    GUIDER = "GUIDER"
    NOISE = "NOISE"
    CLIP = "CLIP"
    CONTROL_NET = "CONTROL_NET"
    VAE = "VAE"
    MODEL = "MODEL"
    LORA_MODEL = "LORA_MODEL"
    CLIP_VISION = "CLIP_VISION"
    CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"
    STYLE_MODEL = "STYLE_MODEL"
    GLIGEN = "GLIGEN"
    UPSCALE_MODEL = "UPSCALE_MODEL"
    LATENT = "LATENT"
    IMAGE = "IMAGE"
    MASK = "MASK"
    AUDIO = "AUDIO"
    VIDEO = "VIDEO"
    PHOTOMAKER = "PHOTOMAKER"
    POINT = "POINT"
    FACE_ANALYSIS = "FACE_ANALYSIS"
    BBOX = "BBOX"
    SEGS = "SEGS"


class InputTypeOptions(TypedDict, total=False):
    default: Any
    min: float
    max: float
    step: float
    round: float
    tooltip: str
    forceInput: bool
    lazy: bool
    rawLink: bool
    multiline: bool
    placeholder: str
    control_after_generate: bool
    image_upload: bool


class InputTypeDict(TypedDict, total=False):
    required: dict[str, tuple]
    optional: dict[str, tuple]
    hidden: dict[str, Any]


class FileLocator(TypedDict):
    filename: str
    subfolder: str
    type: Literal["input", "output", "temp"]


class ComfyNodeABC(ABC):
    """Base class V1 nodes may inherit for type hints; it adds no behaviour."""

    DESCRIPTION: str
    CATEGORY: str
    RETURN_TYPES: tuple
    FUNCTION: str


class CheckLazyMixin:
    """``check_lazy_status`` asking for every lazy input that is still unevaluated."""

    def check_lazy_status(self, **kwargs: Any) -> list[str]:
        return [name for name, value in kwargs.items() if value is None]
