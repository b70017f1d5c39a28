"""Writes ``docs/nodes.md``, the reference of every built-in node, from the schemas.

    .venv/bin/python scripts/gen_nodes_doc.py           # rewrite docs/nodes.md
    .venv/bin/python scripts/gen_nodes_doc.py --check   # exit 1 if it is out of date

The page is made from the same ``NodeSchema`` objects that ``/object_info`` and
validation read, so it cannot describe a node differently from the running
server.  The registry's folders point at an empty temporary directory: combos
that list files (checkpoints, images...) come out empty instead of showing
whatever happens to be on the machine that ran the script.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file: the repository's packages come first
    sys.path.insert(0, str(ROOT))

from engine.schema import MISSING, InputSpec, NodeSchema, OutputSpec  # noqa: E402

DOC_PATH = ROOT / "docs" / "nodes.md"
COMMAND = ".venv/bin/python scripts/gen_nodes_doc.py"

#: Combos with more options than this show the first few and a count.
MAX_CHOICES = 12
SHOWN_WHEN_ABBREVIATED = 8
#: Longer literal defaults (multi-line prompts...) are cut to this many characters.
MAX_DEFAULT = 60


def builtin_schemas() -> list[NodeSchema]:
    """The schema of every built-in node, read with empty model/input folders."""
    import nodes
    from engine.registry import Registry
    from nodes.runtime import LoomEnv

    with tempfile.TemporaryDirectory(prefix="loom-nodes-doc-") as empty:
        registry = Registry(env=LoomEnv.at(Path(empty), device="cpu"))
        registry.add_all(nodes.builtin_nodes(), origin="builtin")
        return [registry.schema(class_type) for class_type in registry.class_types()]


# -- formatting helpers ----------------------------------------------------------------


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """An inline code span that survives backticks in ``text``."""
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _number(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _literal(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > MAX_DEFAULT:
        text = text[: MAX_DEFAULT - 1] + "…"
    return text


def _paragraphs(text: str) -> str:
    """A docstring's hard-wrapped lines joined into Markdown paragraphs."""
    blocks = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in block.splitlines()) for block in blocks)


def anchor(heading: str, seen: dict[str, int]) -> str:
    """The id GitHub gives a heading (lower case, punctuation dropped, spaces to
    dashes, repeats numbered)."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return slug if count == 0 else f"{slug}-{count}"


# -- one node --------------------------------------------------------------------------


def input_name(spec: InputSpec) -> str:
    name = _code(spec.name)
    return name if spec.section == "required" else f"{name} *({spec.section})*"


def input_default(spec: InputSpec) -> str:
    if spec.default is MISSING:
        return ""
    return _code(_literal(spec.default))


def input_range(spec: InputSpec) -> str:
    parts = []
    if spec.min is not None and spec.max is not None:
        parts.append(f"{_number(spec.min)} … {_number(spec.max)}")
    elif spec.min is not None:
        parts.append(f"≥ {_number(spec.min)}")
    elif spec.max is not None:
        parts.append(f"≤ {_number(spec.max)}")
    if spec.step is not None:
        parts.append(f"step {_number(spec.step)}")
    return ", ".join(parts)


def choices_text(spec: InputSpec) -> str:
    choices = spec.choices or ()
    if not choices:  # a file list, read from the (empty) folders when the page was made
        kind = getattr(spec, "model_kind", None)
        if kind:
            return f"options: the files in `models/{kind}/`"
        if spec.extra.get("image_upload"):
            return "options: the images in `input/`"
        return "options: the files found at run time"
    shown = choices if len(choices) <= MAX_CHOICES else choices[:SHOWN_WHEN_ABBREVIATED]
    text = ", ".join(_code(choice if isinstance(choice, str) else _literal(choice)) for choice in shown)
    if len(shown) < len(choices):
        text += f", … ({len(choices)} options)"
    return f"options: {text}"


def input_notes(spec: InputSpec) -> str:
    """Options and flags, then the tooltip."""
    notes = []
    if spec.type == "COMBO" and spec.choices is not None:
        notes.append(choices_text(spec))
    if spec.extra.get("image_upload"):
        notes.append("upload button")
    if spec.multiline:
        notes.append("multi-line")
    if spec.control_after_generate:
        notes.append("control after generate")
    if spec.force_input:
        notes.append("socket only")
    if spec.lazy:
        notes.append("lazy")
    text = "; ".join(notes)
    if spec.tooltip:
        text += (". " if text else "") + _paragraphs(spec.tooltip)
    return text


def output_row(output: OutputSpec) -> str:
    cells = [_code(output.name), output.type, "list" if output.is_list else "", output.tooltip or ""]
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def node_section(schema: NodeSchema) -> list[str]:
    lines = [f"### {schema.class_type}", ""]
    facts = [f"**{_cell(schema.display_name)}**", f"category {_code(schema.category)}",
             f"from {_code(schema.python_module)}"]
    if schema.output_node:
        facts.append("output node")
    if schema.input_is_list:
        facts.append("takes whole lists")
    if schema.not_idempotent:
        facts.append("never cached")
    if schema.deprecated:
        facts.append("deprecated")
    if schema.experimental:
        facts.append("experimental")
    lines += [" · ".join(facts), ""]
    if schema.description:
        lines += [_paragraphs(schema.description), ""]
    if schema.inputs:
        lines += ["| input | type | default | range | notes |", "|---|---|---|---|---|"]
        for spec in schema.inputs:
            cells = [input_name(spec), spec.type, input_default(spec), input_range(spec), input_notes(spec)]
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        lines.append("")
    else:
        lines += ["No inputs.", ""]
    if schema.outputs:
        lines += ["| output | type | is list | notes |", "|---|---|---|---|"]
        lines += [output_row(output) for output in schema.outputs]
        lines.append("")
    else:
        lines += ["No outputs.", ""]
    return lines


# -- the page --------------------------------------------------------------------------


def render(schemas: Iterable[NodeSchema]) -> str:
    by_category: dict[str, list[NodeSchema]] = defaultdict(list)
    for schema in schemas:
        by_category[schema.category].append(schema)
    categories = sorted(by_category)
    for category in categories:
        by_category[category].sort(key=lambda s: s.class_type)
    total = sum(len(group) for group in by_category.values())

    # Anchors are numbered in page order, as GitHub numbers repeated headings.
    seen: dict[str, int] = {}
    anchor("Built-in nodes", seen)
    anchor("Contents", seen)
    category_ids: dict[str, str] = {}
    node_ids: dict[str, str] = {}
    for category in categories:
        category_ids[category] = anchor(category, seen)
        for schema in by_category[category]:
            node_ids[schema.class_type] = anchor(schema.class_type, seen)

    lines = [
        "# Built-in nodes",
        "",
        f"<!-- Generated by scripts/gen_nodes_doc.py from the node schemas; do not edit by hand. "
        f"Regenerate with: {COMMAND} -->",
        "",
        f"Every node Loom ships ({total}), grouped by category, as the editor and `/object_info` see it.",
        "Inputs marked *(optional)* may be left unconnected; *(hidden)* inputs are filled in by Loom.",
        "Combos that list files show the files found in your model or input folders when Loom runs.",
        "",
        "## Contents",
        "",
    ]
    for category in categories:
        links = ", ".join(f"[{s.class_type}](#{node_ids[s.class_type]})" for s in by_category[category])
        lines.append(f"- [{category}](#{category_ids[category]}): {links}")
    lines.append("")
    for category in categories:
        lines += [f"## {category}", ""]
        for schema in by_category[category]:
            lines += node_section(schema)
    return "\n".join(lines).rstrip("\n") + "\n"


def generate() -> str:
    return render(builtin_schemas())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/nodes.md from the built-in node schemas.")
    parser.add_argument("--check", action="store_true", help="only check that docs/nodes.md is current (exit 1 if not)")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else None
        if current != text:
            print(f"{DOC_PATH.relative_to(ROOT)} is out of date; run: {COMMAND}", file=sys.stderr)
            return 1
        print(f"{DOC_PATH.relative_to(ROOT)} is up to date")
        return 0
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOC_PATH.relative_to(ROOT)} ({text.count(chr(10) + '### ')} nodes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
