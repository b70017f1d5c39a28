// A uniform grid over world space: which nodes lie in a rectangle, without
// looking at every node (viewport culling and hit-testing with 1000+ nodes).
export class SpatialGrid {
  constructor(cell = 400) {
    this.cell = cell;
    this.cells = new Map();
    this.boxes = new Map();
  }

  clear() { this.cells.clear(); this.boxes.clear(); }

  *keysFor([x, y, w, h]) {
    const c = this.cell;
    for (let i = Math.floor(x / c); i <= Math.floor((x + w) / c); i++) {
      for (let j = Math.floor(y / c); j <= Math.floor((y + h) / c); j++) yield `${i},${j}`;
    }
  }

  insert(id, box) {
    this.boxes.set(id, box);
    for (const k of this.keysFor(box)) {
      let set = this.cells.get(k);
      if (!set) this.cells.set(k, (set = new Set()));
      set.add(id);
    }
  }

  /** Ids whose boxes intersect `rect` ([x, y, w, h]). */
  query(rect) {
    const [x, y, w, h] = rect;
    const found = new Set();
    for (const k of this.keysFor(rect)) {
      for (const id of this.cells.get(k) ?? []) {
        if (found.has(id)) continue;
        const [bx, by, bw, bh] = this.boxes.get(id);
        if (bx <= x + w && bx + bw >= x && by <= y + h && by + bh >= y) found.add(id);
      }
    }
    return found;
  }

  /** Ids whose boxes contain the point. */
  at(px, py) { return this.query([px, py, 0, 0]); }
}
