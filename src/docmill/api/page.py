"""The small web page at ``/``: upload files, watch them, read their text."""

from __future__ import annotations

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
</style>
</head>
<body>
<h1>docmill</h1>
<form id="upload">
  <input type="file" name="file" multiple required>
  <button>Upload</button>
  <span id="note"></span>
</form>
<table>
  <thead><tr><th>Document</th><th>Status</th><th>Type</th><th>Pages</th>
  <th>Words</th><th>Created</th></tr></thead>
  <tbody id="rows"></tbody>
</table>
<pre id="text" hidden></pre>
<script>
const rows = document.getElementById("rows");
const cell = (text) => { const td = document.createElement("td");
  td.textContent = text ?? ""; return td; };
async function refresh() {
  const answer = await fetch("/documents?limit=50");
  if (!answer.ok) return;
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
  pre.textContent = await (await fetch(`/documents/${id}/text`)).text();
  pre.hidden = false;
}
document.getElementById("upload").onsubmit = async (event) => {
  event.preventDefault();
  const files = event.target.file.files;
  for (const file of files) {
    const body = new FormData(); body.append("file", file);
    const answer = await fetch("/documents", { method: "POST", body });
    document.getElementById("note").textContent =
      answer.ok ? `queued ${file.name}` : `refused ${file.name}: ${answer.status}`;
  }
  event.target.reset(); refresh();
};
refresh(); setInterval(refresh, 2000);
</script>
</body>
</html>
"""
