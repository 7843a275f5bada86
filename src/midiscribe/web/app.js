// midiscribe Endpoint Explorer: talks to the public API exactly as a client would.
"use strict";

const $ = (id) => document.getElementById(id);
const API = "/api/public/v1";
const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
const state = { key: null, task: null, notes: [], duration: 0, view: { start: 0, pxPerSec: 80 }, retuneTimer: null };

// ---------- API ----------
async function api(path, { method = "GET", json, form, raw } = {}) {
  const headers = { Authorization: state.key, accept: "application/json" };
  let body;
  if (json !== undefined) { headers["content-type"] = "application/json"; body = JSON.stringify(json); }
  if (form !== undefined) body = form;
  const res = await fetch(path, { method, headers, body });
  if (raw && res.ok) return res;
  let data = null;
  try { data = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok || (data && data.success === false)) {
    const err = (data && data.error) || {};
    const e = new Error(`${res.status} ${err.code || res.statusText}: ${err.message || "request failed"}`);
    e.status = res.status;
    throw e;
  }
  return data;
}

function showError(el, err) { el.textContent = err ? String(err.message || err) : ""; el.hidden = !err; }

// ---------- sign in ----------
async function signIn(key) {
  state.key = key;
  await api(`${API}/tasks?limit=1`);
  sessionStorage.setItem("midiscribe-key", key);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("who").hidden = false;
  $("who-label").textContent = `key ${key.slice(0, 10)}…`;
  loadHistory();
}

async function start() {
  const config = await fetch("/web/config").then((r) => r.json()).catch(() => ({}));
  const stored = config.local_key || sessionStorage.getItem("midiscribe-key");
  if (stored) {
    try { await signIn(stored); if (config.local_key) $("who-label").textContent = "local (development setting)"; return; }
    catch (_) { sessionStorage.removeItem("midiscribe-key"); }
  }
  $("signin").hidden = false;
  $("api-key").focus();
}

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try { showError($("signin-error"), null); await signIn($("api-key").value.trim()); }
  catch (err) { showError($("signin-error"), err); }
});
$("sign-out").addEventListener("click", () => { sessionStorage.removeItem("midiscribe-key"); location.reload(); });

// ---------- the form ----------
let chosenFile = null;
function chooseFile(file) { chosenFile = file; $("drop-label").textContent = file ? `${file.name} (${(file.size / 1e6).toFixed(1)} MB)` : "Drop an audio or video file here, or choose one"; }
$("drop").addEventListener("click", () => $("file").click());
$("drop").addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); $("file").click(); } });
$("file").addEventListener("change", () => chooseFile($("file").files[0] || null));
for (const t of ["dragenter", "dragover"]) $("drop").addEventListener(t, (ev) => { ev.preventDefault(); $("drop").classList.add("over"); });
for (const t of ["dragleave", "drop"]) $("drop").addEventListener(t, () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (ev) => { ev.preventDefault(); chooseFile(ev.dataTransfer.files[0] || null); });
for (const id of ["onset", "frame", "r-onset", "r-frame"]) $(id).addEventListener("input", () => { $(`${id}-out`).textContent = Number($(id).value).toFixed(2); });

function requestFields() {
  const f = {
    sonify_midi: $("sonify").checked, save_note_events: $("csv").checked,
    onset_threshold: Number($("onset").value), frame_threshold: Number($("frame").value),
    minimum_note_length: Number($("minlen").value), include_pitch_bends: $("bends").checked,
    midi_program: Number($("program").value),
  };
  if ($("fmin").value) f.minimum_frequency = Number($("fmin").value);
  if ($("fmax").value) f.maximum_frequency = Number($("fmax").value);
  return f;
}

$("convert-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showError($("error"), null);
  const fields = requestFields();
  const url = $("url").value.trim();
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
    const res = form ? await api(`${API}/audio_to_midi`, { method: "POST", form }) : await api(`${API}/audio_to_midi`, { method: "POST", json: fields });
    await follow(res.task_id);
  } catch (err) {
    showError($("error"), err);
  } finally {
    $("submit").disabled = false;
  }
});

// ---------- status ----------
async function follow(taskId) {
  $("status").hidden = false;
  $("task-id").textContent = taskId;
  for (;;) {
    const task = await api(`${API}/tasks/${taskId}`);
    $("status-text").textContent = `${task.status} · ${task.progress}%`;
    $("progress").value = task.progress;
    if (task.status === "completed") { loadHistory(); return openTask(task); }
    if (task.status === "failed") {
      loadHistory();
      throw new Error(`${task.error.status} ${task.error.code}: ${task.error.message}`);
    }
    await new Promise((r) => setTimeout(r, 400));
  }
}

async function openTask(task) {
  state.task = task;
  const r = task.result;
  $("result").hidden = false;
  $("dl-mid").href = r.midi_file_path;
  for (const [id, url] of [["dl-wav", r.sonify_file_path], ["dl-csv", r.notes_file_path]]) { $(id).href = url || "#"; $(id).hidden = !url; }
  $("audio-original").src = task.input.file_path || task.input.audio_path || "";
  $("audio-midi").src = r.sonify_file_path || "";
  $("audio-midi").parentElement.hidden = !r.sonify_file_path;
  const o = task.options.note_options;
  setSlider("r-onset", o.onset_threshold); setSlider("r-frame", o.frame_threshold);
  $("r-minlen").value = Math.round(o.min_note_length_ms); $("r-minlen-out").textContent = `${Math.round(o.min_note_length_ms)} ms`;
  state.view.start = 0;
  await retune();
  $("result").scrollIntoView({ behavior: "smooth", block: "start" });
}

function setSlider(id, v) { $(id).value = v; $(`${id}-out`).textContent = Number(v).toFixed(2); }

// ---------- re-tune ----------
function retuneOptions() {
  return { onset_threshold: Number($("r-onset").value), frame_threshold: Number($("r-frame").value), minimum_note_length: Number($("r-minlen").value) };
}
async function retune() {
  const data = await api(`${API}/tasks/${state.task.task_id}/notes`, { method: "POST", json: retuneOptions() });
  state.notes = data.notes;
  state.duration = data.duration_s;
  state.period = data.frame_period_s;
  $("note-count").textContent = `${data.n_notes} notes`;
  $("note-count").dataset.count = data.n_notes;
  draw();
}
for (const id of ["r-onset", "r-frame", "r-minlen"]) {
  $(id).addEventListener("input", () => {
    if (id === "r-minlen") $("r-minlen-out").textContent = `${$(id).value} ms`;
    clearTimeout(state.retuneTimer);
    state.retuneTimer = setTimeout(() => retune().catch((e) => showError($("error"), e)), 80);
  });
}
$("dl-retuned").addEventListener("click", async () => {
  try {
    const res = await api(`${API}/tasks/${state.task.task_id}/notes?format=midi`, { method: "POST", json: retuneOptions(), raw: true });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(await res.blob());
    a.download = `${state.task.task_id}-retuned.mid`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  } catch (err) { showError($("error"), err); }
});

// ---------- piano roll ----------
const KEYS_W = 44;
function pitchRange() {
  if (!state.notes.length) return [48, 84];
  let lo = 127, hi = 0;
  for (const n of state.notes) { lo = Math.min(lo, n[2]); hi = Math.max(hi, n[2]); }
  return [Math.max(0, lo - 2), Math.min(127, hi + 2)];
}
function activeAudio() { return document.querySelector("input[name=listen]:checked").value === "midi" ? $("audio-midi") : $("audio-original"); }

function draw() {
  const c = $("roll"), dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth, h = c.clientHeight;
  if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
  const g = c.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const [lo, hi] = pitchRange(), rowH = h / (hi - lo + 1);
  const { start, pxPerSec } = state.view;
  const x = (t) => KEYS_W + (t - start) * pxPerSec, y = (p) => h - (p - lo + 1) * rowH;
  for (let p = lo; p <= hi; p++) {  // lanes and keyboard
    const black = [1, 3, 6, 8, 10].includes(p % 12);
    g.fillStyle = black ? "#eef1f6" : "#fbfcfe"; g.fillRect(KEYS_W, y(p), w, rowH);
    g.fillStyle = black ? "#2b3240" : "#ffffff"; g.fillRect(0, y(p), KEYS_W - 2, rowH);
    g.strokeStyle = "#d9dee7"; g.strokeRect(0, y(p), KEYS_W - 2, rowH);
    if (p % 12 === 0 && rowH > 5) { g.fillStyle = "#5b6575"; g.font = `${Math.min(11, rowH + 2)}px system-ui`; g.fillText(`C${p / 12 - 1}`, 3, y(p) + rowH - 1); }
  }
  g.fillStyle = "#8892a3"; g.font = "10px system-ui";  // seconds grid
  const step = pxPerSec > 60 ? 1 : pxPerSec > 15 ? 5 : 30;
  for (let t = Math.ceil(start / step) * step; x(t) < w; t += step) { g.fillRect(x(t), 0, 1, h); g.fillText(`${t}s`, x(t) + 2, 10); }
  for (const [s, e, p, vel, bends] of state.notes) {
    if (x(e) < KEYS_W || x(s) > w) continue;
    g.fillStyle = `rgba(47, 111, 222, ${0.25 + 0.75 * vel / 127})`;  // velocity as shade
    const x0 = Math.max(KEYS_W, x(s));
    g.fillRect(x0, y(p) + 1, Math.max(2, x(e) - x0), Math.max(1, rowH - 2));
    if (bends && bends.some((b) => b !== 0)) {  // pitch bends, in semitones around the note's row
      g.strokeStyle = "#d9480f"; g.lineWidth = 1.5; g.beginPath();
      bends.forEach((b, i) => { const bx = x(s + i * state.period), by = y(p) + rowH / 2 - (b / 100) * rowH; i ? g.lineTo(bx, by) : g.moveTo(bx, by); });
      g.stroke();
    }
  }
  const now = activeAudio().currentTime || 0;  // playhead
  if (x(now) >= KEYS_W && x(now) <= w) { g.fillStyle = "#e03131"; g.fillRect(x(now), 0, 2, h); }
  const visible = (w - KEYS_W) / pxPerSec, maxStart = Math.max(0, state.duration - visible);
  $("scroll").value = maxStart ? Math.round(1000 * start / maxStart) : 0;
}

function setView(start, pxPerSec = state.view.pxPerSec) {
  const visible = ($("roll").clientWidth - KEYS_W) / pxPerSec;
  state.view = { pxPerSec: Math.min(800, Math.max(2, pxPerSec)), start: Math.max(0, Math.min(start, Math.max(0, state.duration - visible))) };
  draw();
}
$("zoom-in").addEventListener("click", () => setView(state.view.start, state.view.pxPerSec * 1.5));
$("zoom-out").addEventListener("click", () => setView(state.view.start, state.view.pxPerSec / 1.5));
$("scroll").addEventListener("input", () => {
  const visible = ($("roll").clientWidth - KEYS_W) / state.view.pxPerSec;
  setView(Number($("scroll").value) / 1000 * Math.max(0, state.duration - visible));
});
$("roll").addEventListener("wheel", (ev) => {
  ev.preventDefault();
  if (ev.ctrlKey) setView(state.view.start, state.view.pxPerSec * (ev.deltaY < 0 ? 1.2 : 1 / 1.2));
  else setView(state.view.start + (ev.deltaX || ev.deltaY) / state.view.pxPerSec);
}, { passive: false });
$("roll").addEventListener("keydown", (ev) => {
  const page = ($("roll").clientWidth - KEYS_W) / state.view.pxPerSec;
  const moves = { ArrowRight: () => setView(state.view.start + page / 4), ArrowLeft: () => setView(state.view.start - page / 4),
    "+": () => setView(state.view.start, state.view.pxPerSec * 1.5), "-": () => setView(state.view.start, state.view.pxPerSec / 1.5) };
  if (moves[ev.key]) { ev.preventDefault(); moves[ev.key](); }
});
$("roll").addEventListener("click", (ev) => {  // click to seek
  const t = state.view.start + (ev.offsetX - KEYS_W) / state.view.pxPerSec;
  if (t >= 0) { activeAudio().currentTime = t; draw(); }
});
window.addEventListener("resize", () => draw());

// ---------- players ----------
function tick() {
  const a = activeAudio();
  if (!a.paused) {
    const visible = ($("roll").clientWidth - KEYS_W) / state.view.pxPerSec;
    if (a.currentTime > state.view.start + visible * 0.9 || a.currentTime < state.view.start) setView(a.currentTime - visible * 0.1);
    else draw();
  }
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);
$("play").addEventListener("click", () => { const a = activeAudio(); if (a.paused) { a.play(); } else { a.pause(); } });
for (const a of [$("audio-original"), $("audio-midi")]) {
  a.addEventListener("play", () => { $("play").textContent = "Pause"; const other = a.id === "audio-midi" ? $("audio-original") : $("audio-midi"); other.pause(); });
  a.addEventListener("pause", () => { $("play").textContent = "Play"; });
}
for (const radio of document.querySelectorAll("input[name=listen]")) {
  radio.addEventListener("change", () => {  // A/B: carry the position over and keep playing
    const next = activeAudio(), prev = next.id === "audio-midi" ? $("audio-original") : $("audio-midi");
    const playing = !prev.paused;
    next.currentTime = prev.currentTime; prev.pause();
    if (playing) next.play();
    draw();
  });
}

// ---------- history ----------
async function loadHistory() {
  const data = await api(`${API}/tasks?limit=20`);
  const list = $("history");
  list.replaceChildren();
  for (const t of data.tasks) {
    const li = document.createElement("li"), b = document.createElement("button");
    b.type = "button";
    const when = new Date(t.created_at).toLocaleString();
    b.innerHTML = `<span></span><span class="state-${t.status}">${t.status}</span>`;
    b.firstChild.textContent = `${t.input.name || t.task_id} · ${when}`;
    b.addEventListener("click", () => (t.status === "completed" ? openTask(t) : follow(t.task_id).catch((e) => showError($("error"), e))));
    li.append(b); list.append(li);
  }
  if (!data.tasks.length) list.innerHTML = "<li class='hint'>No tasks yet.</li>";
}
$("refresh").addEventListener("click", () => loadHistory());

// ---------- snippets ----------
function showSnippets(fields, file) {
  const base = location.origin, key = "$MIDISCRIBE_KEY";
  let curl, py;
  if (file) {
    const args = Object.entries(fields).map(([k, v]) => `  -F ${k}=${v} \\`).join("\n");
    curl = `curl -X POST "${base}${API}/audio_to_midi" \\\n  -H "Authorization: ${key}" \\\n  -F audio_file=@"${file.name}" \\\n${args.replace(/ \\$/, "")}`;
    py = `import os, requests\n\nurl = "${base}${API}/audio_to_midi"\nheaders = {"Authorization": os.environ["MIDISCRIBE_KEY"]}\n` +
      `data = ${JSON.stringify(Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)])), null, 4)}\n` +
      `with open("${file.name}", "rb") as f:\n    response = requests.post(url, headers=headers, data=data, files={"audio_file": f})\nprint(response.json())`;
  } else {
    curl = `curl -X POST "${base}${API}/audio_to_midi" \\\n  -H "Authorization: ${key}" \\\n  -H "content-type: application/json" \\\n  -d '${JSON.stringify(fields)}'`;
    py = `import os, requests\n\nurl = "${base}${API}/audio_to_midi"\nheaders = {"Authorization": os.environ["MIDISCRIBE_KEY"]}\n` +
      `payload = ${JSON.stringify(fields, null, 4).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False")}\n` +
      `response = requests.post(url, headers=headers, json=payload)\nprint(response.json())`;
  }
  $("curl-snippet").textContent = curl;
  $("python-snippet").textContent = py;
  $("snippets").hidden = false;
}
for (const b of document.querySelectorAll(".copy")) {
  b.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($(b.dataset.copy).textContent); b.textContent = "Copied"; }
    catch (_) { b.textContent = "Select and copy"; }
    setTimeout(() => { b.textContent = "Copy"; }, 1500);
  });
}

start();
