"""UI actions on the editor, as a user does them (mouse, keyboard), for the browser tests."""

from __future__ import annotations

from typing import Any


class EditorDriver:
    def __init__(self, page):
        self.page = page

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def workflow(self) -> dict:
        return self.js("window.loom.editor.serialize()")

    def node_ids(self, type_: str | None = None) -> list[int]:
        return self.js("(t) => [...window.loom.editor.graph.nodes.values()].filter(n => !t || n.type === t).map(n => n.id)", type_)

    def wait_for_nodes(self, type_: str, count: int, timeout: float = 5000) -> list[int]:
        """The ids of ``type_`` nodes once there are ``count`` of them (a paste reads the clipboard
        asynchronously, so its nodes appear a moment after the key press)."""
        self.page.wait_for_function(
            "([t, n]) => [...window.loom.editor.graph.nodes.values()].filter(x => x.type === t).length === n",
            arg=[type_, count], timeout=timeout)
        return self.node_ids(type_)

    def where(self, node_id, kind: str, key=None) -> tuple[float, float]:
        point = self.js("([id, kind, key]) => window.loom.editor.locate(id, kind, key)", [node_id, kind, key])
        assert point, f"node {node_id} has no {kind} {key!r} on screen"
        return point[0], point[1]

    def clear_canvas(self) -> None:
        self.page.click("#clear")
        assert self.node_ids() == []

    def add_node_by_search(self, query: str, at: tuple[float, float]) -> int:
        """Double-click empty canvas, type, press Enter; returns the new node's id."""
        before = set(self.node_ids())
        self.page.mouse.dblclick(*at)
        box = self.page.locator(".node-search input")
        box.fill(query)
        self.page.keyboard.press("Enter")
        new = set(self.node_ids()) - before
        assert len(new) == 1, f"searching {query!r} added {len(new)} nodes"
        return new.pop()

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        m = self.page.mouse
        m.move(*start)
        m.down()
        m.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
        m.move(*end, steps=4)
        m.up()

    def link(self, origin: int, output, target: int, input_name: str) -> None:
        self.drag(self.where(origin, "output", output), self.where(target, "input", input_name))

    def link_to_widget(self, origin: int, output, target: int, widget: str) -> None:
        self.drag(self.where(origin, "output", output), self.where(target, "widget", widget))

    def type_into_widget(self, node_id: int, widget: str, text: str) -> None:
        self.page.mouse.click(*self.where(node_id, "widget", widget))
        entry = self.page.locator(".inline-entry")
        entry.fill(text)
        if self.js("document.activeElement.tagName") == "TEXTAREA":
            entry.evaluate("e => e.blur()")  # a click elsewhere keeps a prompt (Ctrl+Enter would also queue it)
        else:
            entry.press("Enter")

    def value(self, node_id: int, widget: str):
        return self.js("([id, w]) => window.loom.editor.nodeById(id).values[w]", [node_id, widget])

    def move_node(self, node_id: int, dx: float, dy: float) -> None:
        x, y = self.where(node_id, "title")
        self.drag((x, y), (x + dx, y + dy))

    def links(self) -> list[tuple]:
        return sorted(tuple(l[1:5]) for l in self.workflow()["links"])
