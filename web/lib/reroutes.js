// ComfyUI's native reroutes: points a link is drawn through, not nodes. They
// never change what runs (the converters ignore them); the editor draws them
// and writes them back where the file had them:
//   version 0.4: extra.reroutes = [{id, parentId?, pos, linkIds}], and
//                extra.linkExtensions = [{id: linkId, parentId: rerouteId}]
//   version 1:   top-level reroutes = [...], and parentId on the link objects.
// A link's parentId is the reroute nearest its target; each reroute's parentId
// is the next one back towards the origin.
// Pure (no DOM).

/** Reroutes read from a workflow: {reroutes: Map id → reroute, parents: Map linkId → rerouteId, had: {...}}. */
export function readReroutes(data) {
  const v1 = data?.version === 1 || Array.isArray(data?.reroutes);
  const list = v1 ? data.reroutes : data?.extra?.reroutes;
  const reroutes = new Map();
  for (const r of Array.isArray(list) ? list : []) {
    if (!r || typeof r !== "object" || r.id == null) continue;
    reroutes.set(r.id, { ...r, pos: sanePos(r.pos), linkIds: Array.isArray(r.linkIds) ? [...r.linkIds] : [] });
  }
  const parents = new Map();
  if (v1) {
    const links = Array.isArray(data.links) ? data.links : Object.values(data.links ?? {});
    for (const l of links) if (l && !Array.isArray(l) && l.parentId != null) parents.set(l.id, l.parentId);
  } else {
    for (const e of data?.extra?.linkExtensions ?? []) if (e && e.id != null && e.parentId != null) parents.set(e.id, e.parentId);
  }
  return {
    reroutes,
    parents,
    had: { reroutes: Array.isArray(list), linkExtensions: !v1 && Array.isArray(data?.extra?.linkExtensions) },
  };
}

function sanePos(pos) {
  const p = Array.isArray(pos) ? pos : pos && typeof pos === "object" ? [pos[0], pos[1]] : [0, 0];
  return [Number.isFinite(p[0]) ? p[0] : 0, Number.isFinite(p[1]) ? p[1] : 0];
}

/** The reroutes a link passes through, origin side first. */
export function reroutePath(reroutes, parentId) {
  const chain = [];
  const seen = new Set();
  let id = parentId;
  while (id != null && reroutes.has(id) && !seen.has(id)) {
    seen.add(id);
    const r = reroutes.get(id);
    chain.push(r);
    id = r.parentId;
  }
  return chain.reverse();
}

/** The reroutes as the file stores them (an array, in the order read). */
export const serializeReroutes = (reroutes) => [...reroutes.values()].map((r) => ({ ...r, pos: [...r.pos], linkIds: [...r.linkIds] }));

/** A link is gone: no reroute lists it any more (the reroutes themselves stay, as in ComfyUI). */
export function forgetLink(reroutes, linkId) {
  for (const r of reroutes.values()) {
    const i = r.linkIds.indexOf(linkId);
    if (i !== -1) r.linkIds.splice(i, 1);
  }
}

export const REROUTE_RADIUS = 8;

/** The reroute under a world point, or null (the topmost: last drawn). */
export function rerouteAt(reroutes, x, y, radius = REROUTE_RADIUS) {
  let found = null;
  for (const r of reroutes.values()) if (Math.hypot(r.pos[0] - x, r.pos[1] - y) <= radius) found = r;
  return found;
}
