// The piano roll: draws the notes, the playhead, the loop and the ruler (bars and beats, or seconds) on a canvas, and
// turns pointer, touch, wheel and keys into view changes, seeks and edits of the NoteStore.
// Colours come from CSS custom properties (style.css), so they are checked with the rest.

export const KEYS_W = 44;
export const RULER_H = 20;
const EDGE_PX = 7;           // a press this close to a note's end resizes it
const DRAG_PX = 4;           // movement below this is a click
const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
const BLACK = new Set([1, 3, 6, 8, 10]);

export function pitchName(p) { return `${NAMES[p % 12]}${Math.floor(p / 12) - 1}`; }

function palette(el) {
  const css = getComputedStyle(el), v = (name) => css.getPropertyValue(name).trim();
  return {
    bg: v("--roll-bg"), laneBlack: v("--roll-lane-black"), keyWhite: v("--roll-key-white"), keyBlack: v("--roll-key-black"),
    keyLine: v("--roll-key-line"), label: v("--roll-label"), grid: v("--roll-grid"), gridStrong: v("--roll-grid-strong"),
    note: v("--roll-note"), noteSelected: v("--roll-note-selected"), noteEdge: v("--roll-note-edge"), bend: v("--roll-bend"),
    playhead: v("--roll-playhead"), loop: v("--roll-loop"), box: v("--roll-box"), ruler: v("--roll-ruler"),
  };
}

export class PianoRoll {
  constructor(canvas, store, transport) {
    this.c = canvas; this.store = store; this.transport = transport;
    this.view = { start: 0, pxPerSec: 80 };
    this.duration = 0; this.period = 0.0116;
    this.tool = "select";
    this.drawVelocity = 80;
    this.grid = null;          // the beat grid of the notes JSON when a beat was heard (else seconds)
    this.snap = (t) => t;
    this.range = [48, 84];
    this.drag = null;          // the gesture in progress
    this.touches = new Map();  // pointerId -> {x, y} for pan and pinch
    this.dirty = true;
    this.onViewChange = () => {};
    this._bind();
    new ResizeObserver(() => this.redraw()).observe(canvas);  // the layout may change without a window resize
  }

  // ---------- geometry ----------
  get width() { return this.c.clientWidth; }
  get height() { return this.c.clientHeight; }
  get visibleS() { return Math.max(0.1, (this.width - KEYS_W) / this.view.pxPerSec); }
  x(t) { return KEYS_W + (t - this.view.start) * this.view.pxPerSec; }
  t(x) { return this.view.start + (x - KEYS_W) / this.view.pxPerSec; }
  rowH() { return (this.height - RULER_H) / (this.range[1] - this.range[0] + 1); }
  y(p) { return this.height - (p - this.range[0] + 1) * this.rowH(); }
  pitchAt(y) { return Math.max(0, Math.min(127, Math.floor((this.height - y) / this.rowH()) + this.range[0])); }

  fitPitches() {
    const notes = this.store.notes;
    if (!notes.length) { this.range = [48, 84]; return; }
    let lo = 127, hi = 0;
    for (const n of notes) { if (n.pitch < lo) lo = n.pitch; if (n.pitch > hi) hi = n.pitch; }
    lo = Math.max(0, lo - 3); hi = Math.min(127, hi + 3);
    if (hi - lo < 24) { const pad = (24 - (hi - lo)) >> 1; lo = Math.max(0, lo - pad); hi = Math.min(127, lo + 24); }
    this.range = [lo, hi];
  }

  setView(start, pxPerSec = this.view.pxPerSec) {
    const px = Math.min(1600, Math.max(2, pxPerSec));
    const visible = (this.width - KEYS_W) / px;
    this.view = { pxPerSec: px, start: Math.max(0, Math.min(start, Math.max(0, this.duration - visible))) };
    this.c.dataset.viewStart = this.view.start.toFixed(3);
    this.c.dataset.pxPerSec = this.view.pxPerSec.toFixed(2);
    this.onViewChange();
    this.redraw();
  }

  zoomAround(t, factor) {
    const px = Math.min(1600, Math.max(2, this.view.pxPerSec * factor));
    const frac = (this.x(t) - KEYS_W) / (this.width - KEYS_W);
    this.setView(t - frac * ((this.width - KEYS_W) / px), px);
  }

  follow(t) {  // keep the playhead in view while playing
    if (t > this.view.start + this.visibleS * 0.92 || t < this.view.start) this.setView(t - this.visibleS * 0.08);
  }

  // ---------- drawing ----------
  redraw() { this.dirty = true; }

  frame() { if (this.dirty) { this.dirty = false; this.draw(); } }

  draw() {
    const c = this.c, dpr = window.devicePixelRatio || 1, w = this.width, h = this.height;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
    const g = c.getContext("2d"), col = palette(c);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = col.bg; g.fillRect(0, 0, w, h);
    this._lanes(g, col, w);
    this._timeGrid(g, col, w, h);
    this._loop(g, col, h);
    this._notes(g, col, w);
    this._box(g, col);
    this._playhead(g, col, h);
  }

  _lanes(g, col, w) {
    const [lo, hi] = this.range, rh = this.rowH();
    for (let p = lo; p <= hi; p++) {
      const black = BLACK.has(p % 12), y = this.y(p);
      if (black) { g.fillStyle = col.laneBlack; g.fillRect(KEYS_W, y, w, rh); }
      g.fillStyle = black ? col.keyBlack : col.keyWhite; g.fillRect(0, y, KEYS_W - 2, rh);
      g.strokeStyle = col.keyLine; g.lineWidth = 1; g.strokeRect(0.5, y + 0.5, KEYS_W - 3, rh);
      if (p % 12 === 0 && rh > 5) {
        g.fillStyle = col.label; g.font = `${Math.min(12, rh + 3)}px system-ui, sans-serif`;
        g.fillText(pitchName(p), 3, y + rh - 1);
      }
    }
  }

  /** The re-tune answer's `grid` ({beats_s, first_downbeat, beats_per_bar, first_bar, tempo_bpm}):
   *  a bar/beat ruler and grid lines as the MIDI file has them; seconds when there is none or no beat was heard. */
  setGrid(grid) {
    this.grid = grid && grid.tempo_bpm != null && grid.beats_s.length > 1 ? grid : null;
    this.c.dataset.ruler = this.grid ? "bars" : "seconds";
    this.redraw();
  }

  _timeGrid(g, col, w, h) {
    g.fillStyle = col.ruler; g.fillRect(0, 0, w, RULER_H);
    g.font = "11px system-ui, sans-serif";
    if (this.grid) { this._barGrid(g, col, w, h); return; }
    const { pxPerSec, start } = this.view;
    const step = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120].find((s) => s * pxPerSec >= 48) || 300;
    for (let t = Math.ceil(start / step) * step; this.x(t) < w; t += step) {
      const x = Math.round(this.x(t));
      g.fillStyle = col.grid; g.fillRect(x, RULER_H, 1, h - RULER_H);
      g.fillStyle = col.label; g.fillText(`${+t.toFixed(2)}s`, x + 3, 14);
    }
  }

  _barGrid(g, col, w, h) {  // bar lines and numbers (bar 1 at 0 s, as the MIDI file counts), beat lines when they fit
    const { beats_s: beats, first_downbeat: fd, beats_per_bar: per } = this.grid;
    const firstBar = this.grid.first_bar || 1;
    const beatPx = ((beats[beats.length - 1] - beats[0]) / (beats.length - 1)) * this.view.pxPerSec;
    const every = [1, 2, 4, 8, 16, 32, 64, 128].find((k) => k * per * beatPx >= 26) || 256;  // bar numbers that fit
    const labels = [];
    const bar = (x, n) => {
      g.fillStyle = col.gridStrong; g.fillRect(x, 0, 1, h);
      if ((n - 1) % every === 0 || n === firstBar) { g.fillStyle = col.label; g.fillText(String(n), x + 3, 14); labels.push(n); }
    };
    if (firstBar > 1 && this.x(0) >= KEYS_W) bar(Math.round(this.x(0)), 1);  // the lead-in bar before the first downbeat
    let i = 0, hi = beats.length;
    while (i < hi) { const m = (i + hi) >> 1; if (beats[m] < this.view.start) i = m + 1; else hi = m; }
    for (; i < beats.length && this.x(beats[i]) < w; i++) {
      const x = Math.round(this.x(beats[i])), k = i - fd;
      if (k >= 0 && k % per === 0) bar(x, firstBar + k / per);
      else if (beatPx >= 6) {
        g.fillStyle = col.grid; g.fillRect(x, RULER_H - 5, 1, h - RULER_H + 5);
        if (beatPx >= 36) { g.fillStyle = col.label; g.fillText(`.${(((k % per) + per) % per) + 1}`, x + 2, 14); }
      }
    }
    this.c.dataset.barLabels = labels.join(",");
  }

  _loop(g, col, h) {
    const lp = this.drag && this.drag.kind === "loop" ? this.drag.region : this.transport.loop;
    if (!lp || !(lp.on || this.drag)) return;
    const x0 = Math.max(KEYS_W, this.x(lp.start)), x1 = this.x(lp.end);
    if (x1 <= x0) return;
    g.fillStyle = col.loop; g.globalAlpha = 0.18; g.fillRect(x0, RULER_H, x1 - x0, h - RULER_H);
    g.globalAlpha = 1; g.fillRect(x0, 0, x1 - x0, 4);
  }

  _preview(n) {  // a note as the gesture in progress would leave it
    const d = this.drag;
    if (!d || !this.store.selected.has(n)) return n;
    if (d.kind === "move" && d.moved) return { ...n, start: Math.max(0, n.start + d.dt), end: n.end + Math.max(d.dt, -d.minStart), pitch: n.pitch + d.dp };
    if (d.kind === "resize" && d.moved) return { ...n, end: Math.max(n.start + 0.02, n.end + d.dt) };
    return n;
  }

  _notes(g, col, w) {
    const notes = this.store.notes, sel = this.store.selected, rh = this.rowH();
    const t0 = this.view.start, t1 = this.t(w);
    for (let i = 0; i < notes.length; i++) {
      const n = this._preview(notes[i]);
      if (n.start > t1 + 2) break;  // sorted by start; a moved note may sit a little later
      if (n.end < t0) continue;
      const x0 = Math.max(KEYS_W, this.x(n.start)), x1 = Math.min(w, this.x(n.end)), y = this.y(n.pitch);
      if (x1 <= KEYS_W) continue;
      const selected = sel.has(notes[i]);
      g.fillStyle = selected ? col.noteSelected : `rgba(${col.note}, ${0.35 + 0.65 * n.velocity / 127})`;  // velocity as shade
      g.fillRect(x0, y + 1, Math.max(2, x1 - x0), Math.max(1, rh - 2));
      if (selected || rh > 6) { g.strokeStyle = col.noteEdge; g.lineWidth = selected ? 2 : 1; g.strokeRect(x0 + 0.5, y + 1.5, Math.max(1, x1 - x0 - 1), Math.max(1, rh - 3)); }
      if (n.bends.length) this._bends(g, col, n, rh);
    }
    if (this.drag && this.drag.kind === "draw") {
      const d = this.drag, x0 = this.x(Math.min(d.t0, d.t1)), x1 = this.x(Math.max(d.t0, d.t1));
      g.fillStyle = col.noteSelected; g.fillRect(x0, this.y(d.pitch) + 1, Math.max(3, x1 - x0), Math.max(1, rh - 2));
    }
  }

  _bends(g, col, n, rh) {  // in semitones around the note's row
    g.strokeStyle = col.bend; g.lineWidth = 1.5; g.beginPath();
    const mid = this.y(n.pitch) + rh / 2;
    n.bends.forEach((b, i) => {
      const t = n.start + i * this.period;
      if (t > n.end) return;
      const bx = this.x(t), by = mid - (b / 100) * rh;
      if (i) g.lineTo(bx, by); else g.moveTo(bx, by);
    });
    g.stroke();
  }

  _box(g, col) {
    const d = this.drag;
    if (!d || d.kind !== "box" || !d.moved) return;
    g.strokeStyle = col.box; g.lineWidth = 1; g.setLineDash([4, 3]);
    g.strokeRect(Math.min(d.x0, d.x1) + 0.5, Math.min(d.y0, d.y1) + 0.5, Math.abs(d.x1 - d.x0), Math.abs(d.y1 - d.y0));
    g.setLineDash([]);
  }

  _playhead(g, col, h) {
    const x = this.x(this.transport.position);
    this.c.dataset.playheadX = x.toFixed(1);
    if (x >= KEYS_W && x <= this.width) { g.fillStyle = col.playhead; g.fillRect(Math.round(x) - 1, 0, 2, h); }
  }

  // ---------- hit testing ----------
  noteAt(x, y) {
    if (x < KEYS_W || y < RULER_H) return null;
    const t = this.t(x), p = this.pitchAt(y), notes = this.store.notes;
    let hit = null;
    for (let i = 0; i < notes.length && notes[i].start <= t; i++) {
      const n = notes[i];
      if (n.pitch === p && n.end >= t) hit = n;
    }
    return hit;
  }

  // ---------- input ----------
  _bind() {
    const c = this.c;
    c.addEventListener("pointerdown", (ev) => this._down(ev));
    c.addEventListener("pointermove", (ev) => this._move(ev));
    c.addEventListener("pointerup", (ev) => this._up(ev));
    c.addEventListener("pointercancel", (ev) => { this.touches.delete(ev.pointerId); this.drag = null; this.redraw(); });
    c.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      if (ev.ctrlKey || ev.metaKey) this.zoomAround(this.t(ev.offsetX), ev.deltaY < 0 ? 1.2 : 1 / 1.2);
      else this.setView(this.view.start + (ev.deltaX || ev.deltaY) / this.view.pxPerSec);
    }, { passive: false });
    c.addEventListener("pointerleave", () => { if (!this.drag) c.style.cursor = ""; });
  }

  _point(ev) { const r = this.c.getBoundingClientRect(); return [ev.clientX - r.left, ev.clientY - r.top]; }

  _down(ev) {
    const [x, y] = this._point(ev);
    this.c.focus({ preventScroll: true });
    if (ev.pointerType === "touch" && this.tool !== "draw") {  // touch: swipe pans, pinch zooms, tap clicks
      this.touches.set(ev.pointerId, { x, y, x0: x, y0: y, at: performance.now() });
      this.c.setPointerCapture(ev.pointerId);
      this.pinch = this.touches.size === 2 ? this._pinchStart() : null;
      return;
    }
    if (ev.button !== 0) return;
    this.c.setPointerCapture(ev.pointerId);
    if (y < RULER_H) { this.drag = { kind: "loop", x0: x, t0: this.t(x), region: null, moved: false }; return; }
    if (x < KEYS_W) { this.transport.preview(this.pitchAt(y)); return; }
    const hit = this.noteAt(x, y);
    if (hit) {
      if (ev.shiftKey || ev.ctrlKey || ev.metaKey) this.store.toggle(hit);
      else if (!this.store.selected.has(hit)) this.store.select([hit]);
      const resize = this.x(hit.end) - x <= EDGE_PX && this.x(hit.end) - this.x(hit.start) > 2 * EDGE_PX;
      let minStart = Infinity;
      for (const n of this.store.selected) minStart = Math.min(minStart, n.start);
      this.drag = { kind: resize ? "resize" : "move", x0: x, y0: y, t0: this.t(x), p0: this.pitchAt(y), dt: 0, dp: 0, minStart, moved: false };
    } else if (this.tool === "draw") {
      const t0 = this.snap(this.t(x));
      this.drag = { kind: "draw", x0: x, y0: y, t0, t1: t0, pitch: this.pitchAt(y), moved: false };
    } else {
      this.drag = { kind: "box", x0: x, y0: y, x1: x, y1: y, add: ev.shiftKey || ev.ctrlKey || ev.metaKey, moved: false };
    }
    this.redraw();
  }

  _move(ev) {
    const [x, y] = this._point(ev);
    if (this.touches.has(ev.pointerId)) { this._touchMove(ev.pointerId, x, y); return; }
    const d = this.drag;
    if (!d) { this._hover(x, y); return; }
    if (Math.abs(x - d.x0) > DRAG_PX || Math.abs(y - (d.y0 ?? y)) > DRAG_PX) d.moved = true;
    if (d.kind === "loop") d.region = { on: true, start: Math.max(0, Math.min(d.t0, this.t(x))), end: Math.max(d.t0, this.t(x)) };
    else if (d.kind === "move") { d.dt = this.snap(this.t(x)) - this.snap(d.t0); d.dp = this.pitchAt(y) - d.p0; }
    else if (d.kind === "resize") d.dt = this.t(x) - d.t0;
    else if (d.kind === "draw") d.t1 = this.snap(this.t(x));
    else if (d.kind === "box") { d.x1 = x; d.y1 = y; }
    this.redraw();
  }

  _hover(x, y) {
    const hit = this.noteAt(x, y);
    const edge = hit && this.x(hit.end) - x <= EDGE_PX && this.x(hit.end) - this.x(hit.start) > 2 * EDGE_PX;
    this.c.style.cursor = y < RULER_H ? "col-resize" : edge ? "ew-resize" : hit ? "move" : this.tool === "draw" ? "crosshair" : "default";
  }

  _up(ev) {
    if (this.touches.has(ev.pointerId)) { this._touchEnd(ev); return; }
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    const [x] = this._point(ev);
    if (d.kind === "loop") {
      if (d.moved && d.region) this.transport.setLoop(d.region.start, d.region.end);
      else this.transport.seek(Math.max(0, this.t(x)));
    } else if (d.kind === "move" && d.moved) this.store.moveSelected(d.dt, d.dp);
    else if (d.kind === "resize" && d.moved) this.store.resizeSelected(d.dt);
    else if (d.kind === "draw") {
      const a = Math.min(d.t0, d.t1), b = Math.max(d.t0, d.t1);
      this.store.add(a, d.moved ? b : a + 0.25, d.pitch, this.drawVelocity);
    } else if (d.kind === "box") {
      if (d.moved) this.store.select(this.store.inBox(this.t(d.x0), this.t(d.x1), this.pitchAt(d.y0), this.pitchAt(d.y1)), { add: d.add });
      else { if (!d.add) this.store.clearSelection(); this.transport.seek(Math.max(0, this.t(x))); }
    }
    this.redraw();
  }

  // ---------- touch ----------
  _pinchStart() {
    const [a, b] = [...this.touches.values()];
    return { dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, px: this.view.pxPerSec, t: this.t((a.x + b.x) / 2) };
  }

  _touchMove(id, x, y) {
    const p = this.touches.get(id);
    const dx = x - p.x;
    p.x = x; p.y = y;
    if (this.pinch && this.touches.size === 2) {
      const [a, b] = [...this.touches.values()];
      const mid = (a.x + b.x) / 2, px = this.pinch.px * (Math.hypot(a.x - b.x, a.y - b.y) / this.pinch.dist);
      const clamped = Math.min(1600, Math.max(2, px));
      this.setView(this.pinch.t - (mid - KEYS_W) / clamped, clamped);
    } else if (this.touches.size === 1) {
      this.setView(this.view.start - dx / this.view.pxPerSec);
    }
  }

  _touchEnd(ev) {
    const p = this.touches.get(ev.pointerId);
    this.touches.delete(ev.pointerId);
    if (this.touches.size < 2) this.pinch = null;
    const tap = p && !this.pinch && Math.hypot(p.x - p.x0, p.y - p.y0) < 10 && performance.now() - p.at < 400;
    if (!tap || this.touches.size) return;
    if (p.y0 < RULER_H) { this.transport.seek(Math.max(0, this.t(p.x0))); return; }
    const hit = this.noteAt(p.x0, p.y0);
    if (hit) this.store.toggle(hit);
    else { this.store.clearSelection(); this.transport.seek(Math.max(0, this.t(p.x0))); }
  }
}
