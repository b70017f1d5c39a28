"""The command line for the jobs features: ``loom serve``'s webhook and
users flags, ``loom users add/remove/list``, ``loom models list`` and
``loom --version``; ``server.cli`` wires these in."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("loom")
    except Exception:  # run from a checkout that was never installed
        import tomllib

        data = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
        return str(data["project"]["version"])


def add_serve_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("webhooks and users")
    group.add_argument("--webhook", metavar="URL", default=None,
                       help="POST every job's end (signed JSON) to URL; a prompt may also name its own in"
                            " extra_data.webhook")
    group.add_argument("--webhook-secret", metavar="SECRET", default=None,
                       help="sign webhooks: header X-Loom-Signature: sha256=HMAC-SHA256(SECRET, body)")
    group.add_argument("--allow-private-webhooks", action="store_true",
                       help="let webhooks target loopback and private-network addresses")
    group.add_argument("--webhook-max-attempts", type=int, default=8, metavar="N",
                       help="deliveries tried (with doubling backoff from 5 s) before one is given up (default 8)")
    group.add_argument("--users", type=Path, default=None, metavar="FILE",
                       help="users with their own tokens and roles (made with 'loom users add'); each user sees"
                            " only their own jobs and saves to output/<user>/")
    add_comfyui_flags(p)


#: ComfyUI launch flags that scripts pass and that mean nothing here (Loom
#: picks its attention kernels itself, never opens a browser, prints its
#: address anyway): accepted, with one line saying they change nothing.
_NO_EFFECT = {
    "--auto-launch": "Loom never opens a browser",
    "--disable-auto-launch": "Loom never opens a browser",
    "--dont-print-server": None,
    "--log-stdout": None,
    "--windows-standalone-build": None,
    "--use-pytorch-cross-attention": "Loom chooses the attention kernel itself",
    "--use-split-cross-attention": "Loom chooses the attention kernel itself",
    "--use-quad-cross-attention": "Loom chooses the attention kernel itself",
    "--use-sage-attention": "Loom chooses the attention kernel itself",
    "--use-flash-attention": "Loom chooses the attention kernel itself",
    "--disable-xformers": "Loom does not use xformers",
    "--dont-upcast-attention": "Loom chooses the attention kernel itself",
    "--deterministic": "not supported",
    "--disable-metadata": "not supported: saved images keep their workflow",
    "--multi-user": "Loom's users are --users FILE",
}


def add_comfyui_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("ComfyUI launch flags", "accepted so ComfyUI's launch scripts work")
    for flag, why in _NO_EFFECT.items():
        group.add_argument(flag, action="store_true", dest=f"comfy_{flag[2:].replace('-', '_')}",
                           help=f"ComfyUI's flag; no effect here{f' ({why})' if why else ''}")
    group.add_argument("--front-end-version", metavar="VERSION", default=None,
                       help="ComfyUI's flag; no effect here (Loom serves its own editor)")
    group.add_argument("--fast", nargs="*", metavar="OPTIMIZATION", default=None,
                       help="ComfyUI's flag; no effect here")
    group.add_argument("--cuda-device", type=int, metavar="N", default=None,
                       help="use only CUDA device N (sets CUDA_VISIBLE_DEVICES, as ComfyUI)")
    group.add_argument("--disable-all-custom-nodes", action="store_true",
                       help="same as --disable-custom-nodes (ComfyUI's flag)")


def apply_comfyui_flags(args: argparse.Namespace) -> list[str]:
    """Act on the ComfyUI flags that mean something here; the notes to print
    for those that do not."""
    import os

    notes = []
    for flag, why in _NO_EFFECT.items():
        if getattr(args, f"comfy_{flag[2:].replace('-', '_')}", False) and why is not None:
            notes.append(f"loom: {flag} has no effect ({why})")
    if getattr(args, "front_end_version", None) is not None:
        notes.append("loom: --front-end-version has no effect (Loom serves its own editor)")
    if getattr(args, "fast", None) is not None:
        notes.append("loom: --fast has no effect")
    if getattr(args, "cuda_device", None) is not None:
        if args.cuda_device < 0:
            raise SystemExit("loom: --cuda-device must be 0 or more")
        os.environ["CUDA_VISIBLE_DEVICES"] = str(args.cuda_device)  # before torch is imported
    if getattr(args, "disable_all_custom_nodes", False):
        args.disable_custom_nodes = True
    return notes


def serve_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ServerOptions fields these flags set; ``SystemExit`` with a message when one is wrong."""
    from .webhooks import BadWebhook, check_webhook_url

    for note in apply_comfyui_flags(args):
        print(note, file=sys.stderr)
    if args.webhook is not None:
        try:
            check_webhook_url(args.webhook, args.allow_private_webhooks, "--webhook")
        except BadWebhook as exc:
            raise SystemExit(f"loom: {exc}") from None
    if args.webhook_max_attempts < 1:
        raise SystemExit("loom: --webhook-max-attempts must be at least 1")
    if args.users is not None:
        if args.auth_token:
            raise SystemExit("loom: --users and --auth-token are two ways to log in; give one (users have their"
                             " own tokens: 'loom users add NAME')")
        from .users import UsersFileError, read_users

        try:
            users = read_users(args.users)
        except UsersFileError as exc:
            raise SystemExit(f"loom: {exc}") from None
        if not users:
            raise SystemExit(f"loom: {args.users} has no users; add one with 'loom users add NAME --role admin"
                             f" --file {args.users}'")
    return {"webhook_url": args.webhook, "webhook_secret": args.webhook_secret,
            "allow_private_webhooks": args.allow_private_webhooks,
            "webhook_max_attempts": args.webhook_max_attempts, "users_file": args.users}


def add_users_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("users", help="manage the users of 'loom serve --users FILE'",
                       description="Users log in with their own token; a user sees only their own jobs, an admin"
                                   " sees all. Tokens are stored as SHA-256 hashes and shown once, when made.")
    users = p.add_subparsers(dest="users_command", required=True, metavar="add|remove|list")
    for name, summary in (("add", "add a user (or give them a new token); prints the token"),
                          ("remove", "remove a user"), ("list", "list users and roles")):
        q = users.add_parser(name, help=summary, description=summary)
        if name != "list":
            q.add_argument("name", help="the user's name (letters, digits, _ - .); also their output folder")
        if name == "add":
            q.add_argument("--role", choices=("user", "admin"), default="user",
                           help="admin: sees and manages everything; user: only their own jobs (default)")
        q.add_argument("--file", type=Path, default=Path("user/users.json"), metavar="FILE",
                       help="the users file (default: user/users.json); pass it to 'loom serve --users'")


def run_users(args: argparse.Namespace) -> int:
    from .users import UsersFileError, add_user, read_users, remove_user

    try:
        if args.users_command == "add":
            token = add_user(args.file, args.name, args.role)
            print(f"{args.name} ({args.role}) added to {args.file}; their token (shown only now):\n{token}")
        elif args.users_command == "remove":
            remove_user(args.file, args.name)
            print(f"{args.name} removed from {args.file}")
        else:
            users = read_users(args.file)
            if not users:
                print(f"no users in {args.file}")
            for user in sorted(users.values(), key=lambda u: u.name):
                print(f"{user.name}\t{user.role}")
    except UsersFileError as exc:
        print(f"loom: {exc}", file=sys.stderr)
        return 2
    return 0


def add_models_list(models: argparse._SubParsersAction) -> None:
    q = models.add_parser("list", help="list model files, by kind",
                          description="List the model files Loom finds, as nodes offer them (kind/name).")
    q.add_argument("--kind", metavar="KIND", help="only this kind: checkpoints, loras, vae, ...")
    group = q.add_argument_group("folders")
    group.add_argument("--base-directory", default=".", metavar="DIR", help="the folder holding models/ (default: .)")
    group.add_argument("--models-dir", metavar="DIR", help="the models folder (default: BASE/models)")
    group.add_argument("--extra-model-paths-config", action="append", metavar="YAML",
                       help="ComfyUI's extra_model_paths.yaml (repeatable)")


def list_models(args: argparse.Namespace) -> int:
    from nodes.folders import MODEL_KINDS, Folders, canonical_kind

    try:
        folders = Folders.from_options(Path(args.base_directory), models_dir=args.models_dir,
                                       extra_model_paths_config=args.extra_model_paths_config)
        kinds = [canonical_kind(args.kind)] if args.kind else sorted(
            {*MODEL_KINDS, *folders.extra_model_dirs, *folders.preferred_model_dirs})
    except (ValueError, OSError) as exc:
        print(f"loom: {exc}", file=sys.stderr)
        return 2
    found = 0
    for kind in kinds:
        for name in folders.list_models(kind):
            print(f"{kind}/{name}")
            found += 1
    if not found:
        print(f"no model files{f' of kind {args.kind}' if args.kind else ''} under {folders.models}", file=sys.stderr)
    return 0
