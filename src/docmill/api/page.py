"""The small web page at ``/``: upload files, watch them, read their text."""

from __future__ import annotations

import base64
import hashlib

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>docmill</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem;
         padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  form { border: 1px dashed #999; padding: 1rem; border-radius: 6px; }
  table { border-collapse: collapse; width: 100%; margin-top: 1.5rem; }
  th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #ddd;
           font-size: .9rem; }
  .failed { color: #a40000; } .completed { color: #176b00; }
  pre { white-space: pre-wrap; background: #f6f6f6; padding: 1rem; max-height: 30rem;
        overflow: auto; }
  a { cursor: pointer; }
  #key { margin-bottom: 1rem; } #key input { width: 24rem; }
  #stale { background: #fff4e5; border: 1px solid #e0a040; padding: .5rem .75rem;
           border-radius: 6px; }
</style>
</head>
<body>
<h1>docmill</h1>
<form id="key" hidden>
  <label>This server needs an API key:
    <input name="key" type="password" autocomplete="off" placeholder="dm_...">
  </label>
  <button>Use</button>
  <span id="keynote"></span>
</form>
<form id="upload">
  <input type="file" name="file" multiple required>
  <button>Upload</button>
  <span id="note"></span>
</form>
<p id="stale" role="status" hidden></p>
<table>
  <thead><tr><th>Document</th><th>Status</th><th>Type</th><th>Pages</th>
  <th>Words</th><th>Created</th></tr></thead>
  <tbody id="rows"></tbody>
</table>
<p id="textnote" hidden></p>
<pre id="text" hidden></pre>
<script>
// Only this much of a document's text is shown: a browser asked to lay out
// tens of megabytes in one <pre> freezes the tab.
const SHOWN_BYTES = 1 << 20;
const rows = document.getElementById("rows");
const keyForm = document.getElementById("key");
const cell = (text) => { const td = document.createElement("td");
  td.textContent = text ?? ""; return td; };
// The key stays in this tab's session storage, never in the page's address.
async function call(path, options = {}) {
  const key = sessionStorage.getItem("docmill-key");
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const answer = await fetch(path, { ...options, headers });
  if (answer.status === 401) {
    keyForm.hidden = false;
    document.getElementById("keynote").textContent =
      key ? "that key was refused" : "";
  }
  return answer;
}
// What a refusal says: the problem's detail when it is one, else the status.
async function refusal(answer) {
  let detail = "";
  try { detail = (await answer.json()).detail ?? ""; } catch { /* not JSON */ }
  return detail ? `${answer.status} ${detail}` : `${answer.status}`;
}
keyForm.onsubmit = (event) => {
  event.preventDefault();
  sessionStorage.setItem("docmill-key", event.target.key.value.trim());
  event.target.reset(); keyForm.hidden = true;
  return Promise.all([refresh(), upload(waiting.splice(0))]);
};
// A list that could not be fetched stays on screen, marked as stale, so
// that no one takes it for the current state.
async function refresh() {
  const stale = document.getElementById("stale");
  let answer;
  try {
    answer = await call("/documents?limit=50");
  } catch {
    stale.textContent =
      "The server cannot be reached; the list below may be out of date.";
    stale.hidden = false; return;
  }
  if (!answer.ok) {
    if (answer.status !== 401) {
      stale.textContent = `The list could not be refreshed (${await refusal(answer)}); `
        + "it may be out of date.";
      stale.hidden = false;
    }
    return;
  }
  stale.hidden = true; stale.textContent = "";
  const page = await answer.json();
  rows.replaceChildren(...page.items.map((doc) => {
    const tr = document.createElement("tr");
    const name = cell(doc.title || doc.filename || doc.id);
    if (doc.status === "completed") {
      const link = document.createElement("a");
      link.textContent = name.textContent; name.textContent = "";
      link.onclick = () => showText(doc.id); name.append(link);
    }
    const status = cell(doc.status === "failed" && doc.error
      ? `failed: ${doc.error.code}` : doc.status);
    status.className = doc.status;
    if (doc.error) status.title = doc.error.message;
    tr.append(name, status, cell(doc.result?.mime_type), cell(doc.result?.page_count),
      cell(doc.result?.word_count), cell(new Date(doc.created_at).toLocaleString()));
    return tr;
  }));
}
async function showText(id) {
  const pre = document.getElementById("text");
  const note = document.getElementById("textnote");
  const answer = await call(`/documents/${id}/text`);
  if (!answer.ok) return;
  const reader = answer.body.getReader();
  const decoder = new TextDecoder();
  let text = "", read = 0, more = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (read + value.length > SHOWN_BYTES) {
      // A character cut in two at the end is dropped by the decoder.
      text += decoder.decode(value.subarray(0, SHOWN_BYTES - read), { stream: true });
      more = true; reader.cancel(); break;
    }
    read += value.length;
    text += decoder.decode(value, { stream: true });
  }
  pre.textContent = text;
  note.textContent = more
    ? `The first ${SHOWN_BYTES >> 20} MiB of the text; `
      + `GET /documents/${id}/text has all of it.`
    : "";
  note.hidden = !more; pre.hidden = false;
}
// Files refused for want of a key wait here, and go again once one is given,
// so that a user who picked them before typing a key need not pick them twice.
let waiting = [];
async function upload(files) {
  const note = document.getElementById("note");
  for (const [i, file] of files.entries()) {
    const body = new FormData(); body.append("file", file);
    const answer = await call("/documents", { method: "POST", body });
    if (answer.status === 401) {
      // The rest would meet the same key, so they wait without being sent.
      waiting.push(...files.slice(i));
      note.textContent = waiting.length === 1
        ? "1 file waits for an API key" : `${waiting.length} files wait for an API key`;
      return;
    }
    note.textContent = answer.ok
      ? `queued ${file.name}` : `refused ${file.name}: ${await refusal(answer)}`;
  }
  if (files.length) await refresh();
}
document.getElementById("upload").onsubmit = async (event) => {
  event.preventDefault();
  const files = [...event.target.file.files];
  event.target.reset();
  await upload(files);
};
refresh(); setInterval(refresh, 2000);
</script>
</body>
</html>
"""


def _digest(element: str) -> str:
    body = PAGE.split(f"<{element}>", 1)[1].split(f"</{element}>", 1)[0]
    digest = hashlib.sha256(body.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


# The page's own inline script and style are allowed by their hashes, nothing
# else: a document title or error message that slipped past textContent
# could not run script, and no other site may frame the page (clickjacking
# the upload form or the key field). Computed once, at import.
PAGE_HEADERS = {
    "Content-Security-Policy": "; ".join(
        [
            "default-src 'none'",
            f"script-src {_digest('script')}",
            f"style-src {_digest('style')}",
            "connect-src 'self'",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
