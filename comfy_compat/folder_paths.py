"""ComfyUI's ``folder_paths`` over the host's :class:`nodes.folders.Folders`.

Every lookup goes to the active host's folder layout (models folders with
``extra_model_paths.yaml`` entries, input/output/temp), so a pack sees the same
files as Loom's own loaders, and names that would leave a folder are refused
the same way.  Module attributes that ComfyUI keeps as globals (``models_dir``,
``folder_names_and_paths``, ``output_directory``...) are read live from the host.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Iterable, Iterator

from loom_compat.binding import active
from nodes.folders import MODEL_EXTENSIONS, MODEL_KINDS, ROOTS, split_annotation
from nodes.output_names import expand_prefix, highest_counter

#: ComfyUI's name for the model file endings it lists.
supported_pt_extensions: set[str] = set(MODEL_EXTENSIONS) | {".pt2"}

# Per-kind extension filters a pack declared (``folder_names_and_paths[k] = (paths, exts)``).
_extensions: dict[str, set[str]] = {}


def _folders() -> Any:
    return active().folders


# -- model folders ---------------------------------------------------------------


class _ModelDirList(list):
    """The folders of one kind; appending to it adds a search folder (packs do
    ``folder_names_and_paths["x"][0].append(path)``)."""

    def __init__(self, kind: str, paths: Iterable[str]):
        super().__init__(paths)
        self._kind = kind

    def append(self, path: Any) -> None:
        super().append(str(path))
        _folders().add_model_dir(self._kind, path)

    def extend(self, paths: Iterable[Any]) -> None:
        for path in paths:
            self.append(path)

    def insert(self, index: int, path: Any) -> None:
        super().insert(index, str(path))
        _folders().add_model_dir(self._kind, path, is_default=index == 0)


class _FolderNamesAndPaths(MutableMapping):
    """``folder_names_and_paths``: kind → ``([folders], {extensions})``, live."""

    def _kinds(self) -> list[str]:
        folders = _folders()
        found = dict.fromkeys(MODEL_KINDS)
        found.update(dict.fromkeys(folders.extra_model_dirs))
        found.update(dict.fromkeys(folders.preferred_model_dirs))
        found.update(dict.fromkeys(_extensions))
        found["custom_nodes"] = None
        return list(found)

    def __getitem__(self, kind: str) -> tuple[list[str], set[str]]:
        if kind == "custom_nodes":  # the plug-in folders (packs find their siblings there)
            return [str(path) for path in _folders().custom_nodes], set()
        if kind not in self._kinds():
            raise KeyError(kind)
        return _ModelDirList(kind, get_folder_paths(kind)), _extensions.get(kind, set(supported_pt_extensions))

    def __setitem__(self, kind: str, value: Any) -> None:
        paths, extensions = value if isinstance(value, tuple) and len(value) == 2 else (value, supported_pt_extensions)
        known = set(get_folder_paths(kind)) if kind in self._kinds() else set()
        for path in paths:
            if str(path) not in known:
                _folders().add_model_dir(kind, path)
        _extensions[kind] = set(extensions)

    def __delitem__(self, kind: str) -> None:
        raise TypeError("Loom's model folders cannot be removed by a custom node")

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds())

    def __len__(self) -> int:
        return len(self._kinds())


folder_names_and_paths = _FolderNamesAndPaths()


def get_folder_paths(folder_name: str) -> list[str]:
    if folder_name == "custom_nodes":
        return [str(path) for path in _folders().custom_nodes]
    return [str(path) for path in _folders().model_dirs(folder_name)]


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    _folders().add_model_dir(folder_name, full_folder_path, is_default=is_default)


def get_filename_list(folder_name: str) -> list[str]:
    extensions = _extensions.get(folder_name)
    return _folders().list_models(folder_name, extensions)


def get_full_path(folder_name: str, filename: str) -> str | None:
    """The file's path, or ``None`` when it is in none of the kind's folders
    (or its name would leave them)."""
    try:
        return str(_folders().model_path(folder_name, filename))
    except (FileNotFoundError, ValueError):
        return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    return str(_folders().model_path(folder_name, filename))


def filter_files_extensions(files: Iterable[str], extensions: Iterable[str]) -> list[str]:
    wanted = {e.lower() for e in extensions}
    return sorted(f for f in files if not wanted or os.path.splitext(f)[1].lower() in wanted)


# -- input / output / temp ---------------------------------------------------------


def get_output_directory() -> str:
    return str(_folders().output)


def get_input_directory() -> str:
    return str(_folders().input)


def get_temp_directory() -> str:
    return str(_folders().temp)


def get_user_directory() -> str:
    return str(_folders().user)


def get_directory_by_type(type_name: str) -> str | None:
    return str(_folders().root_dir(type_name)) if type_name in ROOTS else None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    """``"x.png [output]"`` → the file in output/; unannotated names are in
    ``default_dir`` (input/ when not given).  Names that would leave their
    folder raise ``UnsafePath``."""
    folders = _folders()
    root, plain = split_annotation(name, "input")
    if root == "input" and default_dir is not None and plain == name:
        for candidate in ROOTS:
            if os.path.realpath(default_dir) == os.path.realpath(folders.root_dir(candidate)):
                return str(folders.resolve(candidate, "", plain))
        return str(_inside(Path(default_dir), plain))
    return str(folders.resolve(root, "", plain))


def exists_annotated_filepath(name: str) -> bool:
    try:
        return os.path.exists(get_annotated_filepath(name))
    except ValueError:
        return False


def _inside(base: Path, relative: str) -> Path:
    from nodes.folders import UnsafePath

    real_base = base.resolve()
    target = (real_base / relative).resolve()
    if not target.is_relative_to(real_base):
        raise UnsafePath(f"'{relative}' points outside {base}")
    return target


def get_save_image_path(filename_prefix: str, output_dir: str, image_width: int = 0,
                        image_height: int = 0) -> tuple[str, str, int, str, str]:
    """ComfyUI's tuple ``(full_output_folder, filename, counter, subfolder,
    filename_prefix)``; the counter follows the highest file already saved."""
    folders = _folders()
    for root in ROOTS:
        if os.path.realpath(output_dir) == os.path.realpath(folders.root_dir(root)):
            target = folders.next_save_path(filename_prefix, image_width, image_height, root=root)
            expanded = expand_prefix(filename_prefix, image_width, image_height)
            return str(target.folder), target.filename, target.counter, target.subfolder, expanded
    # A folder of the pack's own choosing: same rules, nothing may leave it.
    expanded = expand_prefix(filename_prefix, image_width, image_height)
    subfolder, _, filename = expanded.replace("\\", "/").rpartition("/")
    folder = _inside(Path(output_dir), subfolder) if subfolder else Path(output_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder), filename, highest_counter(folder, filename) + 1, subfolder, expanded


# -- ComfyUI's module-level globals, read live ------------------------------------------

_LIVE = {
    "models_dir": lambda: str(_folders().models),
    "base_path": lambda: str(_folders().base),
    "output_directory": get_output_directory,
    "input_directory": get_input_directory,
    "temp_directory": get_temp_directory,
    "user_directory": get_user_directory,
}


def __getattr__(name: str) -> Any:
    if name in _LIVE:
        return _LIVE[name]()
    from loom_compat import placeholders

    return placeholders.attribute(__name__, name)
