// Chat: ask with a streamed answer, [n] citations as buttons, the cited passage in a panel.

import { call, query, stream } from "./api.js";
import { $, clear, h, status, when } from "./dom.js";
import { feedbackBox } from "./feedback.js";

let conversationId = null;
let busy = false;

export function resetChat() {
  conversationId = null;
  clear($("turns"));
  clear($("conversations"));
}

export function initChat(onAuthError) {
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    ask(onAuthError);
  });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("new-conversation").addEventListener("click", () => {
    conversationId = null;
    clear($("turns"));
    markCurrent();
    status("New conversation.");
    $("question").focus();
  });
  $("citation-close").addEventListener("click", () => $("citation-panel").close());
}

export async function loadConversations() {
  const list = $("conversations");
  try {
    const found = await call(`/v1/conversations${query({ limit: 50 })}`);
    clear(list);
    if (!found.conversations.length) {
      list.append(h("li", { class: "empty", text: "No conversations yet." }));
    }
    for (const c of found.conversations) {
      list.append(h("li", {},
        h("button", {
          type: "button", class: "conv", "data-id": c.conversation_id,
          "aria-label": `Open conversation: ${c.title}`,
          onclick: () => openConversation(c.conversation_id),
        }, h("span", { class: "conv-title", text: c.title }),
        h("span", { class: "conv-when", text: `${when(c.updated_at)} · ${c.turns} ${c.turns === 1 ? "turn" : "turns"}` }))));
    }
    markCurrent();
  } catch (error) {
    clear(list).append(h("li", { class: "error", text: error.message }));
  }
}

function markCurrent() {
  for (const button of $("conversations").querySelectorAll("button.conv")) {
    if (button.dataset.id === conversationId) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}

async function openConversation(id) {
  try {
    const found = await call(`/v1/conversations/${encodeURIComponent(id)}`);
    conversationId = found.conversation_id;
    const turns = clear($("turns"));
    for (const turn of found.messages) {
      const { answerBox } = addTurn(turn.question);
      renderAnswer(answerBox, turn.answer);
      // The server withholds an answer whose documents the user can no longer read, and
      // redacts one whose document was deleted for legal reasons; the text says which.
      if (turn.withheld || turn.redacted) {
        answerBox.querySelector(".feedback")?.remove();  // nothing shown left to rate
        answerBox.classList.add("withheld");
        answerBox.prepend(h("p", { class: "refusal-tag",
          text: turn.withheld ? "Withheld" : "Redacted" }));
      }
    }
    markCurrent();
    status(`Opened conversation "${found.title}" (${found.messages.length} turns).`);
    turns.lastElementChild?.scrollIntoView({ block: "nearest" });
  } catch (error) {
    status(`Could not open the conversation: ${error.message}`);
  }
}

function addTurn(question) {
  const answerBox = h("div", { class: "answer streaming" });
  const item = h("li", { class: "turn" },
    h("p", { class: "question" }, h("span", { class: "who-label", text: "You: " }), question),
    answerBox);
  $("turns").append(item);
  return { item, answerBox };
}

async function ask(onAuthError) {
  if (busy) return;
  const box = $("question");
  const question = box.value.trim();
  if (!question) {
    status("Type a question first.");
    box.focus();
    return;
  }
  busy = true;
  $("ask").disabled = true;
  box.value = "";
  const { item, answerBox } = addTurn(question);
  // Sentences arrive one by one, each once the server has verified it; nothing else of the
  // model's words is shown (raw tokens come only under a server debugging setting).
  const live = h("p", { class: "answer-text live", "aria-live": "polite" });
  const tokens = h("p", { class: "tokens", hidden: true });
  answerBox.append(live, tokens);
  item.scrollIntoView({ block: "nearest" });
  status("Answering…");
  const body = { question, stream: true };
  if (conversationId) body.conversation_id = conversationId;
  let answered = false;
  try {
    await stream("/v1/chat", body, (name, data) => {
      if (name === "sentence") {
        if (live.childNodes.length) live.append(" ");
        live.append(h("span", { class: data.supported ? "sentence" : "sentence unsupported",
          text: data.text ?? "" }));
        status(`Answering… ${data.index + 1} verified sentence${data.index ? "s" : ""}`);
      } else if (name === "token") {
        tokens.hidden = false;
        tokens.append(document.createTextNode(data.text ?? ""));
      } else if (name === "answer") {
        answered = true;
        conversationId = data.conversation_id;
        renderAnswer(answerBox, data);
        status(OUTCOME_STATUS[data.outcome] ?? (data.refused ? "Not answered." : "Answer ready."));
      } else if (name === "error") {
        answered = true;
        showError(answerBox, data.detail || data.error || "answering failed");
        status(`Answering failed: ${data.detail || data.error}`);
      }
    });
    if (!answered) showError(answerBox, "the answer stream ended early");
    loadConversations();
  } catch (error) {
    showError(answerBox, error.message);
    status(`Answering failed: ${error.message}`);
    if (error.status === 401) onAuthError(error);
  } finally {
    busy = false;
    $("ask").disabled = false;
    box.focus();
  }
}

function showError(answerBox, message) {
  answerBox.classList.remove("streaming");
  answerBox.classList.add("failed");
  clear(answerBox).append(h("p", { class: "error", text: `Error: ${message}` }));
}

function label(c, k = 1) {
  const page = c.page ? `, page ${c.page}` : "";
  return `Citation ${c.n}${k > 1 ? `, quote ${k}` : ""}: ${c.source}${page}`;
}

const OUTCOME_STATUS = {
  answered: "Answer ready.",
  not_found: "The documents you can access do not answer this question.",
  unverified: "No sentence of the answer could be verified: the closest passages are quoted.",
};
const OUTCOME_TAG = { not_found: "Not found", unverified: "Unverified: quotes, not an answer" };
const OUTCOME_HEADING = { not_found: "Closest passages", unverified: "Quotes" };

// Render a ChatResponse body: text with [n] as buttons, then the list of sources.
// One number may carry several quotes (one per sentence citing the same passage): the k-th
// [n] in the text opens the k-th citation numbered n.
export function renderAnswer(answerBox, data) {
  const refused = Boolean(data.refused);
  answerBox.classList.remove("streaming");
  answerBox.classList.toggle("refused", refused);
  clear(answerBox);
  const citations = data.citations || [];
  const byNumber = new Map();
  citations.forEach((c, i) => {
    if (!byNumber.has(c.n)) byNumber.set(c.n, []);
    byNumber.get(c.n).push(i);
  });
  const seen = new Map();
  const inline = new Set();
  const text = h("p", { class: "answer-text" });
  if (refused) {
    answerBox.append(h("p", { class: "refusal-tag",
      text: OUTCOME_TAG[data.outcome] ?? "Refused" }));
  }
  for (const part of String(data.answer || "").split(/(\[\d+\])/)) {
    const marker = /^\[(\d+)\]$/.exec(part);
    const indices = marker && byNumber.get(Number(marker[1]));
    if (indices) {
      const k = (seen.get(indices[0]) || 0) + 1;
      seen.set(indices[0], k);
      const i = indices[Math.min(k, indices.length) - 1];
      inline.add(i);
      text.append(citeButton(citations[i], part, label(citations[i], k), refused));
    } else if (part) {
      text.append(document.createTextNode(part));
    }
  }
  answerBox.append(text);
  if (citations.length) {
    const heading = refused ? (OUTCOME_HEADING[data.outcome] ?? "Closest passages") : "Sources";
    const list = h("ol", { class: "sources", "aria-label": heading });
    citations.forEach((c, i) => {
      const unsupported = c.supported === false && !refused;
      const k = byNumber.get(c.n).indexOf(i) + 1;
      list.append(h("li", { class: unsupported ? "source unsupported" : "source" },
        inline.has(i) ? h("span", { class: "n", text: `[${c.n}]` })
          : citeButton(c, `[${c.n}]`, label(c, k), refused),
        " ", h("span", { class: "src", text: c.source }),
        c.page ? h("span", { class: "page", text: ` p. ${c.page}` }) : null,
        c.ocr ? h("span", { class: "ocr", title: OCR_NOTE, text: " (OCR)" }) : null,
        unsupported ? h("span", { class: "flag", text: " unsupported" }) : null,
        h("q", { class: "quote", text: c.quote })));
    });
    answerBox.append(h("h3", { class: "sources-title", text: heading }), list);
  }
  const meta = [];
  if (data.model) meta.push(`model ${data.model}`);
  if (data.audit_id) meta.push(`audit record ${data.audit_id}`);
  if (meta.length) answerBox.append(h("p", { class: "meta-line", text: meta.join(" · ") }));
  // The audit record is what feedback names: no record, nothing to rate.
  if (data.audit_id) answerBox.append(feedbackBox(data.audit_id));
}

// A refusal's citations are the closest passages, not claims: they are not flagged.
function citeButton(c, text, aria, refused) {
  const unsupported = c.supported === false && !refused;
  return h("button", {
    type: "button",
    class: unsupported ? "cite unsupported" : "cite",
    "aria-label": aria + (unsupported ? " (unsupported)" : ""),
    onclick: () => openCitation(c, unsupported),
  }, text, unsupported ? h("span", { class: "flag", text: " unsupported" }) : null);
}

// Where the quote sits in the chunk's text: by the offsets, else by search.
export function locate(text, quote, start, charStart) {
  if (!quote) return null;
  const at = start - charStart;
  if (Number.isInteger(at) && at >= 0 && text.slice(at, at + quote.length) === quote) {
    return [at, at + quote.length];
  }
  const found = text.indexOf(quote);
  if (found >= 0) return [found, found + quote.length];
  // Whitespace may differ: search with runs of whitespace collapsed.
  const pattern = quote.trim().split(/\s+/).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!pattern.length) return null;
  const match = new RegExp(pattern.join("\\s+")).exec(text);
  return match ? [match.index, match.index + match[0].length] : null;
}

// Scans and images are read by OCR: the passage may hold words misread from the picture.
const OCR_NOTE = "read by OCR from a scan or an image: some words may be misread";

async function openCitation(c, unsupported) {
  const panel = $("citation-panel");
  const meta = clear($("citation-meta"));
  const add = (term, value) => meta.append(h("dt", { text: term }), h("dd", { text: value }));
  add("Source", c.source);
  add("Page", c.page ?? "–");
  add("Version", c.version);
  if (c.ocr) add("Text", OCR_NOTE);
  $("citation-title").textContent = `Citation ${c.n}`;
  const flag = $("citation-flag");
  flag.hidden = !unsupported;
  flag.textContent = "unsupported: the passage does not back this sentence";
  const passage = clear($("citation-text"));
  passage.append(h("p", { class: "loading", text: "Loading the passage…" }));
  if (!panel.open) panel.showModal();
  try {
    const chunk = await call(`/v1/chunks/${encodeURIComponent(c.chunk_id)}`);
    add("Title", chunk.title);
    const span = locate(chunk.text, c.quote, c.start, chunk.char_start);
    clear(passage);
    if (span) {
      passage.append(chunk.text.slice(0, span[0]),
        h("mark", { text: chunk.text.slice(span[0], span[1]) }), chunk.text.slice(span[1]));
    } else {
      passage.append(h("mark", { text: c.quote }),
        h("p", { class: "hint", text: "(The quote was not found in the current passage.)" }));
    }
  } catch (error) {
    clear(passage).append(h("mark", { text: c.quote }),
      h("p", { class: "error", text: `The passage could not be loaded: ${error.message}` }));
  }
}
