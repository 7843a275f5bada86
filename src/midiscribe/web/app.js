// midiscribe Endpoint Explorer: talks to the public API exactly as a client would.
import { API, api, isAbort, setKey, showError, whenUnauthorized } from "./api.js";
import { NoteStore, editKeeper, fromApi } from "./notes.js";
import { PianoRoll, KEYS_W } from "./roll.js";
import { Transport } from "./transport.js";
import { snippets } from "./snippets.js";
import { midiFile, notesCsv } from "./smf.js";
import { describeRoll, fillNotesTable, formatTime } from "./views.js";

const $ = (id) => document.getElementById(id);
const PAGE = 20;
const state = { task: null, duration: 0, period: 0.0116, page: 0, total: 0, following: null, config: {} };
const store = new NoteStore();
const transport = new Transport($("audio-original"));
const roll = new PianoRoll($("roll"), store, transport);
transport.notes = () => ({ notes: store.notes, period: state.period });
window.explorer = { store, roll, transport };  // for the console (and the browser tests)

// ---------- sign in ----------
function signedOutMessage(text) { $("signin-note").textContent = text; $("signin-note").hidden = !text; }

function showSignIn(message = "") {
  transport.pause();
  setKey(null);
  $("app").hidden = true; $("who").hidden = true; $("signin").hidden = false;
  signedOutMessage(message);
  $("local-key-row").hidden = !state.config.local_key;
  $("api-key").value = "";
  $("api-key").focus();
}

async function signIn(key, { local = false } = {}) {
  await api(`${API}/tasks?limit=1`, { key });
  setKey(key);
  sessionStorage.removeItem("midiscribe-signed-out");
  if (!local) sessionStorage.setItem("midiscribe-key", key);
  $("signin").hidden = true; $("app").hidden = false; $("who").hidden = false;
  $("who-label").textContent = local ? "local key (development setting)" : `key ${key.slice(0, 10)}…`;
  await loadHistory(0);
  if (!(await route())) $("new-title").focus();  // focus lands on the page's first task, not on <body>
}

whenUnauthorized(() => {
  sessionStorage.removeItem("midiscribe-key");
  showSignIn("The server refused this API key (revoked or unknown): sign in again.");
});

async function start() {
  $("server-host").textContent = location.host;
  state.config = await fetch("/web/config").then((r) => r.json()).catch(() => ({}));
  const signedOut = sessionStorage.getItem("midiscribe-signed-out") === "1";
  const stored = sessionStorage.getItem("midiscribe-key");
  const attempts = [];
  if (stored) attempts.push([stored, false]);
  if (state.config.local_key && !signedOut) attempts.push([state.config.local_key, true]);
  for (const [key, local] of attempts) {
    try { await signIn(key, { local }); return; } catch (_) { if (!local) sessionStorage.removeItem("midiscribe-key"); }
  }
  showSignIn(signedOut ? "Signed out." : "");
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try { showError($("signin-error"), null); await signIn($("api-key").value.trim()); }
  catch (err) { showError($("signin-error"), err); }
});
$("use-local-key").addEventListener("click", async () => {
  try { showError($("signin-error"), null); await signIn(state.config.local_key, { local: true }); }
  catch (err) { showError($("signin-error"), err); }
});
$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem("midiscribe-key");
  sessionStorage.setItem("midiscribe-signed-out", "1");  // the development setting's local key is not used again
  history.replaceState(null, "", location.pathname);
  showSignIn("Signed out.");
});

// ---------- the form ----------
let chosenFile = null;
function chooseFile(file) {
  chosenFile = file;
  $("drop-label").textContent = file ? `${file.name} (${(file.size / 1e6).toFixed(1)} MB)` : "Drop an audio or video file here, or choose one";
}
$("drop").addEventListener("click", () => $("file").click());
$("drop").addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); $("file").click(); } });
$("file").addEventListener("change", () => chooseFile($("file").files[0] || null));
for (const t of ["dragenter", "dragover"]) $("drop").addEventListener(t, (ev) => { ev.preventDefault(); $("drop").classList.add("over"); });
for (const t of ["dragleave", "drop"]) $("drop").addEventListener(t, () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (ev) => { ev.preventDefault(); chooseFile(ev.dataTransfer.files[0] || null); });
for (const id of ["onset", "frame", "r-onset", "r-frame"]) $(id).addEventListener("input", () => { $(`${id}-out`).textContent = Number($(id).value).toFixed(2); });
// A submit the browser's own validation stops leaves no earlier message standing.
$("convert-form").addEventListener("invalid", () => showError($("error"), null), true);

function requestFields() {
  const f = {
    sonify_midi: $("sonify").checked, save_note_events: $("csv").checked,
    onset_threshold: Number($("onset").value), frame_threshold: Number($("frame").value),
    minimum_note_length: Number($("minlen").value), include_pitch_bends: $("bends").checked,
    midi_program: Number($("program").value),
  };
  if ($("fmin").value) f.minimum_frequency = Number($("fmin").value);
  if ($("fmax").value) f.maximum_frequency = Number($("fmax").value);
  if (!$("model-row").hidden && $("model").value) f.model = $("model").value;
  return f;
}

$("convert-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError($("error"), null);
  const fields = requestFields(), url = $("url").value.trim();
  let form;
  if (chosenFile) {
    form = new FormData();
    form.append("audio_file", chosenFile, chosenFile.name);
    for (const [k, v] of Object.entries(fields)) form.append(k, String(v));
  } else if (url) {
    fields.audio_path = url;
  } else {
    showError($("error"), "Choose a file or paste a URL first.");
    return;
  }
  showSnippets(fields, chosenFile);
  $("submit").disabled = true;
  try {
    const res = await api(`${API}/audio_to_midi`, form ? { method: "POST", form } : { method: "POST", json: fields });
    location.hash = `#/tasks/${res.task_id}`;  // the route follows it
  } catch (err) {
    showError($("error"), err);
  } finally {
    $("submit").disabled = false;
  }
});

// ---------- status ----------
function showStatus(task) {
  $("status").hidden = false;
  $("task-id").textContent = task.task_id;
  $("status-text").textContent = `${task.status} · ${task.progress}%`;
  $("progress").value = task.progress;
}

async function follow(taskId) {
  const token = {};
  state.following = token;
  showError($("error"), null);
  for (;;) {
    const task = await api(`${API}/tasks/${taskId}`);
    if (state.following !== token) return;  // another task was opened meanwhile
    showStatus(task);
    $("cancel-task").hidden = !["queued", "processing"].includes(task.status);
    $("cancel-task").dataset.task = task.task_id;
    if (task.status === "completed" && task.files_deleted_at) {
      loadHistory(state.page);
      $("result").hidden = true;
      showError($("error"), new Error("This task's files were deleted from the server; its record is all that is left."));
      return;
    }
    if (task.status === "completed") { loadHistory(state.page); return openTask(task); }
    if (task.status === "failed" || task.status === "cancelled") {
      loadHistory(state.page);
      $("result").hidden = true;
      const e = task.error || {};
      showError($("error"), new Error(`${e.status || ""} ${e.code || task.status}: ${e.message || "the task did not finish"}`.trim()));
      return;
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

async function openTaskById(taskId) {
  try { await follow(taskId); } catch (err) { if (!isAbort(err)) showError($("error"), err); }
}

/** The task in the address (#/tasks/ID), if any; true if one was opened. */
async function route() {
  const m = /^#\/tasks\/([\w-]+)$/.exec(location.hash);
  if (!m || $("app").hidden) return false;
  if (state.task && state.task.task_id === m[1] && !$("result").hidden) return true;
  await openTaskById(m[1]);
  return true;
}
window.addEventListener("hashchange", () => route());

async function deleteTask(taskId) {
  try {
    const task = await api(`${API}/tasks/${taskId}`, { method: "DELETE" });
    editKeeper.discard(taskId);
    transport.pause();
    $("result").hidden = true;
    showStatus(task);
    $("cancel-task").hidden = true;
    if (location.hash === `#/tasks/${taskId}`) history.replaceState(null, "", location.pathname);
    loadHistory(state.page);
  } catch (err) { showError($("error"), err); }
}
$("cancel-task").addEventListener("click", () => deleteTask($("cancel-task").dataset.task));
$("delete-task").addEventListener("click", () => {
  if (confirm("Delete this task's files (upload and results) from the server? Its record stays.")) deleteTask(state.task.task_id);
});

function showScore(urls) {
  const box = $("score-pages");
  box.replaceChildren(...urls.map((url, i) => {
    const img = document.createElement("img");
    img.src = url; img.alt = `Score, page ${i + 1} of ${urls.length}`; img.loading = "lazy";
    return img;
  }));
  $("score-box").hidden = !urls.length;
}

// ---------- the result ----------
async function openTask(task) {
  transport.pause();
  state.task = task;
  state.following = null;
  delete $("result").dataset.task;
  showStatus(task);
  showError($("error"), null);
  const r = task.result;
  $("result").hidden = false;
  $("result-name").textContent = task.input.name || task.input.audio_path || task.task_id;
  $("share-link").href = `#/tasks/${task.task_id}`;
  for (const [id, url] of [["dl-mid", r.midi_file_path], ["dl-wav", r.sonify_file_path], ["dl-csv", r.notes_file_path]]) {
    $(id).href = url || "#"; $(id).hidden = !url;
  }
  const original = task.input.file_path || task.input.audio_path || "";
  $("audio-original").src = original;
  const o = task.options.note_options;
  setSlider("r-onset", o.onset_threshold); setSlider("r-frame", o.frame_threshold); setMinLen(o.min_note_length_ms);
  $("r-quantize").value = (task.options.quantize && task.options.quantize.grid) || "off";
  showScore(r.score_file_paths || []);
  transport.seek(0); transport.clearLoop();
  roll.view.start = 0;
  const kept = editKeeper.load(task.task_id);
  if (kept) {
    applySource(kept.source);
    await retune({ quiet: true, resetHistory: true });  // duration and frame period; the kept edit then replaces the notes
    store.loadEdited(kept.notes, kept.source);
    $("retune-note").textContent = `Your edit of ${new Date(kept.savedAt).toLocaleString()} was restored (kept in this browser).`;
  } else {
    $("retune-note").textContent = "";
    await retune({ resetHistory: true });
  }
  roll.fitPitches();
  roll.setView(0, Math.max(20, Math.min(200, (roll.width - KEYS_W) / Math.max(1, Math.min(state.duration, 20)))));
  $("result").dataset.task = task.task_id;  // its notes are shown
  $("result").scrollIntoView({ block: "start" });
  $("result-title").focus({ preventScroll: true });  // keyboard and screen-reader users land on the result
}

function setSlider(id, v) { $(id).value = v; $(`${id}-out`).textContent = Number(v).toFixed(2); }
function setMinLen(ms) { $("r-minlen").value = +Number(ms).toFixed(1); $("r-minlen-range").value = Math.min(2000, Math.round(ms)); }
function applySource(src) {
  if (!src) return;
  setSlider("r-onset", src.onset_threshold); setSlider("r-frame", src.frame_threshold); setMinLen(src.minimum_note_length);
  if (src.quantize) $("r-quantize").value = src.quantize;
}

// ---------- re-tune ----------
let retuneController = null, retuneTimer = null;
function retuneOptions() {
  return { onset_threshold: Number($("r-onset").value), frame_threshold: Number($("r-frame").value),
    minimum_note_length: Number($("r-minlen").value), quantize: $("r-quantize").value };
}

/** Re-derive the notes for the sliders' options; only the latest request may draw (earlier ones are aborted). */
async function retune({ quiet = false, resetHistory = false } = {}) {
  if (retuneController) retuneController.abort();
  const controller = new AbortController();
  retuneController = controller;
  const options = retuneOptions();
  try {
    const data = await api(`${API}/tasks/${state.task.task_id}/notes`, { method: "POST", json: options, signal: controller.signal });
    if (retuneController !== controller) return;  // a newer request owns the roll
    state.duration = data.duration_s; state.period = data.frame_period_s;
    transport.duration = data.duration_s; roll.duration = data.duration_s; roll.period = data.frame_period_s;
    $("key-badge").hidden = !data.key; $("key-badge").textContent = data.key ? `Key: ${data.key}` : "";
    const grid = data.grid && data.grid.tempo_bpm != null ? data.grid : null;
    $("tempo-badge").hidden = !grid;
    $("tempo-badge").textContent = grid ? `${Math.round(grid.tempo_bpm)} bpm · ${grid.time_signature}` : "";
    roll.setGrid(grid);
    if (!quiet) store.loadDerived(data.notes.map(fromApi), options, { resetHistory });
  } catch (err) {
    if (!isAbort(err)) showError($("error"), err);
  } finally {
    if (retuneController === controller) retuneController = null;
  }
}

function scheduleRetune() {
  clearTimeout(retuneTimer);
  retuneTimer = setTimeout(() => retune(), 80);
}
for (const id of ["r-onset", "r-frame"]) $(id).addEventListener("input", scheduleRetune);
$("r-quantize").addEventListener("change", () => retune());
$("r-minlen-range").addEventListener("input", () => { $("r-minlen").value = $("r-minlen-range").value; scheduleRetune(); });
$("r-minlen").addEventListener("input", () => {
  if (!$("r-minlen").checkValidity() || $("r-minlen").value === "") return;
  $("r-minlen-range").value = Math.min(2000, Math.round(Number($("r-minlen").value)));
  scheduleRetune();
});

// ---------- the notes changed ----------
let saveTimer = null;
store.addEventListener("change", (ev) => {
  const kind = ev.detail.kind;
  const n = store.notes.length;
  $("note-count").textContent = `${n} notes`;
  $("note-count").dataset.count = n;
  $("edited-badge").hidden = !store.edited;
  $("discard-edits").hidden = !store.edited;
  $("undo").disabled = !store.undoStack.length; $("redo").disabled = !store.redoStack.length;
  $("delete").disabled = !store.selected.size;
  const sel = store.selected.size;
  $("selection-text").textContent = sel ? `${sel} selected` : "";
  if (sel === 1) $("velocity").value = [...store.selected][0].velocity;
  if (kind === "history" && store.source) applySource(store.source);
  if (kind === "load") roll.fitPitches();
  describeRoll($("roll"), store, state.duration);
  if ($("notes-table-box").open) fillNotesTable(store, state.period);
  else $("notes-summary").textContent = `Notes as a table (${n})`;
  if (kind !== "select") transport.notesChanged();
  roll.redraw();
  if (kind !== "select" && state.task) {
    clearTimeout(saveTimer);
    const taskId = state.task.task_id;
    saveTimer = setTimeout(() => {
      if (!editKeeper.save(taskId, store)) $("retune-note").textContent = "This edit is too large to keep in this browser: download it before you leave.";
    }, 250);
  }
});
$("notes-table-box").addEventListener("toggle", () => { if ($("notes-table-box").open) fillNotesTable(store, state.period); });
$("discard-edits").addEventListener("click", async () => {
  editKeeper.discard(state.task.task_id);
  $("retune-note").textContent = "Edits discarded.";
  await retune();
});

// ---------- editing controls ----------
for (const radio of document.querySelectorAll("input[name=tool]")) radio.addEventListener("change", () => { roll.tool = radio.value; });
$("undo").addEventListener("click", () => store.undo());
$("redo").addEventListener("click", () => store.redo());
$("delete").addEventListener("click", () => store.deleteSelected());
$("velocity").addEventListener("change", () => {
  const v = Number($("velocity").value);
  if (!(v >= 1 && v <= 127)) return;
  roll.drawVelocity = v;
  store.setVelocity(v);
});

$("roll").addEventListener("keydown", (ev) => {
  const mod = ev.ctrlKey || ev.metaKey, sel = store.selected.size > 0;
  const page = roll.visibleS, step = ev.shiftKey ? 0.1 : 0.01 * Math.max(1, 100 / roll.view.pxPerSec) * 5;
  const keys = {
    ArrowRight: () => (sel ? store.moveSelected(step, 0) : roll.setView(roll.view.start + page / 4)),
    ArrowLeft: () => (sel ? store.moveSelected(-step, 0) : roll.setView(roll.view.start - page / 4)),
    ArrowUp: () => sel && store.moveSelected(0, ev.shiftKey ? 12 : 1),
    ArrowDown: () => sel && store.moveSelected(0, ev.shiftKey ? -12 : -1),
    "+": () => roll.zoomAround(roll.view.start + page / 2, 1.5), "=": () => roll.zoomAround(roll.view.start + page / 2, 1.5),
    "-": () => roll.zoomAround(roll.view.start + page / 2, 1 / 1.5),
    Delete: () => store.deleteSelected(), Backspace: () => store.deleteSelected(),
    Escape: () => store.clearSelection(),
  };
  if (mod && ev.key.toLowerCase() === "a") { ev.preventDefault(); store.selectAll(); return; }
  if (keys[ev.key] && !mod) { ev.preventDefault(); keys[ev.key](); }
});
document.addEventListener("keydown", (ev) => {  // undo/redo anywhere but in a text field
  if (!state.task || ev.target.matches("input[type=text], input[type=url], input[type=password], input[type=number], textarea")) return;
  const mod = ev.ctrlKey || ev.metaKey, key = ev.key.toLowerCase();
  if (mod && key === "z" && !ev.shiftKey) { ev.preventDefault(); store.undo(); }
  else if (mod && (key === "y" || (key === "z" && ev.shiftKey))) { ev.preventDefault(); store.redo(); }
  else if (ev.key === " " && !ev.target.matches("button, a, summary, select, input, textarea, [role=button]") && !$("result").hidden) {
    ev.preventDefault(); transport.toggle();
  }
});

// ---------- playback ----------
$("play").addEventListener("click", () => transport.toggle());
transport.addEventListener("change", () => {
  $("play").textContent = transport.playing ? "Pause" : "Play";
  $("play").setAttribute("aria-pressed", String(transport.playing));
  const lp = transport.loop;
  $("loop").setAttribute("aria-pressed", String(lp.on));
  $("loop-text").textContent = lp.on ? `${formatTime(lp.start)}–${formatTime(lp.end)}` : "";
  roll.redraw();
});
function setBalance(b) {
  transport.setBalance(b);
  $("balance").value = Math.round(b * 100);
  $("balance").setAttribute("aria-valuetext", b <= 0 ? "original only" : b >= 1 ? "notes only" : `${Math.round((1 - b) * 100)}% original, ${Math.round(b * 100)}% notes`);
  const which = b <= 0 ? "original" : b >= 1 ? "midi" : "mix";
  for (const radio of document.querySelectorAll("input[name=listen]")) radio.checked = radio.value === which;
}
$("balance").addEventListener("input", () => setBalance(Number($("balance").value) / 100));
for (const radio of document.querySelectorAll("input[name=listen]")) {
  radio.addEventListener("change", () => setBalance({ original: 0, mix: 0.5, midi: 1 }[radio.value]));
}
$("speed").addEventListener("input", () => { transport.setRate(Number($("speed").value)); $("speed-out").textContent = `${Number($("speed").value).toFixed(2)}×`; });
$("loop").addEventListener("click", () => {
  if (transport.loop.on) { transport.clearLoop(); return; }
  const sel = [...store.selected];
  if (sel.length) transport.setLoop(Math.min(...sel.map((n) => n.start)), Math.max(...sel.map((n) => n.end)));
  else transport.setLoop(roll.view.start, roll.view.start + roll.visibleS);  // the visible part
});
setBalance(0.5);

$("zoom-in").addEventListener("click", () => roll.zoomAround(roll.view.start + roll.visibleS / 2, 1.5));
$("zoom-out").addEventListener("click", () => roll.zoomAround(roll.view.start + roll.visibleS / 2, 1 / 1.5));
$("scroll").addEventListener("input", () => roll.setView((Number($("scroll").value) / 1000) * Math.max(0, state.duration - roll.visibleS)));
roll.onViewChange = () => {
  const maxStart = Math.max(0, state.duration - roll.visibleS);
  $("scroll").value = maxStart ? Math.round((1000 * roll.view.start) / maxStart) : 0;
};

function frame() {
  if (transport.playing) { roll.follow(transport.position); roll.redraw(); }
  $("time").textContent = `${formatTime(transport.position)} / ${formatTime(state.duration)}`;
  $("time").dataset.position = transport.position.toFixed(3);
  if (transport.synth) $("time").dataset.voices = transport.synth.started;
  roll.frame();
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);

// ---------- downloads of what is shown ----------
function baseName() { return (state.task.input.name || state.task.task_id).replace(/\.[^.]+$/, "") + (store.edited ? "-edited" : ""); }
function shownMidi() {
  const m = state.task.options.midi_options || {};
  return midiFile(store.notes, { program: m.program ?? 0, tempoBpm: m.tempo_bpm ?? 120, multiplePitchBends: !!m.multiple_pitch_bends,
    period: state.period, grid: roll.grid });
}
function save(bytes, type, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([bytes], { type }));
  a.download = name;
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 5000);
}
$("dl-shown-mid").addEventListener("click", () => save(shownMidi(), "audio/midi", `${baseName()}.mid`));
$("dl-shown-csv").addEventListener("click", () => {
  const m = state.task.options.midi_options || {};
  save(notesCsv(store.notes, { multiplePitchBends: !!m.multiple_pitch_bends }), "text/csv", `${baseName()}.csv`);
});
$("drag-mid").addEventListener("click", (ev) => { ev.preventDefault(); save(shownMidi(), "audio/midi", `${baseName()}.mid`); });
$("drag-mid").addEventListener("dragstart", (ev) => {  // Chromium: drop it on the desktop or into a DAW as a file
  let bin = "";
  for (const b of shownMidi()) bin += String.fromCharCode(b);
  const url = `data:audio/midi;base64,${btoa(bin)}`;
  ev.dataTransfer.setData("DownloadURL", `audio/midi:${baseName()}.mid:${url}`);
  ev.dataTransfer.setData("text/uri-list", url);
  ev.dataTransfer.effectAllowed = "copy";
});

// ---------- history ----------
async function loadHistory(page = state.page) {
  let data;
  try { data = await api(`${API}/tasks?limit=${PAGE}&offset=${page * PAGE}`); } catch (err) { if (err.status !== 401) showError($("error"), err); return; }
  state.page = page; state.total = data.total;
  const list = $("history");
  list.replaceChildren();
  for (const t of data.tasks) {
    const li = document.createElement("li"), a = document.createElement("a");
    a.href = `#/tasks/${t.task_id}`;
    a.className = "task";
    const name = document.createElement("span"), status = document.createElement("span");
    name.textContent = `${t.input.name || t.task_id} · ${new Date(t.created_at).toLocaleString()}`;
    status.className = `state-${t.status}`; status.textContent = t.status;
    a.append(name, status);
    a.addEventListener("click", (ev) => {  // the same task again still re-opens it
      if (location.hash === a.getAttribute("href")) { ev.preventDefault(); openTaskById(t.task_id); }
    });
    li.append(a); list.append(li);
  }
  if (!data.tasks.length) list.innerHTML = "<li class='hint'>No tasks yet.</li>";
  const first = data.total ? page * PAGE + 1 : 0, last = page * PAGE + data.tasks.length;
  $("page-text").textContent = data.total ? `${first}–${last} of ${data.total}` : "";
  $("newer").disabled = page === 0;
  $("older").disabled = last >= data.total;
}
$("refresh").addEventListener("click", () => loadHistory(state.page));
$("newer").addEventListener("click", () => loadHistory(Math.max(0, state.page - 1)));
$("older").addEventListener("click", () => loadHistory(state.page + 1));

// ---------- snippets ----------
function showSnippets(fields, file) {
  const { curl, py } = snippets(fields, file);
  $("curl-snippet").textContent = curl;
  $("python-snippet").textContent = py;
  $("snippets").hidden = false;
}
for (const b of document.querySelectorAll(".copy")) {
  const label = b.textContent;
  b.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($(b.dataset.copy).textContent); b.textContent = "Copied"; }
    catch (_) { b.textContent = "Select and copy"; }
    setTimeout(() => { b.textContent = label; }, 1500);
  });
}

start();
