// The editor's settings, kept on the server in user/loom.settings.json through the
// userdata API (so they follow the user to another browser), and the dialog that
// edits them. Each setting takes effect at once.
import { el } from "./panels.js";

export const SETTINGS_FILE = "loom.settings.json";

/** Every setting: its default, and how the dialog shows it. */
export const SETTINGS = [
  { id: "theme", label: "Theme", default: "dark", choices: ["dark", "light"] },
  { id: "linkMode", label: "Links", default: "spline", choices: ["spline", "straight", "linear", "hidden"] },
  { id: "minimap", label: "Show the minimap", default: false },
  { id: "snapToGrid", label: "Snap nodes to the grid when moving them", default: false },
  { id: "clampCue", label: "Say when a typed number was clamped to its range", default: true },
];

export const GRID = 10;

export class Settings extends EventTarget {
  constructor(api) {
    super();
    this.api = api;
    this.values = Object.fromEntries(SETTINGS.map((s) => [s.id, s.default]));
  }

  get(id) { return this.values[id]; }

  /** Reads the saved settings; a missing or unreadable file keeps the defaults. */
  async load() {
    try {
      const response = await fetch(this.api.userdataUrl(SETTINGS_FILE));
      if (response.ok) {
        const saved = await response.json();
        for (const s of SETTINGS) if (saved && typeof saved[s.id] === typeof s.default) this.values[s.id] = saved[s.id];
      }
    } catch { /* offline or damaged: defaults */ }
    this.dispatchEvent(new Event("change"));
  }

  async set(id, value) {
    this.values[id] = value;
    this.dispatchEvent(new Event("change"));
    await this.api.writeUserdata(SETTINGS_FILE, JSON.stringify(this.values, null, 2));
  }

  /** The modal dialog: one control per setting, saved as it changes. */
  showDialog() {
    document.querySelector(".settings-dialog")?.remove();
    const control = (s) => {
      const value = this.values[s.id];
      const input = s.choices
        ? el("select", { id: `setting-${s.id}`, onchange: (e) => this.set(s.id, e.target.value) },
          ...s.choices.map((c) => { const o = el("option", { value: c }, c); o.selected = c === value; return o; }))
        : el("input", { id: `setting-${s.id}`, type: "checkbox", onchange: (e) => this.set(s.id, e.target.checked) });
      if (!s.choices) input.checked = Boolean(value);
      return el("label", { class: "setting" }, el("span", {}, s.label), input);
    };
    const close = () => { box.remove(); removeEventListener("keydown", onKey); };
    const onKey = (e) => { if (e.key === "Escape") close(); };
    const box = el("div", { class: "settings-dialog", role: "dialog", "aria-label": "Settings", onclick: (e) => { if (e.target === box) close(); } },
      el("div", { class: "settings-body" },
        el("h3", {}, "Settings"),
        ...SETTINGS.map(control),
        el("p", { class: "muted" }, "Kept on the server in user/loom.settings.json."),
        el("button", { class: "settings-close", onclick: close }, "Close")));
    addEventListener("keydown", onKey);
    document.body.append(box);
  }
}
