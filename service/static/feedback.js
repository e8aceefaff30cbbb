// Thumbs up or down on an answer, with an optional comment: POST /v1/answers/{id}/feedback (rating again replaces).

import { api } from "./api.js";

let formCount = 0;
// Material Design's thumb_up (Apache License 2.0); thumbs down is the same turned over. An icon, not an emoji: not
// every system has an emoji font.
const THUMB = "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z";
const SVG = "http://www.w3.org/2000/svg";

function thumb(down) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", THUMB);
  path.setAttribute("fill", "currentColor");
  if (down) path.setAttribute("transform", "rotate(180 12 12)");
  svg.append(path);
  return svg;
}

function make(tag, cls, attrs = {}, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The rating controls of one answer: two toggle buttons (aria-pressed), then a comment box once rated. */
export class FeedbackControls {
  constructor(answerId) {
    this.answerId = answerId;
    this.rating = null;
    this.node = make("div", "feedback", { role: "group", "aria-label": "Rate this answer", "data-answer-id": answerId });
    this.up = this.button("up", "Good answer");
    this.down = this.button("down", "Bad answer");
    this.status = make("span", "feedback-status muted small", { role: "status" });
    const id = `feedback-comment-${++formCount}`;
    this.form = make("form", "feedback-comment", { hidden: "" });
    this.comment = make("textarea", "", { id, rows: "2", maxlength: "2000", placeholder: "What was right or wrong? (optional)" });
    this.form.append(make("label", "visually-hidden", { for: id }, "Comment on this answer (optional)"), this.comment,
      make("button", "button", { type: "submit" }, "Send comment"));
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send(this.rating);
    });
    this.node.append(this.up, this.down, this.status, this.form);
  }

  button(rating, label) {
    const button = make("button", "icon-button feedback-button", {
      type: "button", "aria-pressed": "false", "aria-label": label, title: label, "data-rating": rating,
    });
    button.append(thumb(rating === "down"));
    button.addEventListener("click", () => this.send(rating));
    return button;
  }

  /** Store the rating (with the comment typed so far); the buttons show what the server has. */
  async send(rating) {
    if (!rating) return;
    const comment = this.comment.value.trim();
    this.status.textContent = "Saving…";
    try {
      await api(`/v1/answers/${encodeURIComponent(this.answerId)}/feedback`, {
        method: "POST", body: comment ? { rating, comment } : { rating },
      });
    } catch (err) {
      this.status.textContent = `Feedback not saved: ${err.message}`;
      return;
    }
    this.rating = rating;
    this.up.setAttribute("aria-pressed", String(rating === "up"));
    this.down.setAttribute("aria-pressed", String(rating === "down"));
    this.status.textContent = comment ? "Thanks: rating and comment saved." : "Thanks: rating saved.";
    this.form.hidden = false;
  }
}
