// One transport for everything that sounds: the original recording (an <audio> element without
// controls of its own) and a small WebAudio synth playing the notes the page shows, so what you
// hear is what you see, edits included, with no server round trip. It alone says what is playing.

const LOOKAHEAD_S = 0.3;   // notes are scheduled this far ahead of the playhead (score time)
const TICK_MS = 25;
const DRIFT_S = 0.12;      // the original is re-aligned when it strays further from the clock

class Synth {
  constructor(ctx) {
    this.ctx = ctx;
    this.out = ctx.createGain();
    const limiter = ctx.createDynamicsCompressor();
    limiter.threshold.value = -12; limiter.ratio.value = 8;
    this.out.connect(limiter).connect(ctx.destination);
    this.voices = new Set();
    this.started = 0;  // voices started since the page loaded (shown to tests as data-voices)
  }

  /** A plucked two-oscillator voice at `when` (context time) lasting `dur` s; bends in cents per `period` s. */
  voice(pitch, velocity, when, dur, bends = [], period = 0.0116, rate = 1, fromFrame = 0) {
    const ctx = this.ctx, f = 440 * 2 ** ((pitch - 69) / 12);
    const env = ctx.createGain(), peak = 0.22 * (velocity / 127) ** 1.5;
    const decay = Math.max(0.25, 1.6 - (pitch - 40) / 50);  // low notes ring longer
    env.gain.setValueAtTime(0, when);
    env.gain.linearRampToValueAtTime(peak, when + 0.006);
    env.gain.setTargetAtTime(peak * 0.35, when + 0.006, decay);
    const end = when + Math.max(0.02, dur);
    env.gain.setTargetAtTime(0, end, 0.04);
    env.connect(this.out);
    const oscs = [["triangle", 1, 1], ["sine", 2, 0.35]].map(([type, mult, level]) => {
      const o = ctx.createOscillator(), g = ctx.createGain();
      o.type = type; o.frequency.value = f * mult; g.gain.value = level;
      for (let k = fromFrame; k < bends.length; k++) {
        const t = when + ((k - fromFrame) * period) / rate;
        if (t >= end) break;
        o.detune.setValueAtTime(bends[k], t);
      }
      o.connect(g).connect(env);
      o.start(when); o.stop(end + 0.3);
      return o;
    });
    const v = { oscs, env };
    this.voices.add(v);
    this.started += 1;
    oscs[0].onended = () => { this.voices.delete(v); env.disconnect(); };
    return v;
  }

  stopAll() {
    const now = this.ctx.currentTime;
    for (const v of this.voices) {
      v.env.gain.cancelScheduledValues(now);
      v.env.gain.setTargetAtTime(0, now, 0.01);
      for (const o of v.oscs) { try { o.stop(now + 0.05); } catch (_) { /* not started yet */ } }
    }
    this.voices.clear();
  }
}

export class Transport extends EventTarget {
  constructor(audio) {
    super();
    this.audio = audio;
    this.ctx = null; this.synth = null;
    this.playing = false;
    this.pos = 0; this.anchorPos = 0; this.anchorClock = 0;
    this.rate = 1; this.balance = 0.5;
    this.loop = { on: false, start: 0, end: 0 };
    this.duration = 0;
    this.notes = () => ({ notes: [], period: 0.0116 });
    this.nextIndex = 0; this.scheduledUntil = 0;
    this.timer = null;
    this._own = false;  // true while this transport itself starts or pauses the element
    audio.addEventListener("play", () => { if (!this._own && !this.playing) this.play(audio.currentTime); });
    audio.addEventListener("pause", () => { if (!this._own && this.playing && !audio.ended) this.pause(); });
  }

  _clock() { return this.ctx ? this.ctx.currentTime : performance.now() / 1000; }

  _ensureAudio() {
    if (this.ctx) return;
    const AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) return;
    this.ctx = new AC();
    this.synth = new Synth(this.ctx);
    this._applyGains();
  }

  get position() {
    return this.playing ? this.anchorPos + (this._clock() - this.anchorClock) * this.rate : this.pos;
  }

  get hasOriginal() { return Boolean(this.audio.currentSrc || this.audio.src); }

  _emit() { this.dispatchEvent(new Event("change")); }

  _applyGains() {
    const orig = Math.min(1, 2 * (1 - this.balance)), midi = Math.min(1, 2 * this.balance);
    this.audio.volume = orig;
    if (this.synth) this.synth.out.gain.value = midi;
  }

  setBalance(b) { this.balance = Math.max(0, Math.min(1, b)); this._applyGains(); this._emit(); }

  setRate(r) {
    const pos = this.position;
    this.rate = Math.max(0.5, Math.min(1, r));
    this.audio.playbackRate = this.rate;
    this.audio.preservesPitch = true;
    if (this.playing) this._restartFrom(pos); else this._emit();
  }

  setLoop(start, end) {
    const [a, b] = start < end ? [start, end] : [end, start];
    this.loop = { on: b - a > 0.05, start: a, end: b };
    if (this.loop.on && this.playing && (this.position < a || this.position >= b)) this._restartFrom(a);
    this._emit();
  }
  clearLoop() { this.loop = { on: false, start: 0, end: 0 }; this._emit(); }

  /** Play from `from` (default: where the playhead is). */
  play(from = this.position) {
    this._ensureAudio();
    if (this.ctx && this.ctx.state === "suspended") this.ctx.resume();
    if (this.loop.on && (from < this.loop.start || from >= this.loop.end - 0.01)) from = this.loop.start;
    else if (from >= this.end() - 0.01) from = 0;
    this.playing = true;
    this._restartFrom(from);
    if (!this.timer) this.timer = setInterval(() => this._tick(), TICK_MS);
  }

  pause() {
    if (!this.playing) return;
    this.pos = this.position;
    this.playing = false;
    clearInterval(this.timer); this.timer = null;
    if (this.synth) this.synth.stopAll();
    this._own = true; this.audio.pause(); this._own = false;
    this._emit();
  }

  toggle() { if (this.playing) this.pause(); else this.play(); }

  seek(t) {
    const to = Math.max(0, Math.min(t, this.end()));
    if (this.playing) this._restartFrom(to); else { this.pos = to; this._syncElement(to); this._emit(); }
  }

  /** The notes changed (re-tune or edit): what sounds from now on follows them. */
  notesChanged() { if (this.playing) this._restartFrom(this.position); }

  end() { return this.loop.on ? this.loop.end : this.duration; }

  _syncElement(t) {
    if (!this.hasOriginal) return;
    try { this.audio.currentTime = t; } catch (_) { /* not loaded yet */ }
  }

  _restartFrom(t) {
    if (this.synth) this.synth.stopAll();
    this.anchorPos = t; this.anchorClock = this._clock(); this.pos = t;
    const { notes } = this.notes();
    let i = 0;
    while (i < notes.length && notes[i].start < t) i++;
    this.nextIndex = i; this.scheduledUntil = t;
    if (this.synth) this._startSounding(notes, t);
    if (this.playing && this.hasOriginal) {
      this._syncElement(t);
      this._own = true;
      this.audio.playbackRate = this.rate;
      const p = this.audio.play();
      this._own = false;
      if (p && p.catch) p.catch(() => { /* original unavailable: the notes still play */ });
    }
    this._schedule();
    this._emit();
  }

  _startSounding(notes, t) {  // notes already sounding at t start at once, from their current frame
    const { period } = this.notes(), now = this._clock();
    for (let k = this.nextIndex - 1; k >= 0 && k >= this.nextIndex - 2000; k--) {
      const n = notes[k];
      if (n.end > t + 0.02) {
        const frame = Math.floor((t - n.start) / period);
        this.synth.voice(n.pitch, n.velocity, now, (n.end - t) / this.rate, n.bends, period, this.rate, Math.max(0, frame));
      }
    }
  }

  _schedule() {
    if (!this.playing || !this.synth) return;
    const { notes, period } = this.notes();
    const horizon = Math.min(this.end(), this.position + LOOKAHEAD_S * this.rate);
    while (this.nextIndex < notes.length && notes[this.nextIndex].start < horizon) {
      const n = notes[this.nextIndex++];
      const when = this.anchorClock + (n.start - this.anchorPos) / this.rate;
      const endAt = this.loop.on ? Math.min(n.end, this.loop.end) : n.end;
      this.synth.voice(n.pitch, n.velocity, Math.max(when, this._clock()), (endAt - n.start) / this.rate, n.bends, period, this.rate);
    }
    this.scheduledUntil = horizon;
  }

  _tick() {
    const pos = this.position;
    if (pos >= this.end()) {
      if (this.loop.on) { this._restartFrom(this.loop.start); return; }
      this.pause(); this.pos = this.duration; this._emit(); return;
    }
    if (this.hasOriginal && !this.audio.paused && Math.abs(this.audio.currentTime - pos) > DRIFT_S && pos < (this.audio.duration || 0)) {
      this._syncElement(pos);
    }
    this._schedule();
  }

  /** A short preview of one pitch (clicking the keyboard). */
  preview(pitch) {
    this._ensureAudio();
    if (!this.synth) return;
    if (this.ctx.state === "suspended") this.ctx.resume();
    this.synth.voice(pitch, 90, this.ctx.currentTime, 0.35);
  }
}
