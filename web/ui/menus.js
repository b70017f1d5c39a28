// The right-click menus (node, group, link midpoint, canvas) and the actions only they
// offer: Clone, Add Node by category, insert a node on a link, fit a group to its
// nodes, bypass or mute a whole group.
import { MODE_BYPASSED, MODE_MUTED } from "../lib/graph.js";
import { linkMiddle, nodeBounds } from "../lib/layout.js";
import { typesCompatible } from "../lib/types.js";
import { isBoundary } from "../lib/subgraph_edit.js";
import { convertSelection, unpackInstance } from "./subgraph_actions.js";
import { contextMenu, nodeSearch, toast } from "./popups.js";
import { copyImage, openImage, saveImage } from "./image_actions.js";

export const COLORS = [["Default", null], ["Red", "#5a2b2b"], ["Green", "#2b4a2b"], ["Blue", "#2b3a5a"], ["Purple", "#45305a"]];
export const GROUP_COLORS = [["Blue", "#3f789e"], ["Red", "#a1309b"], ["Green", "#3f8f3f"], ["Yellow", "#b58b2a"], ["Grey", "#444444"]];

/** Copies of the given nodes with their widget values, no links, `offset` away; selected. */
export function cloneNodes(editor, ids, offset = [24, 24]) {
  const graph = editor.graph;
  const clones = [];
  for (const id of ids) {
    const node = graph.nodes.get(id);
    if (!node || isBoundary(node)) continue;
    const copy = structuredClone(graph.serializeNode(node));
    copy.id = ++graph.lastNodeId;
    copy.pos = [node.pos[0] + offset[0], node.pos[1] + offset[1]];
    for (const input of copy.inputs ?? []) input.link = null;
    for (const output of copy.outputs ?? []) output.links = [];
    const clone = graph.loadNode(copy);
    editor.refreshInputPreview(clone);
    clones.push(clone);
  }
  if (!clones.length) return [];
  editor.selection = new Set(clones.map((n) => n.id));
  graph.touch();
  return clones;
}

/** "Add Node" by category: a drill-down menu of the node library's folders. */
export function categoryMenu(editor, x, y, at, path = []) {
  const prefix = path.join("/");
  const folders = new Set();
  const nodes = [];
  for (const schema of editor.schemaList) {
    const category = schema.category ?? "";
    if (category.split("/").includes("_for_testing") || schema.deprecated) continue;
    if (category === prefix) nodes.push(schema);
    else if (!prefix || category.startsWith(`${prefix}/`)) folders.add(category.slice(prefix ? prefix.length + 1 : 0).split("/")[0]);
  }
  contextMenu({ x, y, entries: [
    ...(path.length ? [{ label: "‹ Back", action: () => categoryMenu(editor, x, y, at, path.slice(0, -1)) }, null] : []),
    ...[...folders].filter(Boolean).sort().map((folder) => ({ label: `${folder} ▸`, action: () => categoryMenu(editor, x, y, at, [...path, folder]) })),
    ...nodes.sort((a, b) => a.displayName.localeCompare(b.displayName)).map((schema) => ({ label: schema.displayName, action: () => editor.addNode(schema.classType, at) })),
  ] });
}

/** The link whose midpoint dot is under world (wx, wy), with that midpoint. */
export function linkAtMidpoint(editor, wx, wy) {
  const radius = Math.max(8, 8 / editor.view.scale);
  for (const link of editor.graph.links.values()) {
    const mid = linkMidpoint(editor, link);
    if (mid && Math.hypot(mid[0] - wx, mid[1] - wy) <= radius) return { link, mid };
  }
  return null;
}

export function linkMidpoint(editor, link) {
  const points = editor.renderer.linkPoints(link);
  return points ? linkMiddle(points) : null;
}

/** Puts a node picked from the search on a link: origin → new node → target. */
function insertOnLink(editor, link, mid, clientX, clientY) {
  nodeSearch({
    x: clientX, y: clientY, schemas: editor.schemaList, filter: { outputType: link.type },
    onPick: (schema) => {
      const graph = editor.graph;
      const { origin_id: originId, origin_slot: originSlot, target_id: targetId } = link;
      const target = graph.nodes.get(targetId);
      const inputName = target?.inputs.find((i) => i.link === link.id)?.name;
      const node = editor.addNode(schema.classType, [mid[0] - 60, mid[1] - 30]);
      const input = node.inputs.find((i) => typesCompatible(link.type, i.type));
      const outIndex = node.outputs.findIndex((o) => typesCompatible(o.type, link.type));
      try {
        if (input) graph.connect(originId, originSlot, node.id, input.name);
        if (outIndex !== -1 && inputName) graph.connect(node.id, outIndex, targetId, inputName);
      } catch (err) { toast(`Could not wire ${schema.displayName}: ${err.message}`, "error"); }
      graph.touch();
      editor.commit();
    },
  });
}

function linkMenu(editor, e, { link, mid }) {
  contextMenu({ x: e.clientX, y: e.clientY, entries: [
    { label: "Add Node on this link…", action: () => insertOnLink(editor, link, mid, e.clientX, e.clientY) },
    { label: "Delete link", action: () => { editor.graph.removeLink(link.id); editor.graph.touch(); editor.commit(); } },
  ] });
}

/** On a node's image: the image's own actions first, then the node's menu entries. */
function imageMenu(editor, e, node) {
  const img = node.images[node.imageIndex ?? 0];
  contextMenu({ x: e.clientX, y: e.clientY, entries: [
    { label: "Open Image", action: () => openImage(img) },
    { label: "Save Image", action: () => saveImage(img) },
    { label: "Copy Image", action: () => copyImage(img) },
    null,
    { label: "Node menu ▸", action: () => nodeMenu(editor, e, node) },
  ] });
}

function nodeMenu(editor, e, node) {
  if (!editor.selection.has(node.id)) editor.selection = new Set([node.id]);
  const setColor = (color) => {
    for (const id of editor.selection) { const n = editor.graph.nodes.get(id); n.color = color ?? undefined; n.bgcolor = undefined; }
    editor.graph.touch();
    editor.commit();
  };
  contextMenu({ x: e.clientX, y: e.clientY, entries: [
    ...(node.subgraph ? [{ label: "Open subgraph", action: () => editor.openSubgraph(node) }, { label: "Unpack Subgraph", action: () => unpackInstance(editor, node) }] : []),
    { label: "Rename…", action: () => editor.rename(node) },
    { label: "Clone (Alt+drag)", action: () => { cloneNodes(editor, [...editor.selection]); editor.commit(); } },
    { label: node.flags?.collapsed ? "Expand" : "Collapse", action: () => editor.toggleCollapse(node) },
    { label: node.mode === MODE_BYPASSED ? "Stop bypassing (Ctrl+B)" : "Bypass (Ctrl+B)", action: () => editor.setMode(MODE_BYPASSED) },
    { label: node.mode === MODE_MUTED ? "Unmute (Ctrl+M)" : "Mute (Ctrl+M)", action: () => editor.setMode(MODE_MUTED) },
    ...COLORS.map(([label, color]) => ({ label: `Colour: ${label}`, action: () => setColor(color) })),
    null,
    { label: "Copy (Ctrl+C)", action: () => editor.copySelection() },
    { label: "Group selection (Ctrl+G)", action: () => editor.groupSelection() },
    { label: "Convert to Subgraph", action: () => convertSelection(editor) },
    { label: "Remove (Del)", action: () => editor.deleteSelection() },
  ] });
}

/** Sets every node inside the group to `mode`, or back to normal when all already are. */
function setGroupMode(editor, group, mode) {
  const nodes = editor.nodesInGroup(group);
  if (!nodes.length) return;
  editor.selection = new Set(nodes.map((n) => n.id));
  editor.setMode(mode);
}

/** Resizes the group to hold the nodes inside it, with room for its title. */
export function fitGroupToNodes(editor, group) {
  const nodes = editor.nodesInGroup(group);
  if (!nodes.length) return false;
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const n of nodes) {
    const [x, y, w, h] = nodeBounds(n, editor.graph.schemaOf(n));
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
  }
  group.bounding = [x0 - 10, y0 - (group.font_size ?? 24) - 20, x1 - x0 + 20, y1 - y0 + (group.font_size ?? 24) + 30];
  editor.graph.touch();
  editor.commit();
  return true;
}

function groupMenu(editor, e, group) {
  const modes = (mode) => editor.nodesInGroup(group).length > 0 && editor.nodesInGroup(group).every((n) => n.mode === mode);
  contextMenu({ x: e.clientX, y: e.clientY, entries: [
    { label: "Rename group…", action: () => editor.renameGroup(group) },
    { label: "Fit group to nodes", action: () => fitGroupToNodes(editor, group) },
    { label: modes(MODE_BYPASSED) ? "Stop bypassing group" : "Bypass group", action: () => setGroupMode(editor, group, MODE_BYPASSED) },
    { label: modes(MODE_MUTED) ? "Unmute group" : "Mute group", action: () => setGroupMode(editor, group, MODE_MUTED) },
    ...GROUP_COLORS.map(([label, color]) => ({ label: `Colour: ${label}`, action: () => { group.color = color; editor.graph.touch(); editor.commit(); } })),
    null,
    { label: "Remove group", action: () => { editor.graph.groups = editor.graph.groups.filter((g) => g !== group); editor.graph.touch(); editor.commit(); } },
  ] });
}

function canvasMenu(editor, e, wx, wy) {
  contextMenu({ x: e.clientX, y: e.clientY, entries: [
    { label: "Add Node ▸", action: () => categoryMenu(editor, e.clientX, e.clientY, [wx, wy]) },
    { label: "Search nodes…", action: () => nodeSearch({ x: e.clientX, y: e.clientY, schemas: editor.schemaList, onPick: (s) => editor.addNode(s.classType, [wx, wy]) }) },
    { label: "Add note", action: () => editor.addNode("Note", [wx, wy]) },
    { label: "Add reroute", action: () => editor.addNode("Reroute", [wx, wy]) },
    { label: "Add primitive", action: () => editor.addNode("PrimitiveNode", [wx, wy]) },
    { label: "Add group", action: () => { editor.graph.groups.push({ title: "Group", bounding: [wx, wy, 400, 300], color: "#3f789e", font_size: 24, flags: {}, rest: {} }); editor.graph.touch(); editor.commit(); } },
    null,
    { label: "Paste (Ctrl+V)", action: () => editor.paste(false) },
    ...(editor.selection.size ? [{ label: "Convert selection to Subgraph", action: () => convertSelection(editor) }] : []),
    { label: "Fit view (.)", action: () => editor.fitView() },
  ] });
}

/** The menu for a right-click at world (wx, wy): what is there decides which one. */
export function openContextMenu(editor, e, wx, wy, hit) {
  if (hit?.kind === "image" && hit.node.images?.length) { imageMenu(editor, e, hit.node); return; }
  if (hit?.node) { nodeMenu(editor, e, hit.node); return; }
  const onLink = linkAtMidpoint(editor, wx, wy);
  if (onLink) { linkMenu(editor, e, onLink); return; }
  if (hit?.group) { groupMenu(editor, e, hit.group); return; }
  canvasMenu(editor, e, wx, wy);
}
