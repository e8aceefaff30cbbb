// The side panel that shows one cited passage, with the answer's sentences highlighted in it.

import { apiKey, openSource } from "./api.js";
import { highlightRanges, segments, sentencesCiting } from "./highlight.js";
import { el, placeLabel, UNSUPPORTED } from "./messages.js";

const $ = (id) => document.getElementById(id);

export class PassagePanel {
  constructor(onError) {
    this.panel = $("passage-panel");
    this.trigger = null;
    this.onError = onError;
    $("passage-close").addEventListener("click", () => this.close());
    $("passage-link").addEventListener("click", (e) => this.openLink(e));
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  /** Show citation c of an answer; `trigger` gets the focus back on close. */
  open(c, answer, collection, trigger) {
    this.trigger = trigger;
    this.current = c;
    $("passage-number").textContent = `Passage [${c.n}]`;
    $("passage-title").textContent = c.title || c.source || "Untitled";
    const meta = [];
    const place = placeLabel(c);
    if (place) meta.push(place);
    if (c.ocr) meta.push("text read by OCR from a scanned image: check the source");
    if (c.heading_path?.length) meta.push(c.heading_path.join(" › "));
    if (c.source) meta.push(c.source.split(/[\\/]/).pop());
    $("passage-meta").textContent = meta.join(" · ");
    this.showSupport(c);
    this.showText(c, answer);
    this.showLink(c, collection);
    this.panel.hidden = false;
    document.body.classList.add("passage-open");
    $("passage-title").focus();
  }

  showSupport(c) {
    const note = $("passage-support");
    note.hidden = c.supported !== false;
    note.textContent = UNSUPPORTED;
  }

  showText(c, answer) {
    const text = c.text || "";
    let claims = answer.text ? sentencesCiting(answer.text, c.n) : [];
    if (!claims.length) claims = [answer.question || ""].filter(Boolean);
    const nodes = segments(text, highlightRanges(text, claims)).map((s) =>
      s.marked ? el("mark", { text: s.text }) : document.createTextNode(s.text),
    );
    $("passage-text").replaceChildren(...nodes);
  }

  showLink(c, collection) {
    const link = $("passage-link");
    if (c.document_id == null) {
      link.hidden = true;
      return;
    }
    this.fileUrl = `/v1/collections/${encodeURIComponent(collection)}/documents/${c.document_id}/file`;
    // Only a PDF's pages can be opened at: a slide or a sheet's rows are named, and the file opens whole.
    link.href = this.fileUrl + (c.page ? `#page=${c.page}` : "");
    const place = placeLabel(c);
    link.textContent = c.page ? `Open the source at page ${c.page}` : place ? `Open the source (${place})` : "Open the source";
    link.hidden = false;
  }

  async openLink(event) {
    // Plain links can't carry the API key; openSource fetches with it when one is set.
    if (!apiKey()) return;
    event.preventDefault();
    try {
      await openSource(this.fileUrl, this.current.page);
    } catch (err) {
      this.onError(err.message);
    }
  }

  close() {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    document.body.classList.remove("passage-open");
    if (this.trigger?.isConnected) this.trigger.focus();
    this.trigger = null;
  }
}
