"""LoadImage, SaveImage and PreviewImage against real files in a temporary host."""

from __future__ import annotations

import hashlib
import json
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.folders import SaveTarget, UnsafePath
from nodes.io import LoadImage, PreviewImage, SaveImage, _check_image, _image_digest


def write_picture(path, picture: Image.Image, **save_options):
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, **save_options)
    return path


def rgb_picture() -> Image.Image:
    pixels = np.array([[[0, 51, 102], [153, 204, 255]], [[10, 20, 30], [40, 50, 60]], [[1, 2, 3], [4, 5, 6]]],
                      dtype=np.uint8)  # 3 high, 2 wide
    return Image.fromarray(pixels, "RGB")


# -- LoadImage -----------------------------------------------------------------------


def test_load_image_gives_an_rgb_batch_of_one_in_the_unit_range(folders, ctx):
    write_picture(folders.input / "photo.png", rgb_picture())
    image, mask = LoadImage.fn(ctx, "photo.png")
    assert image.shape == (1, 3, 2, 3) and image.dtype == torch.float32
    assert torch.equal(image[0], torch.from_numpy(np.asarray(rgb_picture(), dtype=np.float32) / 255.0))


def test_an_opaque_image_gets_comfyuis_empty_64_by_64_mask(folders, ctx):
    write_picture(folders.input / "photo.png", rgb_picture())
    _, mask = LoadImage.fn(ctx, "photo.png")
    assert torch.equal(mask, torch.zeros(1, 64, 64))


def test_the_mask_is_one_minus_alpha(folders, ctx):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = [[255, 0], [51, 204]]
    write_picture(folders.input / "cutout.png", Image.fromarray(rgba, "RGBA"))
    image, mask = LoadImage.fn(ctx, "cutout.png")
    assert torch.allclose(mask, torch.tensor([[[0.0, 1.0], [0.8, 0.2]]]))
    assert image.shape == (1, 2, 2, 3)
    assert torch.allclose(image[..., 0], torch.full((1, 2, 2), 200 / 255))


def test_palette_transparency_becomes_the_mask(folders, ctx):
    picture = Image.new("P", (2, 1))
    picture.putpalette([0, 0, 0, 255, 255, 255])
    picture.putpixel((0, 0), 0)
    picture.putpixel((1, 0), 1)
    write_picture(folders.input / "palette.png", picture, transparency=0)
    _, mask = LoadImage.fn(ctx, "palette.png")
    assert torch.equal(mask, torch.tensor([[[1.0, 0.0]]]))


def test_every_frame_of_an_animation_becomes_a_batch_item(folders, ctx):
    frames = [Image.new("RGB", (4, 3), (value, value, value)) for value in (0, 120, 240)]
    write_picture(folders.input / "anim.gif", frames[0], save_all=True, append_images=frames[1:], duration=50)
    image, mask = LoadImage.fn(ctx, "anim.gif")
    assert image.shape == (3, 3, 4, 3)
    assert mask.shape[0] == 3
    assert image[0].max() < image[1].min() and image[1].max() < image[2].min()


def test_exif_rotation_is_applied(folders, ctx):
    picture = Image.new("RGB", (4, 2))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    write_picture(folders.input / "phone.jpg", picture, exif=exif.tobytes())
    image, _ = LoadImage.fn(ctx, "phone.jpg")
    assert image.shape == (1, 4, 2, 3)


def test_an_annotated_name_loads_from_the_output_folder(folders, ctx):
    write_picture(folders.output / "result.png", rgb_picture())
    image, _ = LoadImage.fn(ctx, "result.png [output]")
    assert image.shape == (1, 3, 2, 3)


def test_a_missing_image_names_the_file_and_the_folder(folders, ctx):
    with pytest.raises(FileNotFoundError, match=r"image 'gone.png' not found in the input folder \(.*input\)"):
        LoadImage.fn(ctx, "gone.png")


def test_a_file_that_is_not_an_image_is_a_clear_error(folders, ctx):
    folders.input.mkdir(parents=True)
    (folders.input / "fake.png").write_text("not a picture")
    with pytest.raises(ValueError, match="'fake.png' is not an image file that can be read"):
        LoadImage.fn(ctx, "fake.png")


def test_loading_outside_the_input_folder_is_refused(folders, ctx, tmp_path):
    write_picture(tmp_path / "secret.png", rgb_picture())
    with pytest.raises(UnsafePath):
        LoadImage.fn(ctx, "../../secret.png")


def test_the_fingerprint_is_the_files_sha256(folders, env):
    path = write_picture(folders.input / "photo.png", rgb_picture())
    assert _image_digest("photo.png", env) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_fingerprint_changes_when_the_file_changes(folders, env):
    write_picture(folders.input / "photo.png", rgb_picture())
    before = _image_digest("photo.png", env)
    write_picture(folders.input / "photo.png", rgb_picture().rotate(90, expand=True))
    assert _image_digest("photo.png", env) != before


def test_without_host_folders_the_fingerprint_says_always_rerun():
    assert math.isnan(LoadImage.fingerprint(None, {"image": "photo.png"}))


def test_validation_accepts_an_existing_file_and_names_a_missing_one(folders, env):
    write_picture(folders.input / "photo.png", rgb_picture())
    assert _check_image("photo.png", env) is True
    assert "image 'gone.png' not found in the input folder" in _check_image("gone.png", env)
    assert "'..'" in _check_image("../x.png", env)


def test_the_image_combo_lists_the_pictures_in_input_and_allows_uploads(folders, env):
    write_picture(folders.input / "b.png", rgb_picture())
    write_picture(folders.input / "a.jpg", rgb_picture())
    (folders.input / "notes.txt").write_text("x")
    spec = LoadImage.schema(env).input("image")
    assert spec.choices == ("a.jpg", "b.png")
    assert spec.extra == {"image_upload": True}


def test_the_image_combo_sees_new_files_on_the_next_request(folders, env):
    folders.input.mkdir(parents=True)
    assert LoadImage.schema(env).input("image").choices == ()
    write_picture(folders.input / "new.png", rgb_picture())
    assert LoadImage.schema(env).input("image").choices == ("new.png",)


def test_load_image_outputs_image_and_mask():
    schema = LoadImage.schema()
    assert [(o.type, o.name) for o in schema.outputs] == [("IMAGE", "IMAGE"), ("MASK", "MASK")]
    assert (schema.category, schema.display_name) == ("image", "Load Image")


# -- SaveImage -----------------------------------------------------------------------


def test_save_writes_a_numbered_png_in_output_and_reports_it(folders, ctx):
    result = SaveImage.fn(ctx, torch.zeros(1, 8, 8, 3), "ComfyUI")
    assert result.ui == {"images": [{"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}]}
    assert (folders.output / "ComfyUI_00001_.png").is_file()
    assert result.values == ()


def test_saved_pixels_are_truncated_to_8_bits_like_comfyui(folders, ctx):
    image = torch.tensor([[[[0.5, 1.0, 0.0], [0.999, 0.2, 1.7]]]])  # 1x1x2
    SaveImage.fn(ctx, image, "px")
    with Image.open(folders.output / "px_00001_.png") as saved:
        assert saved.mode == "RGB"
        assert np.asarray(saved).tolist() == [[[127, 255, 0], [254, 51, 255]]]


def test_the_prompt_and_workflow_are_stored_as_png_text(folders, make_ctx):
    prompt = {"3": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI"}}}
    workflow = {"nodes": [{"id": 3, "type": "SaveImage"}], "links": []}
    ctx = make_ctx(prompt=prompt, extra_pnginfo={"workflow": workflow, "note": "hello"})
    SaveImage.fn(ctx, torch.zeros(1, 2, 2, 3), "meta")
    with Image.open(folders.output / "meta_00001_.png") as saved:
        assert json.loads(saved.text["prompt"]) == prompt
        assert json.loads(saved.text["workflow"]) == workflow
        assert json.loads(saved.text["note"]) == "hello"


def test_without_a_workflow_only_the_prompt_is_stored(folders, make_ctx):
    SaveImage.fn(make_ctx(prompt={"1": {"class_type": "X", "inputs": {}}}), torch.zeros(1, 2, 2, 3), "bare")
    with Image.open(folders.output / "bare_00001_.png") as saved:
        assert set(saved.text) == {"prompt"}


def test_a_batch_is_saved_as_consecutive_files(folders, ctx):
    result = SaveImage.fn(ctx, torch.rand(3, 4, 4, 3), "batch")
    assert [r["filename"] for r in result.ui["images"]] == [
        "batch_00001_.png", "batch_00002_.png", "batch_00003_.png"]


def test_a_later_save_continues_the_numbering(folders, ctx):
    SaveImage.fn(ctx, torch.rand(2, 4, 4, 3), "run")
    result = SaveImage.fn(ctx, torch.rand(1, 4, 4, 3), "run")
    assert result.ui["images"][0]["filename"] == "run_00003_.png"


def test_a_prefix_with_folders_saves_into_a_subfolder(folders, ctx):
    result = SaveImage.fn(ctx, torch.rand(1, 4, 6, 3), "faces/%width%x%height%/face")
    assert result.ui["images"] == [{"filename": "face_00001_.png", "subfolder": "faces/6x4", "type": "output"}]
    assert (folders.output / "faces" / "6x4" / "face_00001_.png").is_file()


def test_saving_never_overwrites_a_file_that_appeared_meanwhile(folders, ctx, monkeypatch):
    folders.output.mkdir(parents=True)
    taken = folders.output / "race_00001_.png"
    taken.write_bytes(b"someone else's")
    stale = SaveTarget(folders.output, "race", 1, "")  # as if listed before the other write
    monkeypatch.setattr(folders, "next_save_path", lambda *args, **kwargs: stale)
    result = SaveImage.fn(ctx, torch.rand(1, 2, 2, 3), "race")
    assert result.ui["images"][0]["filename"] == "race_00002_.png"
    assert taken.read_bytes() == b"someone else's"


def test_four_channel_images_keep_their_alpha(folders, ctx):
    SaveImage.fn(ctx, torch.ones(1, 2, 2, 4) * 0.5, "alpha")
    with Image.open(folders.output / "alpha_00001_.png") as saved:
        assert saved.mode == "RGBA"


def test_saving_something_that_is_not_an_image_batch_is_a_clear_error(ctx):
    with pytest.raises(ValueError, match=r"expected images shaped \[batch, height, width, channels\], got \(4, 4, 3\)"):
        SaveImage.fn(ctx, torch.rand(4, 4, 3), "bad")


def test_a_prefix_leaving_the_output_folder_is_refused(ctx):
    with pytest.raises(UnsafePath):
        SaveImage.fn(ctx, torch.rand(1, 2, 2, 3), "../escape")


def test_save_image_has_comfyuis_inputs():
    schema = SaveImage.schema()
    assert schema.output_node and schema.outputs == ()
    assert [s.name for s in schema.inputs] == ["images", "filename_prefix"]
    assert schema.input("filename_prefix").default == "ComfyUI"
    assert (schema.category, schema.display_name) == ("image", "Save Image")


# -- PreviewImage ------------------------------------------------------------------------


def test_previews_go_to_temp_under_a_random_prefix(folders, ctx):
    result = PreviewImage.fn(ctx, torch.rand(2, 4, 4, 3))
    records = result.ui["images"]
    assert [r["type"] for r in records] == ["temp", "temp"]
    assert all(re.fullmatch(r"ComfyUI_temp_[a-z]{5}_0000[12]_\.png", r["filename"]) for r in records)
    assert all((folders.temp / r["filename"]).is_file() for r in records)
    assert not folders.output.exists()


def test_preview_image_is_an_output_node_taking_images():
    schema = PreviewImage.schema()
    assert schema.output_node
    assert [(s.name, s.type) for s in schema.inputs] == [("images", "IMAGE")]
