"""Where Loom's files live: model folders, input/output/temp/user, plug-in folders.

One :class:`Folders` object describes a host's layout (the server, ``loom run``
or a test each build their own; nothing here is a module global)::

    base/
      models/<kind>/      checkpoints, vae, loras, ...   (plus extra folders)
      input/  output/  temp/  user/
      custom_nodes/

Folders are created on demand (:meth:`Folders.ensure`, or when a file is
saved), never at import.  Extra model folders come from ComfyUI's
``extra_model_paths.yaml`` format, so an existing ComfyUI or A1111 model
collection can be shared as is.

Every name that arrives from outside (a combo value, an upload, an HTTP query)
goes through :meth:`Folders.resolve` / :meth:`Folders.model_path`, which refuse
anything that could leave its folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .output_names import expand_prefix, highest_counter

#: The model kinds Loom knows; any other kind name works too (plug-ins add their own).
MODEL_KINDS = (
    "checkpoints", "vae", "loras", "embeddings", "controlnet", "clip", "clip_vision",
    "upscale_models", "vae_approx", "diffusion_models", "diffusers",
)

#: File endings listed as models by default (ComfyUI's ``supported_pt_extensions``).
MODEL_EXTENSIONS = frozenset({".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".pkl", ".sft"})

#: File endings LoadImage offers from ``input/``.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})

#: The folders files may be read from or written to by name (ComfyUI's "types").
ROOTS = ("output", "input", "temp")

# ComfyUI renamed some folders; old names in configs and old folders on disk still work.
_KIND_ALIASES = {"unet": "diffusion_models", "text_encoders": "clip"}
_LEGACY_SUBDIRS = {
    "diffusion_models": ("unet",),
    "controlnet": ("t2i_adapter",),
    "clip": ("text_encoders",),
}
_KIND_NOUNS = {
    "checkpoints": "checkpoint", "vae": "VAE", "loras": "LoRA", "embeddings": "embedding",
    "controlnet": "ControlNet model", "clip": "text encoder", "clip_vision": "CLIP vision model",
    "upscale_models": "upscale model", "vae_approx": "preview decoder",
    "diffusion_models": "diffusion model", "diffusers": "diffusers model",
}
_KIND_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

#: A directory modified this recently (seconds) may change again within the
#: same filesystem timestamp tick, so its cached listing is not trusted
#: (git's "racily clean" problem).
_RACY_SECONDS = 1.0


class UnsafePath(ValueError):
    """A file name that would leave its folder (``..``, absolute, NUL, escaping symlink)."""


class BadName(ValueError):
    """A file name the file system cannot take (too long, a symlink loop...);
    not an escape attempt, just unusable."""


#: The longest file or folder name, and whole relative path, we pass to the file system.
NAME_MAX = 255
PATH_MAX = 4000


class ModelNotFound(FileNotFoundError):
    """A model file named in a prompt is in none of its kind's folders."""

    def __init__(self, kind: str, name: str, searched: Sequence[Path], hint: str):
        self.kind = kind
        self.name = name
        self.searched = list(searched)
        noun = _KIND_NOUNS.get(kind, f"{kind} model")
        if name:
            message = f"{noun} '{name}' not found; put it in {hint}"
        else:
            message = f"no {noun} chosen; put one in {hint}"
        others = [str(path) for path in self.searched[1:]]
        if others:
            message += f" (also searched: {', '.join(others)})"
        super().__init__(message)

    def __str__(self) -> str:
        return self.args[0]


class ExtraPathsError(ValueError):
    """An ``extra_model_paths.yaml`` file that cannot be used."""


@dataclass(frozen=True)
class ExtraPath:
    """One folder from an ``extra_model_paths.yaml`` file.

    ``kind`` is a model kind or ``"custom_nodes"``; ``is_default`` folders are
    searched before Loom's own ``models/<kind>``.
    """

    kind: str
    path: Path
    is_default: bool = False


@dataclass(frozen=True)
class SaveTarget:
    """Where the next image of a save goes (ComfyUI's ``get_save_image_path``)."""

    folder: Path
    filename: str
    counter: int
    subfolder: str

    def file_name(self, counter: int, batch_number: int = 0) -> str:
        base = self.filename.replace("%batch_num%", str(batch_number))
        return f"{base}_{counter:05}_.png"


@dataclass(frozen=True)
class _Scan:
    """A directory tree's files, and the mtimes that tell when it is stale."""

    files: tuple[str, ...]
    dir_mtimes: Mapping[str, int]
    fresh_until: float  # time.time() before which an unchanged tree may still be racy

    def still_valid(self, root: Path) -> bool:
        if not self.dir_mtimes:
            return not root.is_dir()
        if time.time() < self.fresh_until:
            return False
        for directory, mtime in self.dir_mtimes.items():
            try:
                if os.stat(directory).st_mtime_ns != mtime:
                    return False
            except OSError:
                return False
        return True


def canonical_kind(kind: str) -> str:
    """The model kind a (possibly legacy) folder name stands for."""
    if not isinstance(kind, str) or not _KIND_NAME.match(kind):
        raise ValueError(f"invalid model kind {kind!r}")
    return _KIND_ALIASES.get(kind, kind)


def split_annotation(name: str, default: str = "input") -> tuple[str, str]:
    """ComfyUI's annotated file names: ``"a.png [output]"`` → ``("output", "a.png")``.

    Names without an annotation belong to ``default``.
    """
    for root in ROOTS:
        tag = f"[{root}]"
        if name.endswith(tag):
            return root, name[: -len(tag)].rstrip(" ")
    return default, name


def safe_parts(relative: str, what: str) -> list[str]:
    """The components of a relative POSIX path, refusing anything that could escape."""
    if not isinstance(relative, str):
        raise UnsafePath(f"{what} must be a string, not {type(relative).__name__}")
    if "\x00" in relative:
        raise UnsafePath(f"{what} {relative!r} contains a NUL byte")
    if "\\" in relative:
        raise UnsafePath(f"{what} {relative!r} contains a backslash; use '/' between folders")
    if relative.startswith("/") or re.match(r"^[A-Za-z]:", relative):
        raise UnsafePath(f"{what} {relative!r} is an absolute path; give a name inside the folder")
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePath(f"{what} {relative!r} contains '..'; it may not leave its folder")
    return parts


def _expand(path: str | os.PathLike[str]) -> str:
    return os.path.expandvars(os.path.expanduser(os.fspath(path)))


def _absolute(path: str | os.PathLike[str]) -> Path:
    return Path(_expand(path)).absolute()


def _scan_tree(root: Path) -> _Scan:
    """Every file below ``root`` (relative POSIX paths), following symlinked
    folders once each, skipping hidden folders (``.git``...)."""
    files: list[str] = []
    mtimes: dict[str, int] = {}
    newest = 0
    seen: set[str] = set()
    pending: list[tuple[Path, str]] = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            real = os.path.realpath(directory)
            if real in seen:
                continue
            seen.add(real)
            stat = os.stat(directory)
            entries = list(os.scandir(directory))
        except OSError:
            continue
        mtimes[str(directory)] = stat.st_mtime_ns
        newest = max(newest, stat.st_mtime_ns)
        for entry in entries:
            relative = prefix + entry.name
            try:
                if entry.is_dir():
                    if not entry.name.startswith("."):
                        pending.append((Path(entry.path), relative + "/"))
                elif entry.is_file():
                    files.append(relative)
            except OSError:
                continue
    return _Scan(tuple(files), mtimes, newest / 1e9 + _RACY_SECONDS)


def parse_extra_model_paths(config: object, config_dir: Path, source: str = "config") -> list[ExtraPath]:
    """The folders an ``extra_model_paths.yaml`` document names.

    The format (ComfyUI's): top-level sections, each a mapping with an optional
    ``base_path``, an optional ``is_default``, and per-kind keys whose values
    are newline-separated paths (relative to ``base_path``, else to the file's
    folder).  A ``custom_nodes`` key names plug-in folders.
    """
    if config is None:
        return []
    if not isinstance(config, Mapping):
        raise ExtraPathsError(f"{source}: expected sections (a mapping), got {type(config).__name__}")
    found: list[ExtraPath] = []
    for section_name, section in config.items():
        if section is None:
            continue
        where = f"{source}, section '{section_name}'"
        if not isinstance(section, Mapping):
            raise ExtraPathsError(f"{where}: expected a mapping of folder kinds to paths")
        section = dict(section)
        base = section.pop("base_path", None)
        if base is not None:
            if not isinstance(base, str):
                raise ExtraPathsError(f"{where}: base_path must be a path, got {base!r}")
            base_dir = Path(_expand(base))
            if not base_dir.is_absolute():
                base_dir = config_dir / base_dir
        else:
            base_dir = config_dir
        is_default = section.pop("is_default", False)
        if not isinstance(is_default, bool):
            raise ExtraPathsError(f"{where}: is_default must be true or false, got {is_default!r}")
        for key, value in section.items():
            if isinstance(value, str):
                lines = value.split("\n")
            elif isinstance(value, list) and all(isinstance(item, str) for item in value):
                lines = value
            else:
                raise ExtraPathsError(
                    f"{where}: '{key}' must be a path or newline-separated paths, got {value!r}"
                )
            kind = "custom_nodes" if key == "custom_nodes" else canonical_kind(str(key))
            for line in lines:
                line = line.strip()
                if line:
                    path = Path(_expand(line))
                    found.append(ExtraPath(kind, (base_dir / path).absolute(), is_default))
    return found


def read_extra_model_paths(config_file: str | os.PathLike[str]) -> list[ExtraPath]:
    """Parse one ``extra_model_paths.yaml`` file (see :func:`parse_extra_model_paths`)."""
    import yaml  # only hosts given such a file pay for the import

    path = _absolute(config_file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExtraPathsError(f"cannot read extra model paths file {path}: {exc.strerror or exc}") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExtraPathsError(f"{path} is not valid YAML: {exc}") from None
    return parse_extra_model_paths(config, path.parent, source=str(path))


@dataclass
class Folders:
    """A host's folder layout (see the module docstring)."""

    base: Path
    output: Path
    input: Path
    temp: Path
    user: Path
    models: Path
    #: Kind → extra folders searched after ``models/<kind>``.
    extra_model_dirs: dict[str, list[Path]] = field(default_factory=dict)
    #: Kind → folders searched before ``models/<kind>`` (``is_default: true``).
    preferred_model_dirs: dict[str, list[Path]] = field(default_factory=dict)
    #: Plug-in folders, imported at start-up.
    custom_nodes: list[Path] = field(default_factory=list)
    _scans: dict[str, _Scan] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: (kind, extensions) → (the scans it was built from, the sorted names).
    _listings: dict[tuple, tuple[tuple[_Scan, ...], list[str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @classmethod
    def from_options(
        cls,
        base_dir: str | os.PathLike[str],
        output_directory: str | os.PathLike[str] | None = None,
        input_directory: str | os.PathLike[str] | None = None,
        temp_directory: str | os.PathLike[str] | None = None,
        user_directory: str | os.PathLike[str] | None = None,
        models_dir: str | os.PathLike[str] | None = None,
        extra_model_paths_config: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    ) -> "Folders":
        """The layout for command-line style options; unset folders sit under ``base_dir``."""
        base = _absolute(base_dir)

        def pick(option: str | os.PathLike[str] | None, default: str) -> Path:
            return _absolute(option) if option is not None else base / default

        folders = cls(
            base=base,
            output=pick(output_directory, "output"),
            input=pick(input_directory, "input"),
            temp=pick(temp_directory, "temp"),
            user=pick(user_directory, "user"),
            models=pick(models_dir, "models"),
            custom_nodes=[base / "custom_nodes"],
        )
        if extra_model_paths_config is not None:
            configs = (
                [extra_model_paths_config]
                if isinstance(extra_model_paths_config, (str, os.PathLike))
                else list(extra_model_paths_config)
            )
            for config in configs:
                folders.add_extra_paths(read_extra_model_paths(config))
        return folders

    # -- model folders -------------------------------------------------------

    def add_extra_paths(self, extra: Iterable[ExtraPath]) -> None:
        for item in extra:
            if item.kind == "custom_nodes":
                if item.path not in self.custom_nodes:
                    self.custom_nodes.append(item.path)
            else:
                self.add_model_dir(item.kind, item.path, is_default=item.is_default)

    def add_model_dir(self, kind: str, path: str | os.PathLike[str], is_default: bool = False) -> None:
        """Search ``path`` for models of ``kind`` too (first if ``is_default``)."""
        kind = canonical_kind(kind)
        path = _absolute(path)
        if is_default:
            # Like ComfyUI: a later default folder goes in front of earlier ones.
            self.preferred_model_dirs.setdefault(kind, []).insert(0, path)
        else:
            self.extra_model_dirs.setdefault(kind, []).append(path)

    def model_dirs(self, kind: str) -> list[Path]:
        """The folders searched for ``kind``, in search order."""
        kind = canonical_kind(kind)
        own = [self.models / kind] + [self.models / legacy for legacy in _LEGACY_SUBDIRS.get(kind, ())]
        ordered = [*self.preferred_model_dirs.get(kind, ()), *own, *self.extra_model_dirs.get(kind, ())]
        return list(dict.fromkeys(ordered))

    def list_models(self, kind: str, extensions: Iterable[str] | None = None) -> list[str]:
        """Model names of ``kind``, sorted, subfolders included (``sub/name.ext``).

        Diffusers models are folders holding a ``model_index.json``.  Listings
        are cached per folder and re-read when a folder's mtime changes, so
        asking often (every ``/object_info``) stays cheap.
        """
        kind = canonical_kind(kind)
        wanted = MODEL_EXTENSIONS if extensions is None else frozenset(e.lower() for e in extensions)
        scans = tuple(self._scan(directory) for directory in self.model_dirs(kind))
        key = (kind, wanted)
        known = self._listings.get(key)
        if known is not None and len(known[0]) == len(scans) and all(a is b for a, b in zip(known[0], scans)):
            return list(known[1])
        names: set[str] = set()
        for scan in scans:
            for file in scan.files:
                if kind == "diffusers":
                    head, _, tail = file.rpartition("/")
                    if tail == "model_index.json" and head:
                        names.add(head)
                elif not wanted or os.path.splitext(file)[1].lower() in wanted:
                    names.add(file)
        listing = sorted(names)
        with self._lock:
            self._listings[key] = (scans, listing)
        return list(listing)

    def model_path(self, kind: str, name: str) -> Path:
        """The file (or diffusers folder) behind a model name; raises :class:`ModelNotFound`.

        Symlinks inside model folders are followed (people link their model
        collections in); only the name itself may not climb out.
        """
        kind = canonical_kind(kind)
        noun = _KIND_NOUNS.get(kind, f"{kind} model")
        parts = safe_parts(name, f"{noun} name")
        dirs = self.model_dirs(kind)
        if parts:
            for directory in dirs:
                candidate = directory.joinpath(*parts)
                if candidate.is_dir() if kind == "diffusers" else candidate.is_file():
                    return candidate
        raise ModelNotFound(kind, name, dirs, self._display(self.models / kind) + "/")

    def _scan(self, directory: Path) -> _Scan:
        key = str(directory)
        scan = self._scans.get(key)
        if scan is not None and scan.still_valid(directory):
            return scan
        scan = _scan_tree(directory)
        with self._lock:
            self._scans[key] = scan
        return scan

    # -- input / output / temp -----------------------------------------------

    def root_dir(self, root: str) -> Path:
        """The folder of a ComfyUI file "type" (``output``, ``input`` or ``temp``)."""
        if root == "output":
            return self.output
        if root == "input":
            return self.input
        if root == "temp":
            return self.temp
        raise UnsafePath(f"unknown folder type {root!r}; expected one of {', '.join(ROOTS)}")

    def resolve(self, root: str, subfolder: str, filename: str) -> Path:
        """The real path of ``root/subfolder/filename``; raises :class:`UnsafePath`
        for any name that would leave ``root`` (``..``, absolute paths, NUL,
        backslashes, symlinks pointing outside)."""
        base = self.root_dir(root)
        name_parts = safe_parts(filename, "filename")
        if not name_parts:
            raise UnsafePath("empty filename")
        parts = safe_parts(subfolder or "", "subfolder") + name_parts
        check_name_lengths(parts, "/".join(parts))
        try:
            real_base = base.resolve()
            real = base.joinpath(*parts).resolve()
        except RuntimeError:  # Python 3.11's resolve() on a symlink loop
            raise BadName(f"'{'/'.join(parts)[:200]}' is a symlink loop in the {root} folder") from None
        except OSError as exc:
            raise BadName(f"'{'/'.join(parts)[:200]}' cannot be used in the {root} folder:"
                          f" {exc.strerror or exc}") from None
        if not real.is_relative_to(real_base):
            raise UnsafePath(f"'{'/'.join(parts)}' points outside the {root} folder")
        return real

    def annotated_path(self, name: str, default_root: str = "input") -> Path:
        """The path behind a ComfyUI annotated name (``"x.png [output]"``)."""
        root, plain = split_annotation(name, default_root)
        return self.resolve(root, "", plain)

    def list_files(self, root: str, extensions: Iterable[str] | None = None) -> list[str]:
        """Files directly in ``root`` (what LoadImage offers), sorted."""
        directory = self.root_dir(root)
        wanted = None if extensions is None else frozenset(e.lower() for e in extensions)
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return []
        return sorted(
            entry.name for entry in entries
            if not entry.name.startswith(".") and _is_file(entry)
            and (wanted is None or os.path.splitext(entry.name)[1].lower() in wanted)
        )

    def next_save_path(
        self, prefix: str, width: int = 0, height: int = 0, root: str = "output",
        now: time.struct_time | None = None,
    ) -> SaveTarget:
        """Where to save the next ``{prefix}_{counter:05}_.png``.

        ``prefix`` may name subfolders (``a/b/name``) and use ``%width%``,
        ``%height%``, ``%year%``... ``%second%`` and ``%date:yyyy-MM-dd%``.
        The counter continues from the highest one already in the folder; the
        folder is created.
        """
        expanded = expand_prefix(prefix, width, height, now)
        parts = safe_parts(expanded, "filename_prefix")
        if not parts or expanded.endswith("/"):
            raise ValueError(f"filename_prefix {prefix!r} names no file; give e.g. 'ComfyUI' or 'folder/name'")
        base = self.root_dir(root)
        folder = base.joinpath(*parts[:-1])
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.resolve().is_relative_to(base.resolve()):
            raise UnsafePath(f"filename_prefix {prefix!r} points outside the {root} folder")
        filename = parts[-1]
        return SaveTarget(folder, filename, highest_counter(folder, filename) + 1, "/".join(parts[:-1]))

    # -- creation and display --------------------------------------------------

    def ensure(self) -> "Folders":
        """Create the user folders and ``models/<kind>`` for the known kinds."""
        for directory in (self.output, self.input, self.temp, self.user):
            directory.mkdir(parents=True, exist_ok=True)
        for kind in MODEL_KINDS:
            (self.models / kind).mkdir(parents=True, exist_ok=True)
        return self

    def _display(self, path: Path) -> str:
        try:
            return path.relative_to(self.base).as_posix()
        except ValueError:
            return str(path)


def _is_file(entry: os.DirEntry) -> bool:
    """Whether a listed entry is a readable file; a symlink loop or a broken
    entry is skipped, never an error for the whole listing."""
    try:
        return entry.is_file()
    except OSError:
        return False


def check_name_lengths(parts: Sequence[str], shown: str) -> None:
    """Refuse a path whose parts are longer than file systems allow (255
    bytes each on nearly all of them; ``ENAMETOOLONG`` otherwise)."""
    for part in parts:
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > NAME_MAX:
            raise BadName(f"'{part[:60]}...' is {size} bytes long; file and folder names may be"
                          f" at most {NAME_MAX} bytes")
    if len(shown.encode("utf-8", "surrogatepass")) > PATH_MAX:
        raise BadName(f"'{shown[:60]}...' is longer than {PATH_MAX} bytes")


def file_digest(path: str | os.PathLike[str]) -> str:
    """A file's sha256, read in 1 MiB blocks: what LoadImage and LoadLatent fingerprint
    their input with, so a replaced file re-runs them."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
