// Text views of the notes: the roll's text alternative and the notes table.
import { pitchName } from "./roll.js";

const TABLE_ROWS = 2000;

export function formatTime(s) {
  const t = Math.max(0, s || 0), m = Math.floor(t / 60);
  return `${m}:${(t - m * 60).toFixed(1).padStart(4, "0")}`;
}

/** The roll's accessible name: what a sighted user takes in at a glance. */
export function describeRoll(canvas, store, duration) {
  const notes = store.notes;
  if (!notes.length) { canvas.setAttribute("aria-label", `Piano roll: no notes in ${duration.toFixed(1)} s`); return; }
  let lo = 127, hi = 0, bent = 0;
  for (const n of notes) { lo = Math.min(lo, n.pitch); hi = Math.max(hi, n.pitch); if (n.bends.length) bent++; }
  const sel = store.selected.size ? `, ${store.selected.size} selected` : "";
  canvas.setAttribute("aria-label", `Piano roll: ${notes.length} notes from ${pitchName(lo)} to ${pitchName(hi)} over ${duration.toFixed(1)} s, ` +
    `${bent} with pitch bends${store.edited ? ", edited" : ""}${sel}. The table below lists them.`);
}

export function fillNotesTable(store, period) {
  const notes = store.notes, body = document.querySelector("#notes-table tbody");
  const rows = notes.slice(0, TABLE_ROWS).map((n) => {
    const tr = document.createElement("tr");
    const bend = n.bends.length ? `${Math.min(...n.bends)} to ${Math.max(...n.bends)} cents` : "none";
    for (const v of [n.start.toFixed(3), n.end.toFixed(3), `${pitchName(n.pitch)} (${n.pitch})`, Math.round(n.velocity), bend]) {
      const td = document.createElement("td"); td.textContent = v; tr.append(td);
    }
    if (store.selected.has(n)) tr.className = "selected";
    return tr;
  });
  body.replaceChildren(...rows);
  const bent = notes.filter((n) => n.bends.length).length;
  document.getElementById("notes-caption").textContent = notes.length > TABLE_ROWS
    ? `First ${TABLE_ROWS} of ${notes.length} notes (${bent} with pitch bends); download the CSV for all.`
    : `${notes.length} notes, ${bent} with pitch bends (frames of ${(period * 1000).toFixed(1)} ms).`;
  document.getElementById("notes-summary").textContent = `Notes as a table (${notes.length})`;
}
