// Feedback on an answer: thumbs up or down, then an optional comment. Each is sent to
// POST /v1/answers/{audit_id}/feedback and becomes an audit record naming the answer.

import { call } from "./api.js";
import { h } from "./dom.js";

const MAX_COMMENT = 2000;  // core.feedback.MAX_COMMENT_CHARS
// Words, with a mark any font has: an emoji may have no glyph on the reader's machine. The
// name starts with the visible word, as speech input expects.
const RATINGS = [
  { rating: "up", label: "Helpful (thumbs up)", mark: "▲", text: "Helpful" },
  { rating: "down", label: "Not helpful (thumbs down)", mark: "▼", text: "Not helpful" },
];
let made = 0;  // unique ids for the comment boxes' labels

export function feedbackBox(auditId) {
  const id = `feedback-comment-${++made}`;
  const note = h("p", { class: "feedback-note", "aria-live": "polite" });
  const comment = h("textarea", { id, rows: 2, maxlength: MAX_COMMENT });
  const send = h("button", { type: "submit", text: "Send comment" });
  const form = h("form", { class: "feedback-form", hidden: true },
    h("label", { for: id, text: "Comment (optional)" }), comment, send);
  const buttons = RATINGS.map((r) => h("button", {
    type: "button", class: "thumb", "data-rating": r.rating, "aria-label": r.label,
    "aria-pressed": "false", onclick: () => rate(r.rating),
  }, h("span", { class: "mark", "aria-hidden": "true", text: r.mark }), ` ${r.text}`));
  let rating = null;
  let sending = false;

  // The page stays usable whatever happens: the controls come back, the message says why.
  async function submit(body) {
    if (sending) return false;
    sending = true;
    for (const b of [...buttons, send]) b.disabled = true;
    try {
      await call(`/v1/answers/${encodeURIComponent(auditId)}/feedback`, { method: "POST", body });
      note.className = "feedback-note ok";
      note.textContent = "Thanks — recorded";
      return true;
    } catch (error) {
      note.className = "feedback-note error";
      note.textContent = `Feedback not recorded: ${error.message}`;
      return false;
    } finally {
      sending = false;
      for (const b of [...buttons, send]) b.disabled = false;
    }
  }

  // A click records the rating at once; the comment box then offers to say why.
  // The rating already recorded is not sent again (each send is one more audit record).
  async function rate(value) {
    if (value !== rating && !(await submit({ rating: value }))) return;
    rating = value;
    for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.rating === rating));
    form.hidden = false;
    comment.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = comment.value.trim();
    if (!rating) return;
    if (!text) {
      note.className = "feedback-note error";
      note.textContent = "Write a comment first.";
      comment.focus();
      return;
    }
    if (await submit({ rating, comment: text })) form.hidden = true;
  });

  return h("div", { class: "feedback", role: "group", "aria-label": "Feedback on this answer" },
    h("span", { class: "feedback-title", text: "Was this answer useful?" }), ...buttons, note,
    form);
}
