// Admin: documents. Find them by text, group, status, type and date, page through them,
// open one (versions, chunks, pages, groups, the job that last wrote it, its last error),
// change its groups, delete it, or delete it for legal reasons. Every change asks first; a
// refused one shows the server's message and leaves the page as it was.

import { call, query } from "./api.js";
import { $, clear, h, short, status, when } from "./dom.js";

const PAGE = 20;
let offset = 0;
let opened = null;

function filters() {
  const day = (id) => ($(id).value ? new Date(`${$(id).value}T00:00:00`).toISOString() : "");
  return {
    text: $("d-text").value.trim(), group: $("d-group").value.trim(),
    status: $("d-status").value, type: $("d-type").value.trim(),
    since: day("d-since"), until: day("d-until"),
  };
}

function state(d) {
  const parts = [d.active ? "active" : "not searchable"];
  if (d.failed) parts.push("last ingest failed");
  if (d.low_confidence_pages) parts.push(`${d.low_confidence_pages} low-confidence OCR page(s)`);
  return parts.join("; ");
}

export async function refreshDocuments(at = offset) {
  offset = Math.max(0, at);
  const found = await call(`/v1/admin/documents${query({ ...filters(), limit: PAGE, offset })}`);
  const body = clear($("documents-table").tBodies[0]);
  for (const d of found.documents) {
    body.append(h("tr", { class: "document", "data-doc": d.doc_id },
      h("td", {}, h("span", { text: d.display_name }), h("br"),
        h("small", { class: "clip", text: d.source })),
      h("td", { text: d.type || "–" }),
      h("td", { class: "doc-groups", text: d.groups.join(", ") || "public" }),
      h("td", { text: state(d) }),
      h("td", { class: d.stored_chunks === d.chunks ? "" : "bad",
        text: d.stored_chunks === d.chunks ? d.chunks : `${d.chunks} (the store holds ${d.stored_chunks})` }),
      h("td", { text: when(d.updated_at) }),
      h("td", {}, h("button", { type: "button", "aria-label": `Open document ${d.display_name}`,
        onclick: () => openDocument(d.doc_id).catch(shown) }, "Open"))));
  }
  if (!found.documents.length) {
    body.append(h("tr", {}, h("td", { colspan: 7, text: "No documents match." })));
  }
  const last = Math.min(offset + found.documents.length, found.total);
  $("documents-range").textContent = found.total
    ? `${offset + 1}–${last} of ${found.total}` : "0 of 0";
  $("documents-prev").disabled = offset === 0;
  $("documents-next").disabled = last >= found.total;
  if (opened) await openDocument(opened, false).catch(() => { opened = null; $("document-detail").hidden = true; });
}

function shown(error) {
  if (error.status === 401) throw error;
  $("documents-error").textContent = error.message;
}

async function openDocument(id, announce = true) {
  const d = await call(`/v1/admin/documents/${encodeURIComponent(id)}`);
  opened = d.doc_id;
  $("document-detail").hidden = false;
  $("document-detail-title").textContent = `Document ${d.display_name}`;
  const out = clear($("document-detail-body"));
  const meta = h("dl", { class: "meta" });
  const add = (t, v) => meta.append(h("dt", { text: t }), h("dd", { text: v }));
  add("Source", d.source);
  add("Title", d.title || "–");
  add("Groups", d.groups.join(", ") || "public (everyone)");
  add("Status", state(d));
  add("Chunks", `${d.chunks} (in the store: ${d.stored_chunks})`);
  add("Pages", d.pages ?? "–");
  add("Embedded by", d.embedder || "not recorded");
  add("Changed", when(d.updated_at));
  if (d.last_error) add("Last error", d.last_error);
  if (d.last_job) {
    add("Last job", `${short(d.last_job.job_id)}: ${d.last_job.status}`
      + (d.last_job.reason ? ` (${d.last_job.reason})` : ""));
  }
  out.append(meta);
  const versions = h("table", { class: "list" }, h("caption", { text: "Versions, newest first" }),
    h("thead", {}, h("tr", {}, ...["Version", "Status", "Chunks", "Pages", "Created", "Error"]
      .map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, d.versions.map((v) => h("tr", {},
      h("td", { class: "mono", text: short(v.version) }), h("td", { text: v.status }),
      h("td", { text: v.chunks }), h("td", { text: v.pages ?? "–" }),
      h("td", { text: when(v.created_at) }), h("td", { text: v.error || "" })))));
  out.append(h("div", { class: "table-wrap" }, versions));
  $("document-regroup").onclick = () => regroup(d).catch(shown);
  $("document-delete").onclick = () => remove(d, null).catch(shown);
  $("document-legal").onclick = () => legal(d).catch(shown);
  if (announce) status(`Opened ${d.display_name}.`);
}

async function regroup(d) {
  const text = window.prompt(`Groups that may read ${d.display_name} (comma-separated; empty: everyone)`,
    d.groups.join(", "));
  if (text === null) return;
  const groups = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (!window.confirm(`Set the groups of ${d.display_name} to: ${groups.join(", ") || "public (everyone)"}?`)) return;
  $("documents-error").textContent = "";
  await call(`/v1/admin/documents/${encodeURIComponent(d.doc_id)}/groups`,
    { method: "PATCH", body: { groups } });
  status(`Groups of ${d.display_name} changed.`);
  await refreshDocuments();
}

async function remove(d, reason) {
  const what = reason ? `Delete ${d.display_name} for legal reasons ("${reason}"), purging the audit's kept texts of it?`
    : `Delete ${d.display_name} from enclave? It leaves the index and the registry.`;
  if (!window.confirm(what)) return;
  $("documents-error").textContent = "";
  await call(`/v1/admin/documents/${encodeURIComponent(d.doc_id)}${query({ legal_reason: reason })}`,
    { method: "DELETE" });
  status(`${d.display_name} deleted.`);
  opened = null;
  $("document-detail").hidden = true;
  await refreshDocuments();
}

async function legal(d) {
  const reason = window.prompt(`The legal reason for deleting ${d.display_name} (recorded)`);
  if (reason === null || !reason.trim()) return;
  await remove(d, reason.trim());
}

export function initDocuments(onError) {
  $("documents-form").addEventListener("submit", (event) => {
    event.preventDefault();
    opened = null;
    $("document-detail").hidden = true;
    $("documents-error").textContent = "";
    refreshDocuments(0).catch((e) => (e.status === 400 || e.status === 422 ? shown(e) : onError(e)));
  });
  $("documents-prev").addEventListener("click", () => refreshDocuments(offset - PAGE).catch(onError));
  $("documents-next").addEventListener("click", () => refreshDocuments(offset + PAGE).catch(onError));
}

export function resetDocuments() {
  offset = 0;
  opened = null;
  clear($("documents-table").tBodies[0]);
  clear($("document-detail-body"));
  $("document-detail").hidden = true;
  $("documents-error").textContent = "";
  $("documents-form").reset();
}
