// Undo/redo over whole-workflow snapshots. The editor commits after every
// finished edit (a drop, a widget change, a paste...), so any edit, including
// ones added later, is undoable without its own inverse operation.
export class UndoStack {
  constructor(limit = 200) {
    this.limit = limit;
    this.undoStates = [];
    this.redoStates = [];
    this.current = null;
  }

  /** Start from this state, forgetting history (a workflow was loaded). */
  reset(state) {
    this.undoStates = [];
    this.redoStates = [];
    this.current = JSON.stringify(state);
  }

  /** Record `state` as the result of an edit; returns false when nothing changed. */
  commit(state) {
    const text = JSON.stringify(state);
    if (text === this.current) return false;
    if (this.current !== null) this.undoStates.push(this.current);
    if (this.undoStates.length > this.limit) this.undoStates.shift();
    this.redoStates = [];
    this.current = text;
    return true;
  }

  get canUndo() { return this.undoStates.length > 0; }
  get canRedo() { return this.redoStates.length > 0; }

  /** The state before the last edit, or null. */
  undo() {
    if (!this.canUndo) return null;
    this.redoStates.push(this.current);
    this.current = this.undoStates.pop();
    return JSON.parse(this.current);
  }

  redo() {
    if (!this.canRedo) return null;
    this.undoStates.push(this.current);
    this.current = this.redoStates.pop();
    return JSON.parse(this.current);
  }
}
