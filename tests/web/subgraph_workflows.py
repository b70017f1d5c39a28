"""Small model-free workflows with subgraphs, as ComfyUI's frontend saves them
(version 1, definitions.subgraphs), for the subgraph-editing tests."""

from __future__ import annotations

ADD_ID = "d1000000-0000-4000-8000-0000000000ad"


def add_definition() -> dict:
    """'Add three': sum = x + b, with b an inner widget (3) and x the subgraph's input."""
    return {
        "id": ADD_ID, "version": 1, "name": "Add three", "revision": 0, "config": {},
        "state": {"lastNodeId": 1, "lastLinkId": 3, "lastGroupId": 0, "lastRerouteId": 0},
        "inputNode": {"id": -10, "bounding": [-260, 0, 120, 80]},
        "outputNode": {"id": -20, "bounding": [420, 0, 120, 80]},
        "inputs": [{"id": "in-x", "name": "x", "type": "INT", "linkIds": [1]}],
        "outputs": [{"id": "out-sum", "name": "sum", "type": "INT", "linkIds": [3]}],
        "widgets": [],
        "nodes": [{
            "id": 1, "type": "IntMath", "pos": [0, 40], "size": [260, 130], "flags": {}, "order": 0, "mode": 0,
            "inputs": [{"name": "a", "type": "INT", "link": 1, "widget": {"name": "a"}}],
            "outputs": [{"name": "INT", "type": "INT", "links": [3], "slot_index": 0}],
            "properties": {"Node name for S&R": "IntMath"},
            "widgets_values": [0, 3, "add"],
        }],
        "groups": [],
        "links": [
            {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "INT"},
            {"id": 3, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "INT"},
        ],
        "extra": {},
    }


def add_workflow(start: int = 5, proxy_widgets=None) -> dict:
    """Int(start) → [Add three] → Preview as Text; the instance is node 2."""
    instance = {
        "id": 2, "type": ADD_ID, "pos": [400, 100], "size": [260, 120], "flags": {}, "order": 1, "mode": 0,
        "inputs": [{"name": "x", "type": "INT", "link": 1}],
        "outputs": [{"name": "sum", "type": "INT", "links": [2], "slot_index": 0}],
        "properties": {"Node name for S&R": ADD_ID},
    }
    if proxy_widgets is not None:
        instance["properties"]["proxyWidgets"] = proxy_widgets
    return {
        "id": "0d5c2a5e-5b3e-4a55-9a7e-2f6f1d0c0001", "revision": 0, "version": 1,
        "state": {"lastNodeId": 3, "lastLinkId": 2, "lastGroupId": 0, "lastRerouteId": 0},
        "nodes": [
            {"id": 1, "type": "PrimitiveInt", "pos": [0, 100], "size": [260, 110], "flags": {}, "order": 0, "mode": 0,
             "inputs": [], "outputs": [{"name": "INT", "type": "INT", "links": [1], "slot_index": 0}],
             "properties": {"Node name for S&R": "PrimitiveInt"}, "widgets_values": [start, "fixed"]},
            instance,
            {"id": 3, "type": "PreviewAny", "pos": [800, 100], "size": [260, 120], "flags": {}, "order": 2, "mode": 0,
             "inputs": [{"name": "source", "type": "*", "link": 2}], "outputs": [],
             "properties": {"Node name for S&R": "PreviewAny"}},
        ],
        "links": [
            {"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "INT"},
            {"id": 2, "origin_id": 2, "origin_slot": 0, "target_id": 3, "target_slot": 0, "type": "INT"},
        ],
        "groups": [], "config": {}, "extra": {"ds": {"scale": 1, "offset": [40, 60]}},
        "definitions": {"subgraphs": [add_definition()]},
    }


def chain_workflow(start: int = 5) -> dict:
    """Int(start) → Int Math (+3) → Int Math (×2) → Preview as Text, no subgraph (version 1 file)."""
    def math(node_id, x, b, operation, link_in, link_out):
        return {"id": node_id, "type": "IntMath", "pos": [x, 100], "size": [260, 130], "flags": {}, "order": node_id - 1, "mode": 0,
                "inputs": [{"name": "a", "type": "INT", "link": link_in, "widget": {"name": "a"}}],
                "outputs": [{"name": "INT", "type": "INT", "links": [link_out], "slot_index": 0}],
                "properties": {"Node name for S&R": "IntMath"}, "widgets_values": [0, b, operation]}
    return {
        "id": "0d5c2a5e-5b3e-4a55-9a7e-2f6f1d0c0002", "revision": 0, "version": 1,
        "state": {"lastNodeId": 4, "lastLinkId": 3, "lastGroupId": 0, "lastRerouteId": 0},
        "nodes": [
            {"id": 1, "type": "PrimitiveInt", "pos": [0, 100], "size": [260, 110], "flags": {}, "order": 0, "mode": 0,
             "inputs": [], "outputs": [{"name": "INT", "type": "INT", "links": [1], "slot_index": 0}],
             "properties": {"Node name for S&R": "PrimitiveInt"}, "widgets_values": [start, "fixed"]},
            math(2, 350, 3, "add", 1, 2),
            math(3, 700, 2, "multiply", 2, 3),
            {"id": 4, "type": "PreviewAny", "pos": [1050, 100], "size": [260, 120], "flags": {}, "order": 3, "mode": 0,
             "inputs": [{"name": "source", "type": "*", "link": 3}], "outputs": [],
             "properties": {"Node name for S&R": "PreviewAny"}},
        ],
        "links": [
            {"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "INT"},
            {"id": 2, "origin_id": 2, "origin_slot": 0, "target_id": 3, "target_slot": 0, "type": "INT"},
            {"id": 3, "origin_id": 3, "origin_slot": 0, "target_id": 4, "target_slot": 0, "type": "INT"},
        ],
        "groups": [], "config": {}, "extra": {"ds": {"scale": 1, "offset": [40, 60]}},
    }
