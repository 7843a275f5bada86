// Standard MIDI files and note CSVs written in the browser, from the notes the page shows.
// They follow the server's writers (formats/midi.py, formats/notes_csv.py): a type-1 file with a
// tempo track and one instrument track (or one per pitch with multiple pitch bends), 480 ticks
// per beat, bends one per model frame from the note's start and reset at its end, ±2 semitones;
// with a beat grid, the tempo map and time signatures of formats/tempo_map.py (every beat on a MIDI
// beat, every downbeat on a bar line, one lead-in beat before the first), notes kept in seconds.

const TICKS_PER_BEAT = 480;
const BEND_RANGE_CENTS = 200;
const MELODIC_CHANNELS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15];
const NOTE_OFF = 0, BEND_RESET = 1, BEND = 2, NOTE_ON = 3;  // order of events on one tick
const MAX_TEMPO_US = 0xffffff, KEEP_US = 50, LEAD_MIN_S = 0.001;

/** formats/tempo_map.py's TempoMap: tempos [[tick, us per quarter]], signatures [[tick, num, den]],
 *  and toTicks(seconds) through the same rounded map a reader of the file uses. */
export function tempoMap(grid, tempoBpm = 120) {
  let tempos, signatures, ticks, times;
  if (!grid) {
    const us = Math.round(60_000_000 / tempoBpm);
    tempos = [[0, us]]; signatures = [[0, 4, 4]]; ticks = [0, TICKS_PER_BEAT]; times = [0, us / 1e6];
  } else {
    const [num, den] = grid.time_signature.split("/").map(Number), per = grid.beats_per_bar;
    const qpb = (4 / den) * (num / per), tpb = TICKS_PER_BEAT * qpb, beats = grid.beats_s;
    const lead = beats[0] < LEAD_MIN_S ? 0 : Math.max(1, Math.ceil((beats[0] * 1e6) / qpb / MAX_TEMPO_US));
    const points = [...Array.from({ length: lead }, (_, i) => (beats[0] * i) / lead), ...beats];
    tempos = []; times = [points[0]];
    let done = points[0] * 1e6;
    for (let i = 0; i < points.length - 1; i++) {
      const target = points[i + 1] * 1e6, last = tempos.length ? tempos[tempos.length - 1][1] : null;
      const tempo = last !== null && Math.abs(done + last * qpb - target) <= KEEP_US
        ? last : Math.min(MAX_TEMPO_US, Math.max(1, Math.round((target - done) / qpb)));
      if (tempo !== last) tempos.push([Math.round(i * tpb), tempo]);
      done += tempo * qpb; times.push(done / 1e6);
    }
    ticks = points.map((_, i) => i * tpb);
    const short = (lead + grid.first_downbeat) % per;
    signatures = short ? [[0, short * (num / per), den], [Math.round(short * tpb), num, den]] : [[0, num, den]];
  }
  const n = times.length, rate = (ticks[n - 1] - ticks[n - 2]) / (times[n - 1] - times[n - 2]);
  const toTicks = (t) => {
    if (t >= times[n - 1]) return Math.round(ticks[n - 1] + (t - times[n - 1]) * rate);
    let lo = 0, hi = n - 1;
    while (hi - lo > 1) { const m = (lo + hi) >> 1; if (times[m] <= t) lo = m; else hi = m; }
    return Math.round(ticks[lo] + ((t - times[lo]) / (times[hi] - times[lo])) * (ticks[hi] - ticks[lo]));
  };
  return { tempos, signatures, toTicks };
}

/** For each note, whether it keeps its bends when all share one channel (core/bends.py's rule). */
export function bendsKeptOnOneChannel(notes) {
  const keep = notes.map((n) => n.bends.length > 0);
  const order = notes.map((_, i) => i).sort((a, b) => notes[a].start - notes[b].start || notes[a].end - notes[b].end);
  for (let pos = 0; pos < order.length; pos++) {
    const i = order[pos];
    for (let q = pos + 1; q < order.length; q++) {
      const j = order[q];
      if (notes[j].start >= notes[i].end) break;
      keep[i] = keep[j] = false;
    }
  }
  return keep;
}

/** The notes with exactly the bends a MIDI file written with these options carries. */
export function writtenBends(notes, multiplePitchBends) {
  if (multiplePitchBends) return notes;
  const keep = bendsKeptOnOneChannel(notes);
  return notes.map((n, i) => (keep[i] || !n.bends.length ? n : { ...n, bends: [] }));
}

function vlq(value, out) {
  const bytes = [value & 0x7f];
  for (let v = value >>> 7; v > 0; v >>>= 7) bytes.unshift((v & 0x7f) | 0x80);
  out.push(...bytes);
}

function text(str) { return Array.from(new TextEncoder().encode(str)); }

function chunk(type, data) {
  const n = data.length;
  return [...text(type), (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255, ...data];
}

function trackBytes(events) {
  // events: [tick, order, bytes[]] sorted; pitch-wheel messages that change nothing are skipped
  const out = [];
  let now = 0, wheel = 8192;
  for (const [tick, , msg] of events) {
    if ((msg[0] & 0xf0) === 0xe0) {
      const value = msg[1] | (msg[2] << 7);
      if (value === wheel) continue;
      wheel = value;
    }
    vlq(tick - now, out);
    out.push(...msg);
    now = tick;
  }
  out.push(0, 0xff, 0x2f, 0);
  return chunk("MTrk", out);
}

function meta(type, data) { return [0xff, type, data.length, ...data]; }  // data under 128 bytes

/** One sounding note per pitch at a time, at least one tick long (as formats/midi.py places them). */
function place(notes, toTicks) {
  const spans = notes.map((n) => ({ start: toTicks(n.start), end: toTicks(n.end), note: n }))
    .sort((a, b) => a.note.pitch - b.note.pitch || a.start - b.start || b.end - a.end);
  const placed = [];
  for (const span of spans) {
    const prev = placed.length && placed[placed.length - 1].note.pitch === span.note.pitch ? placed[placed.length - 1] : null;
    if (prev && span.start <= prev.start) continue;
    if (prev && span.start < prev.end) prev.end = span.start;
    placed.push({ start: span.start, end: Math.max(span.end, span.start + 1), note: span.note });
  }
  return placed;
}

function bendBytes(channel, cents) {
  const v = Math.max(-8192, Math.min(8191, Math.round((cents / BEND_RANGE_CENTS) * 8192))) + 8192;
  return [0xe0 | channel, v & 0x7f, (v >> 7) & 0x7f];
}

function noteEvents(notes, channel, toTicks, period) {
  const events = [];
  for (const span of place(notes, toTicks)) {
    const n = span.note, vel = Math.max(1, Math.min(127, Math.round(n.velocity)));
    events.push([span.start, NOTE_ON, [0x90 | channel, n.pitch, vel]]);
    events.push([span.end, NOTE_OFF, [0x80 | channel, n.pitch, 0]]);
    if (!n.bends.length) continue;
    for (let k = 0; k < n.bends.length; k++) {
      const tick = toTicks(n.start + k * period);
      if (tick >= span.end) break;
      events.push([Math.max(tick, span.start), BEND, bendBytes(channel, n.bends[k])]);
    }
    events.push([span.end, BEND_RESET, bendBytes(channel, 0)]);
  }
  return events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** A type-1 Standard MIDI File (Uint8Array) of `notes` ({start, end, pitch, velocity, bends}), on the
 *  beat grid `grid` (the re-tune answer's) when given, else at a constant `tempoBpm` in 4/4. */
export function midiFile(notes, { program = 0, tempoBpm = 120, multiplePitchBends = false, period = 0.0116, grid = null } = {}) {
  const map = tempoMap(grid, tempoBpm);
  const settled = writtenBends(notes, multiplePitchBends);
  const groups = [];
  if (multiplePitchBends && settled.length) {
    const byPitch = new Map();
    for (const n of settled) { if (!byPitch.has(n.pitch)) byPitch.set(n.pitch, []); byPitch.get(n.pitch).push(n); }
    for (const p of [...byPitch.keys()].sort((a, b) => a - b)) groups.push([`midiscribe pitch ${p}`, byPitch.get(p)]);
  } else {
    groups.push(["midiscribe", settled]);
  }
  const head = [0, 1, (groups.length + 1) >> 8, (groups.length + 1) & 255, TICKS_PER_BEAT >> 8, TICKS_PER_BEAT & 255];
  const tempoTrack = [
    [0, 0, meta(0x03, text("midiscribe"))],
    ...map.signatures.map(([tick, num, den]) => [tick, 1, meta(0x58, [num, Math.log2(den), 24, 8])]),
    ...map.tempos.map(([tick, us]) => [tick, 2, meta(0x51, [(us >> 16) & 255, (us >> 8) & 255, us & 255])]),
  ].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const bytes = [...chunk("MThd", head), ...trackBytes(tempoTrack)];
  groups.forEach(([name, group], index) => {
    const channel = MELODIC_CHANNELS[index % MELODIC_CHANNELS.length];
    const events = [[0, 0, meta(0x03, text(name))], [0, 0, [0xc0 | channel, program & 127]], ...noteEvents(group, channel, map.toTicks, period)];
    bytes.push(...trackBytes(events));
  });
  return new Uint8Array(bytes);
}

function fixed(x) { return (Math.round(x * 10000) / 10000).toFixed(4); }

/** The notes as the server's CSV (header start_s,end_s,pitch_midi,velocity,amplitude,pitch_bends). */
export function notesCsv(notes, { multiplePitchBends = false } = {}) {
  const rows = ["start_s,end_s,pitch_midi,velocity,amplitude,pitch_bends"];
  const sorted = writtenBends(notes, multiplePitchBends).slice().sort((a, b) => a.start - b.start || a.pitch - b.pitch);
  for (const n of sorted) {
    const amplitude = n.amplitude ?? n.velocity / 127;
    rows.push(`${fixed(n.start)},${fixed(n.end)},${n.pitch},${Math.round(n.velocity)},${fixed(amplitude)},"${n.bends.join(" ")}"`);
  }
  return rows.join("\n") + "\n";
}
