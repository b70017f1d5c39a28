// The server's HTTP routes and websocket, as ComfyUI names them.
// The socket reconnects on its own (with backoff) when the server restarts.

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export class Api extends EventTarget {
  constructor(base = "") {
    super();
    this.base = base;
    this.clientId = sessionStorage.getItem("loom.clientId") || crypto.randomUUID().replace(/-/g, "");
    sessionStorage.setItem("loom.clientId", this.clientId);
    this.socket = null;
    this.online = false;
    this.retryMs = 500;
  }

  url(path) { return this.base + path; }

  // ComfyUI's names, for plug-in extensions: routes under /api, raw fetch Responses.
  get api_base() { return this.base; }
  apiURL(route) { return `${this.base}/api${route}`; }
  fileURL(route) { return this.base + route; }
  fetchApi(route, options = {}) { return fetch(this.apiURL(route), options); }
  workflows() { return this.request("/workflows"); }

  async request(path, options = {}) {
    let response;
    try {
      response = await fetch(this.url(path), options);
    } catch (err) {
      throw new ApiError(`the server cannot be reached (${err.message})`, 0, null);
    }
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch { body = text; }
    if (!response.ok) {
      const message = body?.error?.message ?? body?.message ?? (typeof body === "string" ? body : response.statusText);
      throw new ApiError(message, response.status, body);
    }
    return body;
  }

  json(path, body) {
    return this.request(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  }

  objectInfo() { return this.request("/object_info"); }

  // ComfyUI's userdata API: files under the server's user/ folder (saved workflows).
  userdataUrl(path) { return this.url(`/userdata/${encodeURIComponent(path)}`); }
  listUserdata(dir) { return this.request(`/userdata?dir=${encodeURIComponent(dir)}&recurse=true`); }
  writeUserdata(path, text, { overwrite = true } = {}) {
    return this.request(`/userdata/${encodeURIComponent(path)}?overwrite=${overwrite}`,
      { method: "POST", headers: { "Content-Type": "application/json" }, body: text });
  }
  moveUserdata(from, to, { overwrite = false } = {}) {
    return this.request(`/userdata/${encodeURIComponent(from)}/move/${encodeURIComponent(to)}?overwrite=${overwrite}`, { method: "POST" });
  }
  deleteUserdata(path) { return this.request(`/userdata/${encodeURIComponent(path)}`, { method: "DELETE" }); }
  queuePrompt(prompt, workflow, { front = false } = {}) {
    return this.json("/prompt", { prompt, client_id: this.clientId, front, extra_data: { extra_pnginfo: { workflow } } });
  }
  queue() { return this.request("/queue"); }
  deleteFromQueue(ids) { return this.json("/queue", { delete: ids }); }
  clearQueue() { return this.json("/queue", { clear: true }); }
  history(maxItems = 50) { return this.request(`/history?max_items=${maxItems}`); }
  clearHistory() { return this.json("/history", { clear: true }); }
  interrupt() { return this.json("/interrupt", {}); }
  viewUrl({ filename, subfolder = "", type = "output" }) {
    const q = new URLSearchParams({ filename, subfolder, type });
    return this.url(`/view?${q}`);
  }

  async uploadImage(file, { overwrite = false } = {}) {
    const form = new FormData();
    form.append("image", file, file.name);
    form.append("type", "input");
    if (overwrite) form.append("overwrite", "true");
    return this.request("/upload/image", { method: "POST", body: form });
  }

  connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const base = this.base ? this.base.replace(/^http/, "ws") : `${proto}//${location.host}`;
    const ws = new WebSocket(`${base}/ws?clientId=${this.clientId}`);
    ws.binaryType = "arraybuffer";
    this.socket = ws;
    ws.addEventListener("open", () => {
      this.retryMs = 500;
      this.setOnline(true);
    });
    ws.addEventListener("close", () => {
      if (this.socket !== ws) return;
      this.setOnline(false);
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 5000);
    });
    ws.addEventListener("message", (event) => this.onMessage(event.data));
  }

  setOnline(online) {
    if (this.online === online) return;
    this.online = online;
    this.dispatchEvent(new CustomEvent(online ? "online" : "offline"));
  }

  onMessage(data) {
    if (data instanceof ArrayBuffer) {
      const view = new DataView(data);
      const kind = view.getUint32(0);
      if (kind === 1) {  // preview image: 4 bytes format (1 JPEG, 2 PNG), then the image
        const format = view.getUint32(4) === 2 ? "image/png" : "image/jpeg";
        const blob = new Blob([data.slice(8)], { type: format });
        this.dispatchEvent(new CustomEvent("b_preview", { detail: blob }));
      }
      return;
    }
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (msg?.type) this.dispatchEvent(new CustomEvent(msg.type, { detail: msg.data }));
  }
}
