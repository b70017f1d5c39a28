// What ComfyUI packs import: `import { app } from "../../scripts/app.js"`.
// The editor's own instance (same module, so the same object).
export { app } from "../ui/loom_app.js";
