// The canvas' pointer and keyboard handling: picking, dragging nodes, links, widgets
// and the view, clicks on widgets, double-click search, the context menu, shortcuts.
// Mixed into Editor.prototype (editor.js), so `this` is the editor.
import { MODE_BYPASSED, MODE_MUTED } from "../lib/graph.js";
import { hitTest, numberPart } from "../lib/hit.js";
import { TITLE_H, inputPos, nodeBounds, outputPos } from "../lib/layout.js";
import { REROUTE_RADIUS, rerouteAt } from "../lib/reroutes.js";
import { typesCompatible } from "../lib/types.js";
import { clampNumber, cycleChoice, numberStep, stepNumber } from "../lib/widget_values.js";
import { BOUNDARY_NOTE, isBoundary } from "../lib/subgraph_edit.js";
import { evaluateArithmetic } from "../lib/arithmetic.js";
import { GRID } from "./settings.js";
import { boundarySlotEntries, dropOnEmptySlot } from "./subgraph_actions.js";
import { closePopup, comboList, contextMenu, inlineEntry, nodeSearch, toast } from "./popups.js";
import { cloneNodes, openContextMenu } from "./menus.js";

const CONTROL_MODES = ["fixed", "increment", "decrement", "randomize"];

export const inputHandling = {
  bindInput() {
    const c = this.canvas;
    c.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    addEventListener("pointermove", (e) => this.onPointerMove(e));
    addEventListener("pointerup", (e) => this.onPointerUp(e));
    c.addEventListener("dblclick", (e) => this.onDoubleClick(e));
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (e.ctrlKey || !e.shiftKey) this.zoomAt(e.clientX, e.clientY, Math.exp(-e.deltaY * (e.ctrlKey ? 0.01 : 0.0015)));
      else { this.view.offset[0] -= e.deltaY / this.view.scale; this.redraw(); }
    }, { passive: false });
    c.addEventListener("contextmenu", (e) => { e.preventDefault(); this.onContextMenu(e); });
    addEventListener("keydown", (e) => this.onKeyDown(e));
    addEventListener("keyup", (e) => { if (e.code === "Space") this.spaceDown = false; });
  },

  hitAt(wx, wy) {
    const ids = this.renderer.nodesIn([wx - 30, wy - 30, 60, 60]);
    return hitTest(this.graph, ids, wx, wy);
  },

  onPointerDown(e) {
    closePopup();
    this.canvas.focus();
    const [wx, wy] = this.toWorld(e.clientX, e.clientY);
    this.mouse = [wx, wy];
    if (e.button === 1 || (e.button === 0 && this.spaceDown)) {
      this.drag = { kind: "pan", last: [e.clientX, e.clientY] };
      return;
    }
    if (e.button !== 0) return;
    const hit = this.hitAt(wx, wy);
    const g = this.graph;
    if (!hit || hit.group) {  // links (and their reroutes) are drawn over groups, under nodes
      const reroute = rerouteAt(g.reroutes, wx, wy, Math.max(REROUTE_RADIUS, 6 / this.view.scale));
      if (reroute) {
        this.drag = { kind: "reroute", reroute, start: [wx, wy], origin: [...reroute.pos], moved: false };
        this.redraw();
        return;
      }
    }
    if (!hit) {
      if (e.ctrlKey || e.shiftKey || e.metaKey) this.drag = { kind: "box", start: [wx, wy], to: [wx, wy], add: e.shiftKey };
      else this.drag = { kind: "pan", last: [e.clientX, e.clientY], moved: false, clearOnClick: true };
      return;
    }
    const node = hit.node;
    switch (hit.kind) {
      case "output": {
        const from = outputPos(node, hit.index, g.schemaOf(node));
        this.drag = { kind: "link", origin: node.id, slot: hit.index, type: node.outputs[hit.index].type, from, to: [wx, wy] };
        return;
      }
      case "input": {
        const link = g.linkInto(node, hit.name);
        if (link) {  // pick the link up from its input and re-drag it
          const origin = g.nodes.get(link.origin_id);
          g.removeLink(link.id);
          this.drag = { kind: "link", origin: origin.id, slot: link.origin_slot, type: origin.outputs[link.origin_slot].type, from: outputPos(origin, link.origin_slot, g.schemaOf(origin)), to: [wx, wy], detached: true };
        } else {
          this.drag = { kind: "link-back", target: node.id, input: hit.name, type: node.inputs[hit.index].type, from: inputPos(node, hit.index), to: [wx, wy] };
        }
        this.redraw();
        return;
      }
      case "collapse": this.toggleCollapse(node); return;
      case "resize": {
        const [x, y, w, h] = nodeBounds(node, g.schemaOf(node));
        this.drag = { kind: "resize", node, start: [wx, wy], size: [w, h - TITLE_H] };
        void x; void y;
        return;
      }
      case "widget": this.drag = { kind: "widget", hit, start: [e.clientX, e.clientY], startValue: node.values[hit.widget.name], moved: false }; return;
      case "control": this.pickControl(node, hit, e); return;
      case "image": this.openImage(node, e); return;
      case "group-title":
      case "group": {
        if (hit.kind === "group") { this.drag = { kind: "box", start: [wx, wy], to: [wx, wy] }; return; }
        this.selectedGroup = hit.group;
        this.selection.clear();
        const inside = this.nodesInGroup(hit.group);
        this.drag = { kind: "move", start: [wx, wy], group: hit.group, groupStart: [...hit.group.bounding], origins: new Map(inside.map((n) => [n.id, [...n.pos]])) };
        this.redraw();
        return;
      }
      default: {  // title or body: select and move
        this.selectedGroup = null;
        if (e.shiftKey || e.ctrlKey || e.metaKey) {
          if (this.selection.has(node.id) && (e.ctrlKey || e.metaKey)) this.selection.delete(node.id);
          else this.selection.add(node.id);
        } else if (!this.selection.has(node.id)) this.selection = new Set([node.id]);
        // Alt+drag drags a clone and leaves the original in place, as in ComfyUI.
        if (e.altKey && cloneNodes(this, [...this.selection], [0, 0]).length) this.drag = { kind: "move", cloned: true };
        this.bringToFront(this.selection);
        this.drag = { kind: "move", cloned: Boolean(this.drag?.cloned), start: [wx, wy], origins: new Map([...this.selection].map((id) => [id, [...g.nodes.get(id).pos]])) };
        this.emit("selection");
        this.redraw();
      }
    }
  },

  onPointerMove(e) {
    const d = this.drag;
    const [wx, wy] = this.toWorld(e.clientX, e.clientY);
    this.mouse = [wx, wy];
    if (!d) return;
    switch (d.kind) {
      case "pan": {
        const dx = e.clientX - d.last[0];
        const dy = e.clientY - d.last[1];
        if (Math.abs(dx) + Math.abs(dy) > 0) d.moved = true;
        this.view.offset[0] += dx / this.view.scale;
        this.view.offset[1] += dy / this.view.scale;
        d.last = [e.clientX, e.clientY];
        break;
      }
      case "move": {
        const dx = wx - d.start[0];
        const dy = wy - d.start[1];
        for (const [id, [x, y]] of d.origins) {
          const n = this.graph.nodes.get(id);
          // Shift snaps to the grid; with the snap setting on, Shift moves freely instead.
          if (n) n.pos = e.shiftKey !== this.prefs.snapToGrid ? [Math.round((x + dx) / GRID) * GRID, Math.round((y + dy) / GRID) * GRID] : [x + dx, y + dy];
        }
        if (d.group) d.group.bounding = [d.groupStart[0] + dx, d.groupStart[1] + dy, d.groupStart[2], d.groupStart[3]];
        d.moved ||= dx !== 0 || dy !== 0;  // a click fires pointermove too: only a real move is an edit
        this.graph.touch();
        break;
      }
      case "reroute":
        d.reroute.pos = [d.origin[0] + wx - d.start[0], d.origin[1] + wy - d.start[1]];
        d.moved = true;
        this.graph.touch();
        break;
      case "resize":
        d.node.size = [Math.max(120, d.size[0] + wx - d.start[0]), Math.max(40, d.size[1] + wy - d.start[1])];
        d.moved ||= wx !== d.start[0] || wy !== d.start[1];
        this.graph.touch();
        break;
      case "link":
      case "link-back":
        d.to = [wx, wy];
        d.refused = Boolean(this.linkTargetRefusal(d, wx, wy));
        break;
      case "box": d.to = [wx, wy]; break;
      case "widget": {
        const { hit } = d;
        const spec = hit.widget.spec;
        if ((spec.type === "INT" || spec.type === "FLOAT") && Math.abs(e.clientX - d.start[0]) > 3) {
          d.moved = true;
          const steps = Math.round((e.clientX - d.start[0]) / 6);
          hit.node.values[hit.widget.name] = clampNumber(spec, Number(d.startValue) + steps * numberStep(spec));
          this.graph.touch();
        }
        break;
      }
      default: return;
    }
    this.redraw();
  },

  /** Where a dragged link would land and why it would be refused, if it would. */
  linkTarget(d, wx, wy) {
    const hit = this.hitAt(wx, wy);
    if (!hit) return null;
    const g = this.graph;
    if (d.kind === "link") {
      if (hit.kind === "input") return { target: hit.node.id, input: hit.name };
      if (hit.kind === "widget" && !hit.widget.upload && hit.node.id !== d.origin) return { target: hit.node.id, input: hit.widget.name };
      if (["title", "body", "widget"].includes(hit.kind) && hit.node.id !== d.origin) {
        const slot = hit.node.inputs.find((i) => i.link == null && typesCompatible(d.type, i.type)) ?? hit.node.inputs.find((i) => typesCompatible(d.type, i.type));
        if (slot) return { target: hit.node.id, input: slot.name };
        return { refusal: `${this.titleOf(hit.node)} has no input that takes ${d.type}${isBoundary(hit.node) ? ` (${BOUNDARY_NOTE})` : ""}` };
      }
    } else if (hit.kind === "output") {
      return { origin: hit.node.id, slot: hit.index };
    } else if (["title", "body"].includes(hit.kind)) {
      const index = hit.node.outputs.findIndex((o) => typesCompatible(o.type, d.type));
      if (index >= 0) return { origin: hit.node.id, slot: index };
      return { refusal: `${this.titleOf(hit.node)} has no output of type ${d.type}${isBoundary(hit.node) ? ` (${BOUNDARY_NOTE})` : ""}` };
    }
    void g;
    return null;
  },

  linkTargetRefusal(d, wx, wy) {
    const t = this.linkTarget(d, wx, wy);
    if (!t) return null;
    if (t.refusal) return t.refusal;
    return d.kind === "link" ? this.graph.canConnect(d.origin, d.slot, t.target, t.input) : this.graph.canConnect(t.origin, t.slot, d.target, d.input);
  },

  onPointerUp(e) {
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    const [wx, wy] = this.toWorld(e.clientX, e.clientY);
    switch (d.kind) {
      case "pan":
        if (d.clearOnClick && !d.moved) { this.selection.clear(); this.selectedGroup = null; this.emit("selection"); }
        break;
      case "move":
      case "resize":
        // Selecting (and raising) a node by clicking it is not an edit: no undo step, not "modified".
        if (d.moved || d.cloned) this.commit();
        break;
      case "reroute":
        if (d.moved) this.commit();
        break;
      case "box": {
        const [x1, y1] = d.start;
        const rect = [Math.min(x1, wx), Math.min(y1, wy), Math.abs(wx - x1), Math.abs(wy - y1)];
        if (!d.add) this.selection.clear();
        for (const id of this.renderer.nodesIn(rect)) {
          const [x, y, w, h] = nodeBounds(this.graph.nodes.get(id), this.graph.schemaOf(this.graph.nodes.get(id)));
          if (x < rect[0] + rect[2] && x + w > rect[0] && y < rect[1] + rect[3] && y + h > rect[1]) this.selection.add(id);
        }
        this.emit("selection");
        break;
      }
      case "link":
      case "link-back":
        this.finishLink(d, wx, wy, e);
        break;
      case "widget":
        if (!d.moved) this.clickWidget(d.hit, wx, e);
        else this.commit();
        break;
      default: break;
    }
    this.redraw();
  },

  finishLink(d, wx, wy, e) {
    const t = this.linkTarget(d, wx, wy);
    if (dropOnEmptySlot(this, d, t)) return;  // a new subgraph input/output
    if (!t) {
      if (d.detached) { this.commit(); return; }  // dropped a picked-up link on nothing: it is deleted
      // Dropped on empty canvas: offer the nodes that fit, and connect the chosen one.
      const filter = d.kind === "link" ? { outputType: d.type } : { inputType: d.type };
      nodeSearch({
        x: e.clientX, y: e.clientY, schemas: this.schemaList, filter,
        onPick: (schema) => {
          const node = this.graph.addNode(schema.classType, [wx, wy]);
          try {
            if (d.kind === "link") {
              const spec = schema.inputs.find((s) => s.section !== "hidden" && !s.isWidget && typesCompatible(d.type, s.type)) ?? schema.inputs.find((s) => typesCompatible(d.type, s.type));
              this.graph.connect(d.origin, d.slot, node.id, spec.name);
            } else {
              node.pos = [wx - 240, wy];
              this.graph.connect(node.id, schema.outputs.findIndex((o) => typesCompatible(o.type, d.type)), d.target, d.input);
            }
          } catch (err) { toast(`Link refused: ${err.message}`, "error"); }
          this.selection = new Set([node.id]);
          this.commit();
        },
      });
      return;
    }
    if (t.refusal) { toast(`Link refused: ${t.refusal}`, "error"); if (d.detached) this.commit(); return; }
    try {
      if (d.kind === "link") this.graph.connect(d.origin, d.slot, t.target, t.input);
      else this.graph.connect(t.origin, t.slot, d.target, d.input);
      this.errors.nodes.delete(String(d.kind === "link" ? t.target : d.target));
    } catch (err) {
      toast(`Link refused: ${err.message}`, "error");
    }
    this.commit();
  },

  async clickWidget(hit, wx, e) {
    const { node, widget, rect } = hit;
    const spec = widget.spec;
    const name = widget.name;
    const value = node.values[name];
    if (widget.upload) { this.chooseUpload(node, spec.target); return; }
    const [sx, sy] = this.toScreen(rect.x, rect.y);
    const sw = rect.w * this.view.scale;
    const sh = rect.h * this.view.scale;
    switch (spec.type) {
      case "INT":
      case "FLOAT": {
        const part = numberPart(rect, wx);
        if (part !== "value") { this.setValue(node, name, stepNumber(spec, value, part === "inc" ? 1 : -1)); return; }
        const text = await inlineEntry({ x: sx, y: sy, w: sw, h: sh, value: String(value), numeric: true });
        if (text === null || text.trim() === "") return;
        const parsed = evaluateArithmetic(text.trim());  // "2*3" works as in ComfyUI
        if (parsed === null) { toast(`'${text}' is not a number`, "error"); return; }
        const clamped = clampNumber(spec, parsed);
        if (this.prefs.clampCue && Math.abs(clamped - parsed) > 1e-9 && (parsed < (spec.options?.min ?? -Infinity) || parsed > (spec.options?.max ?? Infinity))) {
          toast(`${spec.label || name}: ${parsed} is outside ${spec.options?.min ?? "−∞"}…${spec.options?.max ?? "∞"}; set to ${clamped}`, "warn");
        }
        this.setValue(node, name, clamped);
        return;
      }
      case "COMBO": {
        const part = numberPart(rect, wx);
        if (part !== "value") { this.setValue(node, name, cycleChoice(spec, value, part === "inc" ? 1 : -1)); return; }
        comboList({ x: sx, y: sy + sh, choices: spec.choices ?? [], value, onPick: (v) => this.setValue(node, name, v) });
        return;
      }
      case "BOOLEAN": this.setValue(node, name, !value); return;
      case "STRING": {
        const multiline = Boolean(spec.options?.multiline);
        // A prompt opens with the caret where it was clicked, and Ctrl+Enter queues it, as in ComfyUI.
        const caret = multiline ? this.renderer.caretAt(node, name, wx, this.toWorld(e.clientX, e.clientY)[1]) : null;
        let queueAfter = false;
        const text = await inlineEntry({ x: sx, y: sy, w: sw, h: sh, value: String(value ?? ""), multiline, caret,
          onCtrlEnter: multiline ? () => { queueAfter = true; } : null });
        if (text !== null && text !== value) this.setValue(node, name, text);
        if (queueAfter) this.emit("queue-request", { front: false });
        return;
      }
      default: break;
    }
  },

  pickControl(node, hit, e) {
    comboList({
      x: e.clientX, y: e.clientY, choices: CONTROL_MODES, value: node.controls[hit.widget.name],
      onPick: (mode) => { node.controls[hit.widget.name] = mode; this.graph.touch(); this.commit(); },
    });
  },

  openImage(node, e) {
    const images = node.images ?? [];
    if (!images.length) return;
    if (e.shiftKey && images.length > 1) {  // browse the batch
      node.imageIndex = ((node.imageIndex ?? 0) + 1) % images.length;
      this.redraw();
      return;
    }
    this.emit("lightbox", { images, index: node.imageIndex ?? 0 });
  },

  onDoubleClick(e) {
    const [wx, wy] = this.toWorld(e.clientX, e.clientY);
    const hit = this.hitAt(wx, wy);
    if (!hit || hit.kind === "group") {
      nodeSearch({ x: e.clientX, y: e.clientY, schemas: this.schemaList, onPick: (schema) => this.addNode(schema.classType, [wx, wy]) });
      return;
    }
    if (hit.node?.subgraph && hit.kind === "body") { this.openSubgraph(hit.node); return; }
    if (hit.kind === "title" && !isBoundary(hit.node)) this.rename(hit.node);
    if (hit.kind === "group-title") this.renameGroup(hit.group);
  },

  onContextMenu(e) {
    const [wx, wy] = this.toWorld(e.clientX, e.clientY);
    const hit = this.hitAt(wx, wy);
    const node = hit?.node;
    if (node && isBoundary(node)) {
      const slotEntries = boundarySlotEntries(this, hit);
      contextMenu({ x: e.clientX, y: e.clientY, entries: [
        ...slotEntries,
        ...(slotEntries.length ? [null] : []),
        { label: "Back to the parent graph (Esc)", action: () => this.closeSubgraph() },
        ...(slotEntries.length ? [] : [{ label: "Add, rename or remove inputs/outputs…", action: () => toast(`To change them: ${BOUNDARY_NOTE}`, "info", 6000) }]),
      ] });
      return;
    }
    openContextMenu(this, e, wx, wy, hit);
  },

  onKeyDown(e) {
    const tag = document.activeElement?.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    const handled = () => { e.preventDefault(); e.stopPropagation(); };
    if (e.code === "Space") { this.spaceDown = true; return; }
    if (mod && key === "enter") { handled(); this.emit("queue-request", { front: e.shiftKey }); return; }
    if (mod && key === "z") { handled(); this.doUndo(e.shiftKey); return; }
    if (mod && key === "y") { handled(); this.doUndo(true); return; }
    if (mod && key === "c") { handled(); this.copySelection(); return; }
    if (mod && key === "v") {
      // Not prevented: the browser's paste event must still come, and when it carries an
      // image (main.js) it cancels this node paste, which runs after it otherwise.
      e.stopPropagation();
      clearTimeout(this.pendingPaste);
      this.pendingPaste = setTimeout(() => { this.pendingPaste = null; this.paste(e.shiftKey); }, 0);
      return;
    }
    if (mod && key === "b") { handled(); this.setMode(MODE_BYPASSED); return; }
    if (mod && key === "m") { handled(); this.setMode(MODE_MUTED); return; }
    if (mod && key === "g") { handled(); this.groupSelection(); return; }
    if (mod && key === "a") { handled(); this.selection = new Set(this.graph.nodes.keys()); this.redraw(); return; }
    if (mod && key === "s") { handled(); this.emit(e.shiftKey ? "save-as-request" : "save-request"); return; }
    if (mod && key === "o") { handled(); this.emit("open-request"); return; }
    if (!mod && (key === "delete" || key === "backspace")) { handled(); this.deleteSelection(); return; }
    if (!mod && key === ".") { handled(); this.fitView(this.selection.size ? this.selection : null); return; }
    if (key === "escape") {
      const popup = document.querySelector(".popup");
      closePopup();
      this.selection.clear();
      if (!popup && this.scopes.depth) { handled(); this.closeSubgraph(); }
      this.redraw();
    }
  },
};
