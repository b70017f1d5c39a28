"""Save paths: ComfyUI's `{prefix}_{counter:05}_.png` naming, counters, prefix variables."""

from __future__ import annotations

import time

import pytest

from nodes.folders import UnsafePath
from nodes.output_names import expand_prefix

NOON = time.strptime("2024-03-07 12:05:09", "%Y-%m-%d %H:%M:%S")


def test_the_first_save_gets_counter_one_in_a_new_output_folder(folders):
    target = folders.next_save_path("ComfyUI", 64, 32)
    assert (target.folder, target.filename, target.counter, target.subfolder) == (
        folders.output, "ComfyUI", 1, "")
    assert folders.output.is_dir()


def test_file_names_are_prefix_counter_and_a_trailing_underscore(folders):
    target = folders.next_save_path("ComfyUI")
    assert target.file_name(1) == "ComfyUI_00001_.png"
    assert target.file_name(123456) == "ComfyUI_123456_.png"


def test_the_counter_continues_after_the_highest_existing_file(folders):
    folders.output.mkdir(parents=True)
    for name in ("ComfyUI_00002_.png", "ComfyUI_00007_.png", "ComfyUI_00003_.png",
                 "ComfyUIx_00050_.png", "Other_00099_.png", "ComfyUI_notanumber_.png"):
        (folders.output / name).write_bytes(b"")
    assert folders.next_save_path("ComfyUI").counter == 8


def test_a_prefix_may_name_subfolders(folders):
    target = folders.next_save_path("portraits/2024/face")
    assert target.subfolder == "portraits/2024"
    assert target.filename == "face"
    assert target.folder == folders.output / "portraits" / "2024"
    assert target.folder.is_dir()


def test_counters_are_per_subfolder(folders):
    (folders.output / "a").mkdir(parents=True)
    (folders.output / "a" / "x_00005_.png").write_bytes(b"")
    assert folders.next_save_path("a/x").counter == 6
    assert folders.next_save_path("x").counter == 1


def test_width_and_height_fill_in(folders):
    assert folders.next_save_path("img_%width%x%height%", 640, 480).filename == "img_640x480"


def test_date_patterns_fill_in():
    assert expand_prefix("%date:yyyy-MM-dd%/shot", now=NOON) == "2024-03-07/shot"
    assert expand_prefix("%date:yy.M.d_hh-mm-ss%", now=NOON) == "24.3.7_12-05-09"
    assert expand_prefix("%year%-%month%-%day% %hour%:%minute%:%second%", now=NOON) == "2024-03-07 12:05:09"


def test_unknown_variables_stay_as_written():
    assert expand_prefix("%KSampler.seed%_x", now=NOON) == "%KSampler.seed%_x"


def test_a_dated_subfolder_is_created(folders):
    target = folders.next_save_path("%date:yyyy-MM-dd%/ComfyUI", now=NOON)
    assert target.subfolder == "2024-03-07"
    assert (folders.output / "2024-03-07").is_dir()


def test_batch_numbers_fill_in_per_image(folders):
    target = folders.next_save_path("shot_%batch_num%")
    assert target.file_name(4, batch_number=2) == "shot_2_00004_.png"


def test_previews_go_to_the_temp_folder(folders):
    assert folders.next_save_path("preview", root="temp").folder == folders.temp


@pytest.mark.parametrize("prefix", ["../outside", "a/../../b", "/abs/name", "a\\b", "x\x00"])
def test_a_prefix_that_would_leave_the_output_folder_is_refused(folders, prefix):
    with pytest.raises(UnsafePath):
        folders.next_save_path(prefix)


def test_a_symlinked_subfolder_leading_outside_is_refused(folders, tmp_path):
    folders.output.mkdir(parents=True)
    (folders.output / "door").symlink_to(tmp_path)
    with pytest.raises(UnsafePath, match="outside the output folder"):
        folders.next_save_path("door/x")


@pytest.mark.parametrize("prefix", ["", "folder/"])
def test_a_prefix_naming_no_file_is_refused(folders, prefix):
    with pytest.raises(ValueError, match="names no file"):
        folders.next_save_path(prefix)
