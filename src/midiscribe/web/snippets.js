// "This request as code": the same request as curl and as Python.
import { API } from "./api.js";

export function snippets(fields, file) {
  const base = location.origin, key = "$MIDISCRIBE_KEY";
  const head = `import os, requests\n\nurl = "${base}${API}/audio_to_midi"\nheaders = {"Authorization": os.environ["MIDISCRIBE_KEY"]}\n`;
  if (file) {
    const args = Object.entries(fields).map(([k, v]) => `  -F ${k}=${v}`).join(" \\\n");
    const curl = `curl -X POST "${base}${API}/audio_to_midi" \\\n  -H "Authorization: ${key}" \\\n  -F audio_file=@"${file.name}" \\\n${args}`;
    const data = JSON.stringify(Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)])), null, 4);
    const py = `${head}data = ${data}\nwith open("${file.name}", "rb") as f:\n    response = requests.post(url, headers=headers, data=data, files={"audio_file": f})\nprint(response.json())`;
    return { curl, py };
  }
  const curl = `curl -X POST "${base}${API}/audio_to_midi" \\\n  -H "Authorization: ${key}" \\\n  -H "content-type: application/json" \\\n  -d '${JSON.stringify(fields)}'`;
  const payload = JSON.stringify(fields, null, 4).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
  const py = `${head}payload = ${payload}\nresponse = requests.post(url, headers=headers, json=payload)\nprint(response.json())`;
  return { curl, py };
}
