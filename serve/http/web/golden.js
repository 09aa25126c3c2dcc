// Audit: "Add to golden set" under an answer's record. An auditor makes the recorded question a
// golden question, correcting what a good answer would cite and whether it is answerable.

import { call } from "./api.js";
import { h } from "./dom.js";

let lastSet = "";  // the set used last: the next answer most likely goes to the same one

// What the server takes by default: the documents the answer cited and the verifier backed.
function cited(record) {
  const ids = (record.body.citations || []).filter((c) => c.supported !== false).map((c) => c.doc_id);
  return [...new Set(ids)];
}

export function goldenForm(record) {
  const result = h("p", { class: "golden-result", role: "status" });
  const set = h("input", { id: "golden-set", name: "set", type: "text", required: true,
    spellcheck: "false", maxlength: 63, value: lastSet,
    "aria-describedby": "golden-set-hint" });
  const documents = h("textarea", { id: "golden-documents", name: "documents", rows: 3,
    spellcheck: "false", "aria-describedby": "golden-documents-hint" });
  documents.value = cited(record).join("\n");
  const answerable = h("input", { id: "golden-answerable", name: "answerable", type: "checkbox",
    checked: record.outcome === "answered" });
  const reference = h("textarea", { id: "golden-reference", name: "reference", rows: 2,
    maxlength: 4000 });
  const form = h("form", { class: "golden-form", "aria-labelledby": "golden-title" },
    h("label", { for: "golden-set", text: "Golden set" }), set,
    h("p", { id: "golden-set-hint", class: "hint",
      text: "Lower-case letters, digits, '.', '_' or '-'; a new name makes a new set." }),
    h("label", { for: "golden-documents", text: "Expected documents (one per line)" }), documents,
    h("p", { id: "golden-documents-hint", class: "hint",
      text: "Document ids or source paths; at first, what the answer cited and the verifier backed." }),
    h("label", { class: "check", for: "golden-answerable" }, answerable,
      "Answerable from the documents"),
    h("label", { for: "golden-reference", text: "Reference answer (optional)" }), reference,
    h("div", {}, h("button", { type: "submit", text: "Add to golden set" })), result);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = set.value.trim();
    if (!name) return;
    // Confirmed first: the addition is recorded on the trail under the auditor's name.
    if (!window.confirm(`Add this question to the golden set "${name}"?`)) return;
    add(record, name, {
      documents: documents.value.split("\n").map((s) => s.trim()).filter(Boolean),
      answerable: answerable.checked,
      reference: reference.value.trim() || undefined,
    }, result).catch(() => {});
  });
  return [h("h3", { id: "golden-title", text: "Add to golden set" }), form];
}

async function add(record, name, fields, result) {
  result.className = "golden-result";
  result.textContent = "Adding…";
  try {
    const q = await call(`/v1/golden/sets/${encodeURIComponent(name)}/questions`,
      { method: "POST", body: { from_record: record.record_id, ...fields } });
    lastSet = name;
    result.classList.add("ok");
    result.textContent = `Added to the golden set "${name}" as ${q.id} (${
      q.answerable ? "answerable" : "not answerable"}, ${q.documents.length} expected documents).`;
  } catch (error) {
    result.classList.add("error");
    result.textContent = `Not added: ${error.message}`;
  }
}
