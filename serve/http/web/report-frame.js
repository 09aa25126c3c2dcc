// The frame evaluation reports are shown in (served with a policy of its own: see
// serve/http/routes/web.py). The admin page fetches a report with the user's key and posts
// its HTML here; it goes into a srcdoc frame with every sandbox restriction on, which
// inherits this page's policy: inline styles and SVG, no script, nothing fetched. This page
// is sandboxed too (an opaque origin): it holds no key and calls nothing.
"use strict";

window.addEventListener("message", (event) => {
  if (event.source !== window.parent) return;
  const data = event.data;
  if (!data || data.type !== "enclave-report" || typeof data.html !== "string") return;
  document.getElementById("report").srcdoc = data.html;
});
