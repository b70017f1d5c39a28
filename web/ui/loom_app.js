// The `app` and `api` objects that plug-in web extensions import (ComfyUI's
// `import { app } from "../../scripts/app.js"`): one instance each, shared by
// the editor's own boot code, so hooks see the live editor.
import { Api } from "./api.js";

/** A node type as extensions see it in beforeRegisterNodeDef: methods that packs
 *  put on `nodeType.prototype` (onNodeCreated, onExecuted) are called with the node as `this`. */
export class NodeType {
  constructor(comfyClass, nodeData) {
    this.comfyClass = comfyClass;
    this.type = comfyClass;
    this.title = nodeData?.display_name || comfyClass;
    this.category = nodeData?.category ?? "";
    this.nodeData = nodeData;
    this.prototype = {};
  }
}

export class LoomApp {
  constructor(api) {
    this.api = api;
    this.editor = null;
    this.extensions = [];
    this.nodeTypes = new Map();
  }

  /** The editor's graph (nodes, links) — what ComfyUI calls `app.graph`. */
  get graph() { return this.editor?.graph ?? null; }
  get canvas() { return this.editor ?? null; }

  registerExtension(extension) {
    if (!extension || typeof extension !== "object") throw new Error("registerExtension needs an object like {name, setup, nodeCreated}");
    if (typeof extension.name !== "string" || !extension.name) throw new Error("an extension needs a 'name' string");
    if (this.extensions.some((e) => e.name === extension.name)) throw new Error(`an extension named '${extension.name}' is already registered`);
    this.extensions.push(extension);
  }

  attach(editor) {
    this.editor = editor;
    editor.hooks = {
      created: (node, { loaded }) => this.nodeCreated(node, loaded),
      executed: (node, output) => this.nodeExecuted(node, output),
    };
  }

  /** Runs `hook` on every extension that has it; one failing extension never stops the others. */
  async invoke(hook, ...args) {
    for (const ext of this.extensions) {
      if (typeof ext[hook] !== "function") continue;
      try { await ext[hook](...args); } catch (err) { this.report(ext, hook, err); }
    }
  }

  invokeSync(hook, ...args) {
    for (const ext of this.extensions) {
      if (typeof ext[hook] !== "function") continue;
      try { ext[hook](...args); } catch (err) { this.report(ext, hook, err); }
    }
  }

  report(ext, hook, err) {
    console.error(`extension ${ext.name}: ${hook} failed`, err);
    this.dispatchError?.(`Extension ${ext.name} failed in ${hook}: ${err?.message ?? err}`);
  }

  /** Imports each script URL as an ES module; returns the ones that failed with why. */
  async loadExtensions(urls) {
    const failed = [];
    for (const url of urls) {
      try { await import(new URL(url, location.href).href); } catch (err) { failed.push({ url, error: err?.message ?? String(err) }); }
    }
    return failed;
  }

  /** beforeRegisterNodeDef for node types not seen before (object_info entries). */
  async registerNodeDefs(objectInfo) {
    for (const [type, nodeData] of Object.entries(objectInfo)) {
      if (this.nodeTypes.has(type)) continue;
      const nodeType = new NodeType(type, nodeData);
      this.nodeTypes.set(type, nodeType);
      await this.invoke("beforeRegisterNodeDef", nodeType, nodeData, this);
    }
  }

  nodeCreated(node, loaded) {
    const proto = this.nodeTypes.get(node.type)?.prototype;
    if (typeof proto?.onNodeCreated === "function") {
      try { proto.onNodeCreated.call(node); } catch (err) { console.error(`onNodeCreated of ${node.type} failed`, err); }
    }
    this.invokeSync("nodeCreated", node, this);
    if (loaded) this.invokeSync("loadedGraphNode", node, this);
  }

  nodeExecuted(node, output) {
    const proto = this.nodeTypes.get(node.type)?.prototype;
    if (typeof proto?.onExecuted === "function") {
      try { proto.onExecuted.call(node, output); } catch (err) { console.error(`onExecuted of ${node.type} failed`, err); }
    }
  }

  // A few of ComfyUI's app methods packs call.
  graphToPrompt() { return { workflow: this.editor.serialize(), output: this.editor.toApi() }; }
  loadGraphData(workflow) { this.editor.loadWorkflow(workflow, { undoable: true, fit: !workflow?.extra?.ds }); }
  queuePrompt(number = 0) { this.editor.dispatchEvent(new CustomEvent("queue-request", { detail: { front: number === -1 } })); }
  redraw() { this.editor?.graph.touch(); this.editor?.redraw(); }
}

export const api = new Api();
export const app = new LoomApp(api);
