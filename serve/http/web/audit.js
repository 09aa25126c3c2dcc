// Audit: records (filtered, paged), one record in full, the chain's verification, exports.

import { call, download, query } from "./api.js";
import { $, clear, h, status, when } from "./dom.js";
import { goldenForm } from "./golden.js";

let nextBefore = null;

export function initAudit(onError) {
  $("audit-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadRecords(false).catch(onError);
  });
  $("audit-more").addEventListener("click", () => loadRecords(true).catch(onError));
  $("verify-chain").addEventListener("click", () => verifyChain().catch(onError));
  $("export-jsonl").addEventListener("click", () => exportAs("jsonl").catch(onError));
  $("export-csv").addEventListener("click", () => exportAs("csv").catch(onError));
}

function isoOf(local) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? local : d.toISOString();
}

function filters() {
  return {
    user: $("f-user").value.trim(),
    text: $("f-text").value.trim(),
    since: isoOf($("f-since").value),
    until: isoOf($("f-until").value),
    refused: $("f-refused").value,
    feedback: $("f-feedback").value,
  };
}

export async function showAudit() {
  await loadRecords(false);  // first: a caller without the role gets one 403, not two
  await verifyChain();
}

async function loadRecords(more) {
  const params = { ...filters(), limit: 50 };
  if (more && nextBefore) params.before = nextBefore;
  const found = await call(`/v1/audit/records${query(params)}`);
  const body = $("audit-table").tBodies[0];
  if (!more) clear(body);
  for (const r of found.records) {
    const outcome = { not_found: "not found", unverified: "unverified (quotes)" }[r.outcome];
    const result = r.kind !== "answer" ? "" : r.refused ? (outcome ?? "refused")
      : r.unsupported ? `${r.unsupported} unsupported` : `answered, ${r.citations} citations`;
    body.append(h("tr", { class: r.refused ? "refused" : "" },
      h("td", { text: r.seq }), h("td", { text: when(r.at) }), h("td", { text: r.kind }),
      h("td", { text: r.actor }), h("td", { class: "clip", text: r.question ?? "" }),
      h("td", {}, result, r.feedback ? h("span", { class: `rating ${r.feedback}`,
        text: `${result ? " · " : ""}rated ${r.feedback}` }) : null),
      h("td", {}, h("button", {
        type: "button", "aria-label": `Open record ${r.seq}`,
        onclick: () => openRecord(r.record_id).catch((e) => status(e.message)),
      }, "Open"))));
  }
  if (!body.rows.length) body.append(h("tr", {}, h("td", { colspan: 7, text: "No records." })));
  nextBefore = found.next_before;
  $("audit-more").hidden = nextBefore === null;
  status(`${body.rows.length} audit records shown.`);
}

async function verifyChain() {
  const badge = $("chain-status");
  badge.textContent = "Verifying the chain…";
  const v = await call("/v1/audit/verify");
  badge.classList.toggle("ok", v.intact);
  badge.classList.toggle("broken", !v.intact);
  badge.textContent = v.intact
    ? `Chain intact: ${v.records} records, head #${v.head_seq}; ${v.sealed} seals, ${
      v.checkpoints} checkpoints and ${v.texts} kept texts hold`
    : `Chain BROKEN at record #${v.first_broken?.seq}: ${v.first_broken?.reason}`;
}

async function exportAs(format) {
  const name = await download(`/v1/audit/export${query({ ...filters(), format })}`,
    `enclave-audit.${format}`);
  status(`Exported ${name}.`);
}

function field(list, term, value) {
  list.append(h("dt", { text: term }), h("dd", {}, value));
}

async function openRecord(id) {
  const r = await call(`/v1/audit/records/${encodeURIComponent(id)}`);
  const section = $("audit-detail");
  section.hidden = false;
  $("audit-detail-title").textContent = `Record #${r.seq} (${r.kind})`;
  const out = clear($("audit-detail-body"));
  const meta = h("dl", { class: "meta" });
  field(meta, "Time", when(r.at));
  field(meta, "User", r.actor);
  field(meta, "Record id", r.record_id);
  const check = r.check;
  const intact = check.content_intact && check.linked !== false && check.sealed !== false
    && check.texts_intact;
  field(meta, "Record check", h("span", { class: intact ? "ok" : "broken",
    text: `content ${check.content_intact ? "intact" : "ALTERED"}, link ${
      check.linked === null ? "not checked" : check.linked ? "ok" : "BROKEN"}, seal ${
      check.sealed === null ? "not checked" : check.sealed ? "ok" : "BROKEN"}, kept texts ${
      check.texts_intact ? "intact" : "ALTERED or missing"}` }));
  out.append(meta);
  if (r.question !== null) out.append(h("h3", { text: "Question" }), h("p", { class: "question", text: r.question }));
  if (r.answer !== null) {
    const label = { not_found: "Answer (not found)", unverified: "Answer (unverified: quotes)" };
    out.append(h("h3", { text: r.refused ? (label[r.outcome] ?? "Answer (refused)") : "Answer" }),
      h("p", { class: r.refused ? "answer-text refused" : "answer-text", text: r.answer }));
  }
  const fb = r.latest_feedback;
  if (fb) {
    // The asker's latest word on the answer; each one is also a record of its own.
    const about = h("dl", { class: "meta", "aria-label": "Feedback from the asker" });
    field(about, "Rating", h("span", { class: `rating ${fb.rating}`, text: fb.rating }));
    field(about, "Comment", fb.comment ?? "(none)");
    field(about, "Given", when(fb.at));
    field(about, "Feedback record", fb.feedback_record_id);
    out.append(h("h3", { text: "Feedback from the asker" }), about);
  }
  const citations = r.body.citations || [];
  if (citations.length) {
    const list = h("ol", { class: "sources", "aria-label": "Citations" });
    for (const c of citations) {
      const ok = c.supported !== false;
      list.append(h("li", { class: ok ? "source supported" : "source unsupported" },
        h("span", { class: "n", text: `[${c.n}] ` }), h("span", { class: "src", text: c.source }),
        c.page ? ` p. ${c.page}` : "",
        h("span", { class: ok ? "flag ok" : "flag", text: ok ? " supported" : " unsupported" }),
        h("q", { class: "quote", text: c.quote ?? "" })));
    }
    out.append(h("h3", { text: "Citations and their verification" }), list);
  }
  if (r.passages.length) {
    const list = h("ol", { class: "passages", "aria-label": "Retrieved passages" });
    for (const p of r.passages) {
      const cited = p.cited_as.length ? ` · cited as ${p.cited_as.map((n) => `[${n}]`).join(" ")}` : "";
      // An altered kept text is still shown, marked: it is not what the record retrieved.
      const altered = p.intact === false;
      list.append(h("li", { class: `${p.cited_as.length ? "passage cited" : "passage"}${altered ? " altered" : ""}` },
        h("p", { class: "passage-meta",
          text: `#${p.rank ?? "–"} ${p.source} (version ${p.version.slice(0, 12)})${cited}` }),
        altered ? h("p", { class: "flag broken",
          text: "ALTERED: this kept text no longer matches the hash the record holds" }) : null,
        p.text !== null ? h("blockquote", { class: "passage", text: p.text })
          : h("p", { class: "hint", text: `text not available: ${p.purge_reason ?? "purged"}` })));
    }
    out.append(h("h3", { text: "Retrieved passages" }), list);
  }
  const other = { ...r.body };
  for (const k of ["citations", "retrieved", "question", "answer"]) delete other[k];
  out.append(h("details", {}, h("summary", { text: "Full record body (JSON)" }),
    h("pre", { class: "json", text: JSON.stringify(other, null, 2) })));
  if (r.kind === "answer" && r.question !== null) out.append(...goldenForm(r));
  section.scrollIntoView({ block: "start" });
  $("audit-detail-title").focus?.();
  status(`Opened record #${r.seq}.`);
}

// Signing out leaves nothing of the trail on the page.
export function resetAudit() {
  nextBefore = null;
  clear($("audit-table").tBodies[0]);
  clear($("audit-detail-body"));
  $("audit-detail").hidden = true;
  $("audit-more").hidden = true;
  $("audit-filters").reset();
  const badge = $("chain-status");
  badge.className = "chain-status";
  badge.textContent = "Chain not checked yet";
}
