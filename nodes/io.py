"""Image files in and out: LoadImage (from input/), SaveImage (to output/),
PreviewImage (to temp/).

Names, inputs and the ``ui`` payloads are ComfyUI's, so editors and API clients
that read ``{"images": [{"filename", "subfolder", "type"}]}`` find the files
through ``/view``.  Every file name goes through :class:`~nodes.folders.Folders`,
which refuses names that would leave their folder.
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

from engine.declare import Combo, Input, String, node
from engine.node import NodeContext, NodeOutput

from .folders import IMAGE_EXTENSIONS, file_digest, split_annotation
from .image_bounds import DEFAULT_MAX_IMAGE_PIXELS, check_size, open_bounded, pixel_limit
from .imaging import IMAGE, MASK, alpha_mask, from_pil, to_pil
from .png_metadata import png_info, text_chunks

# -- loading ----------------------------------------------------------------


def _input_images(env: Any) -> list[str]:
    return [] if env is None else env.folders.list_files("input", IMAGE_EXTENSIONS)


def _image_file(env: Any, image: str) -> Path:
    """The existing file behind a LoadImage value, or a clear error."""
    path = env.folders.annotated_path(image, "input")
    if not path.is_file():
        root, name = split_annotation(image, "input")
        raise FileNotFoundError(f"image '{name}' not found in the {root} folder ({env.folders.root_dir(root)})")
    return path


def _image_digest(image: str, env: Any = None) -> Any:
    """LoadImage's fingerprint: the file's sha256, so an edited file re-runs.

    Without the host's folders there is nothing to hash: NaN means "always re-run".
    """
    if env is None:
        return float("nan")
    return file_digest(_image_file(env, image))


def _check_image(image: str, env: Any = None) -> bool | str:
    """LoadImage's validation: the file exists (and its name stays in its folder).

    Taking ``image`` here also lets annotated names (``"x.png [output]"``)
    through, which are not among the combo's choices, as in ComfyUI.
    """
    if image is None or env is None:  # linked input, or no host folders to look in
        return True
    try:
        _image_file(env, image)
    except (FileNotFoundError, ValueError) as exc:
        return str(exc)
    return True


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> tuple[Any, Any]:
    """An image file as (IMAGE ``[B, H, W, 3]``, MASK ``[B, H, W]``), as ComfyUI loads it:
    every frame of an animation as a batch (frames of another size skipped),
    EXIF rotation applied, the mask ``1 - alpha``.

    At most ``max_pixels`` pixels are decoded, all frames together: a small
    file declaring a huge size fails before its pixels are decoded."""
    import torch
    from PIL import ImageOps, ImageSequence, UnidentifiedImageError

    try:
        picture = open_bounded(path, max_pixels, f"'{path.name}'")
    except UnidentifiedImageError:
        raise ValueError(f"'{path.name}' is not an image file that can be read") from None
    with picture:
        frames, masks = [], []
        decoded = 0
        for frame in ImageSequence.Iterator(picture):
            # Checked before the frame is decoded (exif_transpose loads it).
            decoded += 1
            check_size(frame.size[0], frame.size[1], max_pixels, f"'{path.name}'", frames=decoded)
            frame = ImageOps.exif_transpose(frame)
            if frame.mode == "I":  # 16-bit greyscale scaled into 8-bit range
                frame = frame.point(lambda value: value * (1 / 255))
            if frames and frame.size != (frames[0].shape[1], frames[0].shape[0]):
                continue
            frames.append(from_pil(frame))
            masks.append(alpha_mask(frame))
            if picture.format == "MPO":  # the other frames are depth maps or stereo views
                break
    if not frames:
        raise ValueError(f"'{path.name}' contains no image")
    height, width = frames[0].shape[0], frames[0].shape[1]
    if all(mask is None for mask in masks):
        # ComfyUI's "no mask" is a 64x64 zero mask; nodes downstream expect that.
        mask = torch.zeros((len(frames), 64, 64), dtype=torch.float32)
    else:
        mask = torch.stack([m if m is not None else torch.zeros((height, width)) for m in masks])
    return torch.stack(frames), mask


@node(
    category="image",
    display_name="Load Image",
    fingerprint=_image_digest,
    validate=_check_image,
)
def LoadImage(
    ctx: NodeContext,
    image: str = Combo(options=_input_images, extra={"image_upload": True}),
) -> tuple[IMAGE, MASK]:
    """Loads an image from the input folder; the mask comes from its transparency."""
    return load_image(_image_file(ctx.env, image), pixel_limit(ctx.env))


# -- saving -----------------------------------------------------------------


def save_images(ctx: NodeContext, images: Any, prefix: str, root: str, compress_level: int) -> list[dict[str, str]]:
    """Write a batch as numbered PNGs carrying the prompt and workflow; returns
    ComfyUI's ``ui`` image records.  Never overwrites a file, even when two
    saves race for the same counter."""
    if getattr(images, "ndim", None) != 4:
        shape = tuple(getattr(images, "shape", ()))
        raise ValueError(f"expected images shaped [batch, height, width, channels], got {shape or type(images).__name__}")
    target = ctx.env.folders.next_save_path(prefix, images.shape[2], images.shape[1], root)
    metadata = png_info(text_chunks(ctx.prompt, ctx.extra_pnginfo))
    records = []
    counter = target.counter
    for batch_number, image in enumerate(images):
        picture = to_pil(image)
        while True:
            name = target.file_name(counter, batch_number)
            path = target.folder / name
            try:
                stream = open(path, "xb")
            except FileExistsError:
                counter += 1
                continue
            try:
                with stream:
                    picture.save(stream, format="PNG", pnginfo=metadata, compress_level=compress_level)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            break
        records.append({"filename": name, "subfolder": target.subfolder, "type": root})
        counter += 1
    return records


@node(category="image", display_name="Save Image", output_node=True)
def SaveImage(
    ctx: NodeContext,
    images: IMAGE = Input(tooltip="The images to save."),
    filename_prefix: str = String(
        "ComfyUI",
        tooltip="The prefix for the files to save. It may name subfolders (folder/name) and use "
        "%date:yyyy-MM-dd%, %width% and %height%.",
    ),
) -> None:
    """Saves the input images to your output folder."""
    return NodeOutput(ui={"images": save_images(ctx, images, filename_prefix, "output", compress_level=4)})


def _temp_prefix() -> str:
    # A random part keeps concurrent previews (and other hosts sharing temp/) apart.
    return "ComfyUI_temp_" + "".join(random.choices(string.ascii_lowercase, k=5))


@node(category="image", display_name="Preview Image", output_node=True)
def PreviewImage(ctx: NodeContext, images: IMAGE) -> None:
    """Saves the input images to the temp folder and shows them on the node."""
    return NodeOutput(ui={"images": save_images(ctx, images, _temp_prefix(), "temp", compress_level=1)})
