// What ComfyUI packs import: `import { api } from "../../scripts/api.js"` —
// addEventListener(type, fn) for websocket events (custom ones included),
// fetchApi(route, options) for the server's routes.
export { api } from "../ui/loom_app.js";
