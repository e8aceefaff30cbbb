// Chat messages: the user's questions and the streamed answers with their citation chips. Text only via textContent.

import { FeedbackControls } from "./feedback.js";
import { markerPieces } from "./highlight.js";

/** document.createElement with a class, text and attributes. */
export function el(tag, { cls, text, attrs } = {}) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

/** Where a citation sits, as the API words it: "page 2", "slide 5", "sheet Q3, rows 2–41" (or the page alone). */
export function placeLabel(c) {
  return c.locator_label || (c.page ? `page ${c.page}` : "");
}

/** "Title · page 2" (or "· slide 5", "· sheet Q3, rows 2–41") for a citation. */
export function citationLabel(c) {
  const title = c.title || c.source || "Untitled";
  const place = placeLabel(c);
  return place ? `${title} · ${place}` : title;
}

/** What the page says of a citation the verifier found does not back the claim citing it (`supported: false`). */
export const UNSUPPORTED = "Not supported by this passage: the claim that cites it is not backed by its text.";

export function userMessage(text) {
  const article = el("article", { cls: "message user", attrs: { "aria-label": "Your question" } });
  article.append(el("p", { cls: "bubble", text }));
  return article;
}

/** One answer, filled in as its events arrive. onCite(citation, answerView, trigger) opens a passage. */
export class AnswerView {
  constructor(question, onCite) {
    this.question = question;
    this.onCite = onCite;
    this.text = "";
    this.citations = [];
    this.finished = false;
    this.node = el("article", { cls: "message assistant streaming", attrs: { "aria-label": "Answer", "aria-busy": "true" } });
    this.searched = el("p", { cls: "searched-for", attrs: { hidden: "" } });
    this.body = el("div", { cls: "answer-text" });
    this.status = el("p", { cls: "answer-status muted", text: "Searching the documents…" });
    this.notes = el("div", { cls: "answer-notes" });
    this.chips = el("div", { cls: "chips" });
    this.actions = el("div", { cls: "message-actions", attrs: { hidden: "" } });
    this.node.append(this.searched, this.status, this.body, this.notes, this.chips, this.actions);
  }

  /** Handle one SSE event from /v1/ask or a conversation. */
  handle(name, data) {
    if (name === "citations") {
      this.citations = data.citations || [];
      this.showRewritten(data.rewritten_question);
      this.status.textContent = "Writing the answer…";
    } else if (name === "token") {
      this.status.hidden = true;
      this.text += data.text || "";
      this.renderText();
    } else if (name === "done") {
      this.finish(data);
    } else if (name === "error") {
      this.fail(data.detail || data.title || "The answer failed.");
    }
  }

  showRewritten(rewritten) {
    const typed = (this.question || "").trim().toLowerCase();
    if (!rewritten || rewritten.trim().toLowerCase() === typed) return;
    this.searched.replaceChildren("searched for: ", el("q", { text: rewritten }));
    this.searched.hidden = false;
  }

  renderText() {
    const byN = new Map(this.citations.map((c) => [c.n, c]));
    const nodes = [];
    for (const piece of markerPieces(this.text)) {
      const known = piece.marker?.filter((n) => byN.has(n)) || [];
      if (!known.length) {
        nodes.push(document.createTextNode(piece.text));
        continue;
      }
      for (const n of known) nodes.push(this.citeButton(byN.get(n), `[${n}]`, "cite-marker"));
    }
    this.body.replaceChildren(...nodes);
  }

  /** A marker or chip opening citation c; one the verifier did not back is marked, named and titled so. */
  citeButton(c, label, cls) {
    const unsupported = c.supported === false;
    const name = `Citation ${c.n}: ${citationLabel(c)}${unsupported ? " (not supported by this passage)" : ""}`;
    const button = el("button", {
      cls: unsupported ? `${cls} unsupported` : cls, text: label,
      attrs: { type: "button", "aria-label": name, "data-n": String(c.n) },
    });
    if (unsupported) button.title = UNSUPPORTED;
    button.addEventListener("click", () => this.onCite(c, this, button));
    return button;
  }

  /** The final answer: authoritative text, cited chips (or an abstention with the closest passages). */
  finish(answer) {
    this.finished = true;
    this.answerId = answer.answer_id || null; // to rate it (none while the server keeps no answers)
    this.text = answer.answer ?? answer.content ?? this.text;
    this.citations = answer.citations || this.citations;
    this.showRewritten(answer.rewritten_question);
    this.node.classList.remove("streaming");
    this.node.setAttribute("aria-busy", "false");
    this.status.hidden = true;
    if (answer.abstained) this.renderAbstention(answer.reason);
    else this.renderAnswer(answer.unsupported_claims || []);
    this.renderWarnings(answer.warnings || []);
    this.renderActions();
  }

  renderAnswer(unsupported) {
    this.renderText();
    const cited = this.citations.filter((c) => c.cited);
    this.renderChips(cited, "Sources");
    if (unsupported.length) {
      const note = el("p", { cls: "note warn", text: "Not backed by the cited passages: " });
      note.append(el("q", { text: unsupported.join(" … ") }));
      this.notes.replaceChildren(note);
    }
  }

  /** What went wrong without failing the answer (a re-ranker that failed: the passages are in fused order). */
  renderWarnings(warnings) {
    for (const text of warnings) {
      this.notes.append(el("p", { cls: "note warn answer-warning", text, attrs: { role: "status" } }));
    }
  }

  renderAbstention(reason) {
    this.node.classList.add("abstained");
    const box = el("div", { cls: "abstention", attrs: { role: "status" } });
    box.append(el("p", { cls: "abstention-title", text: "Not found in the documents" }));
    if (reason) box.append(el("p", { cls: "muted", text: reason }));
    this.body.replaceChildren(box);
    if (this.text.trim()) this.body.append(el("p", { text: this.text }));
    this.renderChips(this.citations.slice(0, 3), "Closest passages");
  }

  renderChips(citations, heading) {
    if (!citations.length) return;
    const list = el("ul", { cls: "chip-list", attrs: { "aria-label": heading } });
    for (const c of citations) {
      const chip = this.citeButton(c, "", "chip");
      chip.append(el("span", { cls: "chip-n", text: `[${c.n}]` }), el("span", { cls: "chip-title", text: citationLabel(c) }));
      if (c.supported === false) chip.append(el("span", { cls: "chip-flag", text: "not supported", attrs: { "aria-hidden": "true" } }));
      const item = el("li");
      item.append(chip);
      list.append(item);
    }
    this.chips.replaceChildren(el("p", { cls: "chips-heading", text: heading }), list);
  }

  renderActions() {
    const copy = el("button", { cls: "link-button copy", text: "Copy answer", attrs: { type: "button" } });
    copy.addEventListener("click", async () => {
      const ok = await copyText(this.plainText());
      copy.textContent = ok ? "Copied" : "Copy failed";
      setTimeout(() => (copy.textContent = "Copy answer"), 1500);
    });
    this.actions.replaceChildren(copy);
    if (this.answerId) this.actions.append(new FeedbackControls(this.answerId).node);
    this.actions.hidden = false;
  }

  /** The answer with its sources listed, for the clipboard. */
  plainText() {
    const cited = this.citations.filter((c) => c.cited);
    const sources = cited.map((c) => `[${c.n}] ${citationLabel(c)} (${c.source})`);
    return sources.length ? `${this.text}\n\nSources:\n${sources.join("\n")}` : this.text || "Not found in the documents";
  }

  fail(message) {
    this.finished = true;
    this.node.classList.remove("streaming");
    this.node.classList.add("failed");
    this.node.setAttribute("aria-busy", "false");
    this.status.hidden = true;
    this.notes.replaceChildren(el("p", { cls: "note error", text: message, attrs: { role: "alert" } }));
    if (this.text) this.renderText();
  }
}

/** Copy to the clipboard; falls back to a hidden textarea where the Clipboard API is missing or refused. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el("textarea", { cls: "offscreen", attrs: { readonly: "", "aria-hidden": "true" } });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

let toastTimer = null;
/** A short message at the bottom of the page (role=alert), gone after six seconds; the chat and documents pages'. */
export function toast(message) {
  let box = document.getElementById("toast");
  if (!box) {
    box = el("div", { cls: "toast", attrs: { id: "toast", role: "alert" } });
    document.body.append(box);
  }
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), 6000);
}
