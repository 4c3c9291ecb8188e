// Plays a user of the upload page against a real docmill server, under Node.
//
//   node page_user.mjs BASE_URL SCRIPT_FILE KEY...
//
// The page's own <script> runs with only as much DOM as it touches. The user
// opens the page, picks two files and uploads them, then types each KEY in
// turn into the key form, and lets one status poll run. Prints JSON: every
// request the page sent (method, path, Authorization) and what it showed.
// With PAGE_USER_FAIL_POLL=STATUS that poll's list answer is a problem of
// that status instead of the server's, as a rate-limited or unavailable
// server would send.
import { readFileSync } from "node:fs";

const [base, scriptFile, ...keys] = process.argv.slice(2);

class Element {
  constructor(fields = {}) {
    Object.assign(this, { hidden: false, textContent: "", children: [] }, fields);
  }
  append(...children) { this.children.push(...children); }
  replaceChildren(...children) { this.children = children; }
}

const fileInput = { files: [] };
const keyInput = { value: "" };
const elements = {
  key: new Element({ hidden: true, key: keyInput, reset() { keyInput.value = ""; } }),
  upload: new Element({ file: fileInput, reset() { fileInput.files = []; } }),
};
globalThis.document = {
  getElementById: (id) => (elements[id] ??= new Element()),
  createElement: () => new Element(),
};
const stored = new Map();
globalThis.sessionStorage = {
  getItem: (name) => stored.get(name) ?? null,
  setItem: (name, value) => stored.set(name, String(value)),
};
let poll = null;
globalThis.setInterval = (callback) => { poll = callback; };

const sent = [];
let inFlight = 0;
const serverFetch = globalThis.fetch;
let failList = null;
globalThis.fetch = async (path, options = {}) => {
  sent.push([options.method ?? "GET", path, options.headers?.Authorization ?? null]);
  if (failList !== null && path.startsWith("/documents?")) {
    const problem = { type: "urn:docmill:problem:test", status: failList,
      title: "Refused", detail: "refused by page_user.mjs" };
    return new Response(JSON.stringify(problem), { status: failList,
      headers: { "content-type": "application/problem+json" } });
  }
  inFlight += 1;
  try {
    return await serverFetch(base + path, options);
  } finally {
    inFlight -= 1;
  }
};
// The page starts requests it does not await (the first refresh); wait for
// the network to go quiet, then for the handlers' last steps to run.
async function settle() {
  do await new Promise((resolve) => setTimeout(resolve, 50)); while (inFlight);
  await new Promise((resolve) => setTimeout(resolve, 50));
}
const submit = (form) => form.onsubmit({ preventDefault() {}, target: form });
const shown = () => ({
  keyFormHidden: elements.key.hidden,
  keynote: elements.keynote?.textContent ?? "",
  note: elements.note?.textContent ?? "",
  picked: fileInput.files.length,
  rows: elements.rows?.children.length ?? 0,
  stale: elements.stale?.hidden === false ? elements.stale.textContent : "",
});

const steps = [];
(0, eval)(readFileSync(scriptFile, "utf8"));
await settle();
steps.push({ step: "opened", sent: sent.splice(0), ...shown() });

fileInput.files = [
  new File(["first file"], "a.txt", { type: "text/plain" }),
  new File(["second file"], "b.txt", { type: "text/plain" }),
];
await submit(elements.upload);
await settle();
steps.push({ step: "uploaded", sent: sent.splice(0), ...shown() });

for (const key of keys) {
  keyInput.value = key;
  await submit(elements.key);
  await settle();
  steps.push({ step: "key given", sent: sent.splice(0), ...shown() });
}

if (process.env.PAGE_USER_FAIL_POLL) failList = Number(process.env.PAGE_USER_FAIL_POLL);
await poll();
await settle();
steps.push({ step: "polled", sent: sent.splice(0), ...shown() });
failList = null;
await poll();
await settle();
steps.push({ step: "polled", sent: sent.splice(0), ...shown() });
console.log(JSON.stringify(steps));
