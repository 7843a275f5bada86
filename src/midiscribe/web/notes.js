// The notes the page shows: one list, edited by undoable steps, kept locally per task.
// Notes are frozen objects {start, end, pitch, velocity, amplitude, bends}; an edit makes new
// objects for the notes it changes, so an undo step is just the previous list.

const UNDO_DEPTH = 200;
const MIN_LENGTH_S = 0.02;
const STORE_PREFIX = "midiscribe.edit.";

export function fromApi([start, end, pitch, velocity, bends, amplitude]) {
  return Object.freeze({ start, end, pitch, velocity, amplitude: amplitude ?? velocity / 127, bends: bends || [] });
}

function byStart(a, b) { return a.start - b.start || a.pitch - b.pitch || a.end - b.end; }
const clampPitch = (p) => Math.max(0, Math.min(127, p));

export class NoteStore extends EventTarget {
  constructor() {
    super();
    this.notes = [];
    this.selected = new Set();
    this.undoStack = [];
    this.redoStack = [];
    this.edited = false;  // the notes differ from what the server derived for `source`
    this.source = null;   // the re-tune options the server's notes came from
  }

  _emit(kind) { this.dispatchEvent(new CustomEvent("change", { detail: { kind } })); }

  _set(notes, edited, label) {
    this.undoStack.push({ notes: this.notes, edited: this.edited, source: this.source, label });
    if (this.undoStack.length > UNDO_DEPTH) this.undoStack.shift();
    this.redoStack = [];
    this.notes = notes.slice().sort(byStart);
    this.edited = edited;
  }

  /** Notes as the server derived them for `source` (re-tune options): one undoable step. */
  loadDerived(notes, source, { resetHistory = false } = {}) {
    if (resetHistory) { this.undoStack = []; this.redoStack = []; this.edited = false; }
    if (this.edited) this._set(notes, false, "re-tune");  // the edit stays one undo away
    else this.notes = notes.slice().sort(byStart);        // nothing lost: the sliders re-derive it
    this.edited = false;
    this.source = source;
    this.selected.clear();
    this._emit("load");
  }

  /** A kept edit (from the local store): replaces everything, history starts afresh. */
  loadEdited(notes, source) {
    this.undoStack = []; this.redoStack = [];
    this.notes = notes.slice().sort(byStart);
    this.edited = true;
    this.source = source;
    this.selected.clear();
    this._emit("load");
  }

  _apply(map, label) {  // map: note -> replacement note, or null to delete
    const next = [], selected = new Set();
    for (const n of this.notes) {
      if (!this.selected.has(n)) { next.push(n); continue; }
      const m = map(n);
      if (m) { next.push(m); selected.add(m); }
    }
    this._set(next, true, label);
    this.selected = selected;
    this._emit("edit");
  }

  deleteSelected() { if (this.selected.size) this._apply(() => null, "delete"); }

  moveSelected(dt, dp) {
    if (!this.selected.size || (!dt && !dp)) return;
    let minStart = Infinity;
    for (const n of this.selected) minStart = Math.min(minStart, n.start);
    const shift = Math.max(dt, -minStart);  // nothing moves before 0 s
    this._apply((n) => Object.freeze({ ...n, start: n.start + shift, end: n.end + shift, pitch: clampPitch(n.pitch + dp) }), "move");
  }

  resizeSelected(dEnd) {
    if (!this.selected.size || !dEnd) return;
    this._apply((n) => Object.freeze({ ...n, end: Math.max(n.start + MIN_LENGTH_S, n.end + dEnd) }), "resize");
  }

  setVelocity(velocity) {
    const v = Math.max(1, Math.min(127, Math.round(velocity)));
    if (!this.selected.size) return;
    this._apply((n) => Object.freeze({ ...n, velocity: v, amplitude: v / 127 }), "velocity");
  }

  add(start, end, pitch, velocity) {
    const note = Object.freeze({ start: Math.max(0, start), end: Math.max(start + MIN_LENGTH_S, end), pitch: clampPitch(pitch),
      velocity, amplitude: velocity / 127, bends: [] });
    this._set([...this.notes, note], true, "draw");
    this.selected = new Set([note]);
    this._emit("edit");
    return note;
  }

  undo() { this._step(this.undoStack, this.redoStack); }
  redo() { this._step(this.redoStack, this.undoStack); }
  _step(from, to) {
    const prev = from.pop();
    if (!prev) return;
    to.push({ notes: this.notes, edited: this.edited, source: this.source, label: prev.label });
    this.notes = prev.notes; this.edited = prev.edited; this.source = prev.source;
    this.selected = new Set([...this.selected].filter((n) => this.notes.includes(n)));
    this._emit("history");
  }

  select(notes, { add = false } = {}) {
    if (!add) this.selected.clear();
    for (const n of notes) this.selected.add(n);
    this._emit("select");
  }
  toggle(note) { if (this.selected.has(note)) this.selected.delete(note); else this.selected.add(note); this._emit("select"); }
  selectAll() { this.select(this.notes); }
  clearSelection() { if (this.selected.size) { this.selected.clear(); this._emit("select"); } }

  inBox(t0, t1, p0, p1) {
    const [ta, tb] = t0 < t1 ? [t0, t1] : [t1, t0], [pa, pb] = p0 < p1 ? [p0, p1] : [p1, p0];
    return this.notes.filter((n) => n.end > ta && n.start < tb && n.pitch >= pa && n.pitch <= pb);
  }

  /** Index of the first note starting at or after `t` (notes are sorted by start). */
  firstAtOrAfter(t) {
    let lo = 0, hi = this.notes.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.notes[mid].start < t) lo = mid + 1; else hi = mid; }
    return lo;
  }
}

/** Edits kept in this browser per task (localStorage), so they survive a reload. */
export const editKeeper = {
  save(taskId, store) {
    const key = STORE_PREFIX + taskId;
    try {
      if (!store.edited) { localStorage.removeItem(key); return true; }
      const notes = store.notes.map((n) => [n.start, n.end, n.pitch, n.velocity, n.bends, n.amplitude]);
      localStorage.setItem(key, JSON.stringify({ v: 1, saved_at: new Date().toISOString(), source: store.source, notes }));
      return true;
    } catch (_) {
      return false;  // over the browser's quota: the edit stays in this tab only
    }
  },
  load(taskId) {
    try {
      const data = JSON.parse(localStorage.getItem(STORE_PREFIX + taskId) || "null");
      if (!data || data.v !== 1 || !Array.isArray(data.notes)) return null;
      return { source: data.source, savedAt: data.saved_at, notes: data.notes.map(fromApi) };
    } catch (_) {
      return null;
    }
  },
  discard(taskId) { try { localStorage.removeItem(STORE_PREFIX + taskId); } catch (_) { /* storage off */ } },
};
