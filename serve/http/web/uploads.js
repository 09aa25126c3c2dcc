// Admin: upload files or a folder from this computer into a job. Files are chosen or dropped
// (a dropped folder is read with its subfolders), sent in one request to POST /v1/admin/jobs
// with a progress bar, and the job then shows each file's status and error. The server
// enforces the limits (size per file); the page only shows what it says.

import { getKey } from "./api.js";
import { $, clear, h, status } from "./dom.js";

let chosen = [];

function size(bytes) {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MB`
    : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${bytes} B`;
}

function show() {
  const list = clear($("upload-list"));
  for (const file of chosen) {
    list.append(h("li", { text: `${file.webkitRelativePath || file.name} (${size(file.size)})` }));
  }
  const button = $("upload-send");
  button.disabled = chosen.length === 0;
  button.textContent = chosen.length ? `Upload ${chosen.length} file${chosen.length === 1 ? "" : "s"}`
    : "Upload";
}

function choose(files) {
  chosen = [...chosen, ...files];
  $("upload-error").textContent = "";
  show();
}

// Every file under a dropped folder (the entries API reads a folder in batches).
async function filesOf(entry) {
  if (entry.isFile) return [await new Promise((ok, fail) => entry.file(ok, fail))];
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const out = [];
  for (;;) {
    const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
    if (!batch.length) return out;
    for (const child of batch) out.push(...await filesOf(child));
  }
}

async function dropped(event) {
  event.preventDefault();
  $("upload-zone").classList.remove("over");
  const entries = [...event.dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.length) {
    choose([...event.dataTransfer.files]);
    return;
  }
  const files = [];
  for (const entry of entries) files.push(...await filesOf(entry));
  choose(files);
}

function send(onJob) {
  const groups = $("upload-groups").value.split(",").map((s) => s.trim()).filter(Boolean);
  const count = chosen.length;
  const where = groups.length ? `readable by ${groups.join(", ")}` : "public (readable by everyone)";
  if (!count || !window.confirm(`Upload ${count} file(s) and ingest them, ${where}?`)) return;
  const form = new FormData();
  for (const file of chosen) form.append("files", file, file.name);
  for (const group of groups) form.append("groups", group);
  const request = new XMLHttpRequest();
  const bar = $("upload-progress");
  bar.hidden = false;
  bar.value = 0;
  $("upload-send").disabled = true;
  request.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; };
  request.onload = () => {
    bar.hidden = true;
    let body = {};
    try { body = JSON.parse(request.responseText); } catch { /* not JSON: shown below */ }
    if (request.status === 202) {
      chosen = [];
      show();
      $("upload-groups").value = "";
      status(`Uploaded ${count} file(s): job ${String(body.job_id).slice(0, 8)}.`);
      onJob(body.job_id);
    } else {
      $("upload-error").textContent = `Upload refused (${request.status}): ${body.detail || request.statusText}`;
      $("upload-send").disabled = false;
    }
  };
  request.onerror = () => {
    bar.hidden = true;
    $("upload-error").textContent = "Upload failed: the server could not be reached.";
    $("upload-send").disabled = false;
  };
  request.open("POST", "/v1/admin/jobs");
  request.setRequestHeader("Authorization", `Bearer ${getKey() || ""}`);
  request.send(form);
}

export function initUploads(onJob) {
  const zone = $("upload-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => dropped(e).catch((err) => {
    $("upload-error").textContent = `Could not read what was dropped: ${err.message}`;
  }));
  for (const id of ["upload-files", "upload-folder"]) {
    $(id).addEventListener("change", (e) => { choose([...e.target.files]); e.target.value = ""; });
  }
  $("upload-clear").addEventListener("click", () => { chosen = []; show(); });
  $("upload-send").addEventListener("click", () => send(onJob));
  show();
}

export function resetUploads() {
  chosen = [];
  $("upload-error").textContent = "";
  $("upload-groups").value = "";
  $("upload-progress").hidden = true;
  show();
}
