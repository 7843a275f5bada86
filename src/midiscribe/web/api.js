// The public API as a client calls it, and its errors in the form's words.

export const API = "/api/public/v1";

let currentKey = null;
let onUnauthorized = () => {};

export function setKey(key) { currentKey = key; }
export function getKey() { return currentKey; }
/** Called when the server refuses the key on a request made after sign-in (revoked or deleted). */
export function whenUnauthorized(handler) { onUnauthorized = handler; }

// API field names (and the core's option names that some messages carry) as the form labels them.
const FIELD_LABELS = {
  minimum_frequency: "Lowest frequency (Hz)", min_frequency_hz: "Lowest frequency (Hz)",
  maximum_frequency: "Highest frequency (Hz)", max_frequency_hz: "Highest frequency (Hz)",
  onset_threshold: "Onset threshold", frame_threshold: "Frame threshold",
  minimum_note_length: "Minimum note length (ms)", min_note_length_ms: "Minimum note length (ms)",
  midi_program: "MIDI program", program: "MIDI program", audio_path: "Audio URL", audio_url: "Audio URL",
  audio_file: "Audio file", sonify_midi: "Sonified WAV", save_note_events: "Note events CSV",
  include_pitch_bends: "Pitch bends", webhook_url: "Webhook URL", quantize: "Quantize", model: "Model",
};
const FIELD_RE = new RegExp(`\\b(?:body\\.)?(${Object.keys(FIELD_LABELS).join("|")})\\b`, "g");

/** A message with API field names replaced by the labels the page shows. */
export function inFormWords(message) {
  return String(message).replace(FIELD_RE, (_, name) => FIELD_LABELS[name]);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(`${status} ${code}: ${inFormWords(message)}`);
    this.status = status;
    this.code = code;
  }
}

/** fetch with the key; JSON in and out; ApiError on failure; `raw` answers the Response. */
export async function api(path, { method = "GET", json, form, raw = false, signal, key = currentKey } = {}) {
  const headers = { Authorization: key || "", accept: "application/json" };
  let body;
  if (json !== undefined) { headers["content-type"] = "application/json"; body = JSON.stringify(json); }
  if (form !== undefined) body = form;
  const res = await fetch(path, { method, headers, body, signal });
  if (raw && res.ok) return res;
  let data = null;
  try { data = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok || (data && data.success === false)) {
    const err = (data && data.error) || {};
    const error = new ApiError(res.status, err.code || res.statusText || "error", err.message || "request failed");
    if (res.status === 401 && key === currentKey && currentKey) onUnauthorized(error);
    throw error;
  }
  return data;
}

export function isAbort(err) { return err && err.name === "AbortError"; }

/** Show an error (or hide the box when `err` is null). */
export function showError(el, err) {
  el.textContent = err ? (err instanceof ApiError ? err.message : inFormWords(err.message || err)) : "";
  el.hidden = !err;
}
