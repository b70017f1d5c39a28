"""Folders: the layout, model listings and lookups, extra_model_paths.yaml, safe paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodes.folders import (
    MODEL_KINDS,
    ExtraPathsError,
    Folders,
    ModelNotFound,
    UnsafePath,
    split_annotation,
)


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def age(directory: Path, seconds: float = 3600) -> int:
    """Backdate a folder's mtime (past the racy window); returns the new mtime_ns."""
    stamp = directory.stat().st_mtime_ns - int(seconds * 1e9)
    os.utime(directory, ns=(stamp, stamp))
    return stamp


# -- layout ----------------------------------------------------------------------


def test_every_folder_sits_under_the_base_by_default(tmp_path):
    folders = Folders.from_options(tmp_path)
    assert folders.output == tmp_path / "output"
    assert folders.input == tmp_path / "input"
    assert folders.temp == tmp_path / "temp"
    assert folders.user == tmp_path / "user"
    assert folders.models == tmp_path / "models"
    assert folders.custom_nodes == [tmp_path / "custom_nodes"]


def test_options_move_single_folders_elsewhere(tmp_path):
    folders = Folders.from_options(
        tmp_path / "base", output_directory=tmp_path / "out", input_directory=tmp_path / "in",
        temp_directory=tmp_path / "tmp", user_directory=tmp_path / "usr", models_dir=tmp_path / "m",
    )
    assert (folders.output, folders.input, folders.temp, folders.user, folders.models) == (
        tmp_path / "out", tmp_path / "in", tmp_path / "tmp", tmp_path / "usr", tmp_path / "m")
    assert folders.model_dirs("vae")[0] == tmp_path / "m" / "vae"


def test_building_folders_creates_nothing_on_disk(tmp_path):
    Folders.from_options(tmp_path / "base")
    assert not (tmp_path / "base").exists()


def test_ensure_creates_user_folders_and_one_folder_per_model_kind(tmp_path):
    folders = Folders.from_options(tmp_path).ensure()
    for directory in (folders.output, folders.input, folders.temp, folders.user):
        assert directory.is_dir()
    for kind in MODEL_KINDS:
        assert (tmp_path / "models" / kind).is_dir()


# -- listing models --------------------------------------------------------------


def test_models_are_listed_sorted_with_subfolders_and_only_model_extensions(folders):
    root = folders.models / "checkpoints"
    for name in ("b.safetensors", "a.ckpt", "sub/deeper/c.pt", "sub/d.SFT", "notes.txt", "e.pth.part"):
        touch(root / name)
    assert folders.list_models("checkpoints") == ["a.ckpt", "b.safetensors", "sub/d.SFT", "sub/deeper/c.pt"]


def test_listing_accepts_its_own_extensions(folders):
    touch(folders.models / "vae_approx" / "taesd.pth")
    touch(folders.models / "vae_approx" / "readme.md")
    assert folders.list_models("vae_approx", extensions=[".md"]) == ["readme.md"]


def test_hidden_folders_are_not_listed(folders):
    touch(folders.models / "loras" / ".git" / "objects.bin")
    touch(folders.models / "loras" / "style.safetensors")
    assert folders.list_models("loras") == ["style.safetensors"]


def test_a_missing_model_folder_lists_nothing_until_it_appears(folders):
    assert folders.list_models("loras") == []
    touch(folders.models / "loras" / "new.safetensors")
    assert folders.list_models("loras") == ["new.safetensors"]


def test_an_unchanged_folder_is_not_read_again(folders):
    root = folders.models / "checkpoints"
    touch(root / "a.safetensors")
    stamp = age(root)
    assert folders.list_models("checkpoints") == ["a.safetensors"]
    touch(root / "b.safetensors")
    os.utime(root, ns=(stamp, stamp))  # same mtime: the cached listing is used
    assert folders.list_models("checkpoints") == ["a.safetensors"]


def test_a_folder_whose_mtime_changed_is_read_again(folders):
    root = folders.models / "checkpoints"
    touch(root / "a.safetensors")
    age(root)
    assert folders.list_models("checkpoints") == ["a.safetensors"]
    touch(root / "b.safetensors")  # adding a file updates the folder's mtime
    assert folders.list_models("checkpoints") == ["a.safetensors", "b.safetensors"]


def test_a_change_inside_a_subfolder_is_noticed(folders):
    root = folders.models / "loras"
    touch(root / "sub" / "a.safetensors")
    age(root)
    age(root / "sub")
    assert folders.list_models("loras") == ["sub/a.safetensors"]
    stamp = (root / "sub").stat().st_mtime_ns
    (root / "sub" / "a.safetensors").unlink()
    assert (root / "sub").stat().st_mtime_ns != stamp
    assert folders.list_models("loras") == []


def test_a_just_modified_folder_is_read_again_even_within_one_timestamp_tick(folders):
    root = folders.models / "embeddings"
    touch(root / "a.pt")
    assert folders.list_models("embeddings") == ["a.pt"]
    stamp = root.stat().st_mtime_ns
    touch(root / "b.pt")
    os.utime(root, ns=(stamp, stamp))  # as if both writes landed in the same tick
    assert folders.list_models("embeddings") == ["a.pt", "b.pt"]


def test_old_folder_names_are_searched_for_their_new_kind(folders):
    touch(folders.models / "unet" / "old.safetensors")
    touch(folders.models / "diffusion_models" / "new.safetensors")
    assert folders.list_models("diffusion_models") == ["new.safetensors", "old.safetensors"]
    assert folders.list_models("unet") == ["new.safetensors", "old.safetensors"]


def test_diffusers_models_are_folders_holding_a_model_index(folders):
    root = folders.models / "diffusers"
    touch(root / "sd15" / "model_index.json", b"{}")
    touch(root / "sd15" / "unet" / "diffusion_pytorch_model.safetensors")
    touch(root / "org" / "sdxl" / "model_index.json", b"{}")
    touch(root / "stray.safetensors")
    assert folders.list_models("diffusers") == ["org/sdxl", "sd15"]
    assert folders.model_path("diffusers", "org/sdxl") == root / "org" / "sdxl"


def test_a_kind_name_that_is_not_a_plain_name_is_refused(folders):
    with pytest.raises(ValueError, match="invalid model kind"):
        folders.list_models("../checkpoints")


# -- finding models ----------------------------------------------------------------


def test_model_path_finds_a_listed_name_in_a_subfolder(folders):
    path = touch(folders.models / "checkpoints" / "sd" / "v1.safetensors")
    assert folders.model_path("checkpoints", "sd/v1.safetensors") == path


def test_a_missing_model_names_the_file_and_where_to_put_it(folders):
    with pytest.raises(ModelNotFound) as caught:
        folders.model_path("checkpoints", "x.safetensors")
    assert str(caught.value) == "checkpoint 'x.safetensors' not found; put it in models/checkpoints/"
    assert caught.value.kind == "checkpoints" and caught.value.name == "x.safetensors"


def test_a_missing_model_lists_the_other_folders_searched(folders, tmp_path):
    folders.add_model_dir("loras", tmp_path / "shared" / "loras")
    with pytest.raises(ModelNotFound, match=r"LoRA 'y.safetensors' not found; put it in models/loras/ "
                                             r"\(also searched: .*shared/loras\)"):
        folders.model_path("loras", "y.safetensors")


def test_no_model_chosen_is_reported_as_such(folders):
    with pytest.raises(ModelNotFound, match="no VAE chosen"):
        folders.model_path("vae", "")


def test_a_model_folder_is_not_a_model_file(folders):
    (folders.models / "checkpoints" / "sub.safetensors").mkdir(parents=True)
    with pytest.raises(ModelNotFound):
        folders.model_path("checkpoints", "sub.safetensors")


@pytest.mark.parametrize("name", ["../secret.safetensors", "/etc/passwd", "a/../../b.pt", "a\\b.pt", "a\x00.pt"])
def test_a_model_name_that_climbs_out_is_refused(folders, name):
    with pytest.raises(UnsafePath):
        folders.model_path("checkpoints", name)


def test_symlinked_model_files_are_followed(folders, tmp_path):
    real = touch(tmp_path / "elsewhere" / "big.safetensors")
    link = folders.models / "checkpoints" / "big.safetensors"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    assert folders.list_models("checkpoints") == ["big.safetensors"]
    assert folders.model_path("checkpoints", "big.safetensors").resolve() == real


# -- extra_model_paths.yaml --------------------------------------------------------


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_sections_add_folders_under_their_base_path(tmp_path):
    config = write_config(tmp_path / "conf" / "extra_model_paths.yaml", f"""
a1111:
    base_path: {tmp_path}/webui/
    checkpoints: models/Stable-diffusion
    loras: |
         models/Lora
         models/LyCORIS
other:
    base_path: {tmp_path}/other
    vae: vae
""")
    folders = Folders.from_options(tmp_path / "loom", extra_model_paths_config=config)
    assert folders.model_dirs("checkpoints")[1:] == [tmp_path / "webui/models/Stable-diffusion"]
    assert folders.model_dirs("loras")[1:] == [tmp_path / "webui/models/Lora", tmp_path / "webui/models/LyCORIS"]
    assert folders.model_dirs("vae")[1:] == [tmp_path / "other/vae"]


def test_yaml_paths_without_base_path_are_relative_to_the_file(tmp_path):
    config = write_config(tmp_path / "conf" / "extra.yaml", "mine:\n    checkpoints: ../ckpts\n")
    folders = Folders.from_options(tmp_path / "loom", extra_model_paths_config=config)
    assert folders.model_dirs("checkpoints")[1:] == [(tmp_path / "conf" / ".." / "ckpts").absolute()]


def test_a_relative_base_path_is_relative_to_the_file(tmp_path):
    config = write_config(tmp_path / "conf" / "extra.yaml", "mine:\n    base_path: share\n    vae: v\n")
    folders = Folders.from_options(tmp_path / "loom", extra_model_paths_config=config)
    assert folders.model_dirs("vae")[1:] == [tmp_path / "conf" / "share" / "v"]


def test_base_path_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = write_config(tmp_path / "extra.yaml", "mine:\n    base_path: ~/models\n    loras: l\n")
    folders = Folders.from_options(tmp_path / "loom", extra_model_paths_config=config)
    assert folders.model_dirs("loras")[1:] == [tmp_path / "home" / "models" / "l"]


def test_models_in_yaml_folders_are_listed_and_found(tmp_path):
    touch(tmp_path / "webui" / "ckpt" / "shared.safetensors")
    config = write_config(tmp_path / "extra.yaml", f"a:\n    base_path: {tmp_path}/webui\n    checkpoints: ckpt\n")
    folders = Folders.from_options(tmp_path / "loom", extra_model_paths_config=config)
    touch(folders.models / "checkpoints" / "own.safetensors")
    assert folders.list_models("checkpoints") == ["own.safetensors", "shared.safetensors"]
    assert folders.model_path("checkpoints", "shared.safetensors") == tmp_path / "webui/ckpt/shared.safetensors"


def test_is_default_folders_are_searched_before_our_own(tmp_path):
    config = write_config(tmp_path / "extra.yaml", f"""
first:
    base_path: {tmp_path}/preferred
    is_default: true
    checkpoints: c
""")
    folders = Folders.from_options(tmp_path / "loom", extra_model_paths_config=config)
    own = touch(folders.models / "checkpoints" / "same.safetensors")
    preferred = touch(tmp_path / "preferred" / "c" / "same.safetensors")
    assert folders.model_dirs("checkpoints")[:2] == [tmp_path / "preferred/c", own.parent]
    assert folders.model_path("checkpoints", "same.safetensors") == preferred


def test_the_custom_nodes_key_adds_plugin_folders(tmp_path):
    config = write_config(tmp_path / "extra.yaml", f"x:\n    base_path: {tmp_path}/ui\n    custom_nodes: path/custom_nodes\n")
    folders = Folders.from_options(tmp_path / "loom", extra_model_paths_config=config)
    assert folders.custom_nodes == [tmp_path / "loom" / "custom_nodes", tmp_path / "ui" / "path" / "custom_nodes"]


def test_the_old_unet_key_adds_diffusion_model_folders(tmp_path):
    config = write_config(tmp_path / "extra.yaml", f"x:\n    base_path: {tmp_path}\n    unet: u\n")
    folders = Folders.from_options(tmp_path / "loom", extra_model_paths_config=config)
    assert folders.model_dirs("diffusion_models")[-1] == tmp_path / "u"


def test_empty_sections_are_ignored_and_several_files_combine(tmp_path):
    one = write_config(tmp_path / "one.yaml", "commented_out:\n")
    two = write_config(tmp_path / "two.yaml", f"y:\n    base_path: {tmp_path}\n    vae: v\n")
    folders = Folders.from_options(tmp_path / "loom", extra_model_paths_config=[one, two])
    assert folders.model_dirs("vae")[1:] == [tmp_path / "v"]


@pytest.mark.parametrize("text, complaint", [
    ("a: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "expected sections"),
    ("a: plain words\n", "section 'a': expected a mapping"),
    ("a:\n    checkpoints: 12\n", "'checkpoints' must be a path"),
    ("a:\n    is_default: maybe\n    vae: v\n", "is_default must be true or false"),
    ("a:\n    base_path: [1]\n", "base_path must be a path"),
])
def test_a_bad_yaml_file_is_a_clear_error_naming_the_file(tmp_path, text, complaint):
    config = write_config(tmp_path / "bad.yaml", text)
    with pytest.raises(ExtraPathsError, match=complaint) as caught:
        Folders.from_options(tmp_path / "loom", extra_model_paths_config=config)
    assert str(config) in str(caught.value)


def test_a_missing_yaml_file_is_a_clear_error(tmp_path):
    with pytest.raises(ExtraPathsError, match="cannot read extra model paths file .*nowhere.yaml"):
        Folders.from_options(tmp_path, extra_model_paths_config=tmp_path / "nowhere.yaml")


# -- input / output / temp paths ---------------------------------------------------


def test_resolve_gives_the_file_inside_its_folder(folders):
    assert folders.resolve("output", "a/b", "x.png") == (folders.output / "a" / "b" / "x.png").resolve()
    assert folders.resolve("input", "", "y.png") == (folders.input / "y.png").resolve()
    assert folders.resolve("temp", "", "sub/z.png") == (folders.temp / "sub" / "z.png").resolve()


@pytest.mark.parametrize("subfolder, filename", [
    ("", "../escape.png"),
    ("..", "escape.png"),
    ("a/../..", "escape.png"),
    ("", "/etc/passwd"),
    ("/etc", "passwd"),
    ("", "a\x00.png"),
    ("", "..\\escape.png"),
    ("", "C:/windows/x.png"),
])
def test_names_that_would_leave_the_folder_are_refused(folders, subfolder, filename):
    with pytest.raises(UnsafePath):
        folders.resolve("output", subfolder, filename)


def test_a_symlink_pointing_outside_the_folder_is_refused(folders, tmp_path):
    secret = touch(tmp_path / "secret.txt")
    folders.output.mkdir(parents=True)
    (folders.output / "leak.png").symlink_to(secret)
    (folders.output / "door").symlink_to(tmp_path)
    with pytest.raises(UnsafePath, match="outside the output folder"):
        folders.resolve("output", "", "leak.png")
    with pytest.raises(UnsafePath):
        folders.resolve("output", "door", "secret.txt")


def test_a_symlink_staying_inside_the_folder_is_allowed(folders):
    target = touch(folders.output / "real.png")
    (folders.output / "alias.png").symlink_to(target)
    assert folders.resolve("output", "", "alias.png") == target.resolve()


def test_only_the_input_output_and_temp_folders_are_reachable(folders):
    with pytest.raises(UnsafePath, match="unknown folder type 'models'"):
        folders.resolve("models", "", "x.safetensors")


def test_an_empty_filename_is_refused(folders):
    with pytest.raises(UnsafePath, match="empty filename"):
        folders.resolve("input", "sub", "")


@pytest.mark.parametrize("name, expected", [
    ("x.png [output]", ("output", "x.png")),
    ("x.png [temp]", ("temp", "x.png")),
    ("sub/x.png [input]", ("input", "sub/x.png")),
    ("x.png", ("input", "x.png")),
    ("x [outputs].png", ("input", "x [outputs].png")),
])
def test_annotated_names_say_which_folder_they_are_in(name, expected):
    assert split_annotation(name) == expected


def test_an_annotated_path_resolves_in_its_folder(folders):
    assert folders.annotated_path("x.png [output]") == (folders.output / "x.png").resolve()
    assert folders.annotated_path("x.png") == (folders.input / "x.png").resolve()
    assert folders.annotated_path("x.png", default_root="temp") == (folders.temp / "x.png").resolve()
    with pytest.raises(UnsafePath):
        folders.annotated_path("../x.png [output]")


def test_list_files_gives_the_images_directly_in_a_folder(folders):
    for name in ("b.png", "a.JPG", "notes.txt", ".hidden.png", "sub/c.png"):
        touch(folders.input / name)
    assert folders.list_files("input", {".png", ".jpg"}) == ["a.JPG", "b.png"]
    assert folders.list_files("input") == ["a.JPG", "b.png", "notes.txt"]


def test_list_files_of_a_missing_folder_is_empty(folders):
    assert folders.list_files("input") == []
