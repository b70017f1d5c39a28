"""Routes the editor's "Open" list needs: the workflows it can open.

``GET /workflows`` lists the repository's shipped ``workflows/*.json`` and the
user's saved ones under ``<user>/workflows/`` (subfolders included);
``GET /workflows/{name}`` answers one file's JSON.  A user file's name starts with
``user/`` so the two folders never shadow each other.  Names never leave their folder.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from .jsonio import json_response
from .http_errors import ApiError
from .static import safe_child

if TYPE_CHECKING:
    from .app import LoomServer

log = logging.getLogger("loom.server")

#: The example workflows shipped with Loom.
SHIPPED_WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
USER_PREFIX = "user/"
#: Input images the shipped workflows load (LoadImage), copied into a new
#: input folder so the examples run without hunting for pictures.
EXAMPLE_INPUTS = SHIPPED_WORKFLOWS / "inputs"

#: A workflow is kilobytes; this only keeps a stray huge file from being read.
MAX_WORKFLOW_BYTES = 64 * 1024 * 1024


def provide_example_inputs(input_dir: Path) -> list[str]:
    """Copy the shipped workflows' input images into a new (absent or empty)
    ``input_dir``.  Only then: a folder the user has used is theirs, and images
    they deleted stay deleted."""
    copied: list[str] = []
    input_dir = Path(input_dir)
    if not EXAMPLE_INPUTS.is_dir() or (input_dir.is_dir() and any(input_dir.iterdir())):
        return copied
    for source in sorted(EXAMPLE_INPUTS.glob("*.png")):
        target = Path(input_dir) / source.name
        if target.exists():
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        except OSError as exc:  # a read-only input folder must not stop the server
            log.warning("could not copy the example image %s to %s: %s", source.name, input_dir, exc)
            continue
        copied.append(source.name)
    return copied


class EditorRoutes:
    def __init__(self, server: "LoomServer"):
        self.server = server

    def register(self, add) -> None:
        add("GET", "/workflows", self.list_workflows)
        add("GET", "/workflows/{name:.+}", self.get_workflow)

    @property
    def user_workflows(self) -> Path:
        return Path(self.server.folders.user) / "workflows"

    async def list_workflows(self, request: web.Request) -> web.Response:
        entries = [{"name": p.name, "source": "shipped", **describe_workflow(p)}
                   for p in _json_files(SHIPPED_WORKFLOWS, recursive=False)]
        user = self.user_workflows
        entries += [{"name": USER_PREFIX + p.relative_to(user).as_posix(), "source": "user", **describe_workflow(p)}
                    for p in _json_files(user, recursive=True)]
        return json_response(entries)

    async def get_workflow(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name.startswith(USER_PREFIX):
            folder, relative = self.user_workflows, name[len(USER_PREFIX):]
        else:
            folder, relative = SHIPPED_WORKFLOWS, name
            if "/" in relative:  # shipped workflows are one flat folder
                relative = "\x00"
        path = safe_child(folder, relative) if relative.lower().endswith(".json") else None
        if path is None:
            raise ApiError(404, "workflow_not_found",
                           f"no workflow named {name[:200]!r}; GET /workflows lists them")
        if path.stat().st_size > MAX_WORKFLOW_BYTES:
            raise ApiError(413, "workflow_too_large", f"workflow {name[:200]!r} is over {MAX_WORKFLOW_BYTES} bytes")
        # Sent as stored: ComfyUI's files may hold bare NaN/Infinity, which the editor reads.
        return web.FileResponse(path, headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})


#: Only files this small are opened to read a title; a bigger one is listed by name.
MAX_DESCRIBED_BYTES = 2 * 1024 * 1024
NOTE_TYPES = ("Note", "MarkdownNote")


def describe_workflow(path: Path) -> dict[str, str]:
    """The template browser's title and description of a workflow: ``extra.title``, else
    the first line of its first note; the description is the rest of that note."""
    try:
        if path.stat().st_size > MAX_DESCRIBED_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    note = next((n for n in data.get("nodes") or [] if isinstance(n, dict) and n.get("type") in NOTE_TYPES), None)
    values = note.get("widgets_values") if note else None
    text = values[0] if isinstance(values, list) and values and isinstance(values[0], str) else ""
    first, _, rest = text.strip().partition("\n")
    extra = data.get("extra") if isinstance(data.get("extra"), dict) else {}
    title = extra.get("title") if isinstance(extra.get("title"), str) else first
    description = rest.strip() if first.strip() == str(title).strip() else text.strip()
    found = {"title": str(title)[:200], "description": description[:400]}
    return {k: v for k, v in found.items() if v}


def _json_files(folder: Path, *, recursive: bool) -> list[Path]:
    if not folder.is_dir():
        return []
    real = folder.resolve()
    found = folder.rglob("*.json") if recursive else folder.glob("*.json")
    # Symlinks that point outside the folder are not listed (nor served).
    return sorted((p for p in found if p.is_file() and p.resolve().is_relative_to(real)),
                  key=lambda p: p.relative_to(folder).as_posix().lower())
