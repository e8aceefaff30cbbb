// The conversation history sidebar: the server's saved conversations for the current collection.

import { api } from "./api.js";
import { el } from "./messages.js";

const $ = (id) => document.getElementById(id);
const path = (id) => `/v1/conversations/${encodeURIComponent(id)}`;

export class History {
  /** onOpen(conversation) shows a reopened conversation; onDeleted(id) after one is deleted; onError(message). */
  constructor({ onOpen, onDeleted, onError }) {
    Object.assign(this, { onOpen, onDeleted, onError });
    this.persisted = true; // whether the server keeps conversations (/v1/conversations exists)
    this.currentId = null;
    this.list = $("conversation-list");
    this.note = $("history-note");
  }

  /** Find out from the OpenAPI schema whether this server keeps conversations. */
  async detect() {
    try {
      const spec = await api("/openapi.json");
      this.persisted = Boolean(spec.paths?.["/v1/conversations"]);
    } catch {
      this.persisted = true; // no schema to look at: assume a current server
    }
    this.note.textContent = this.persisted ? "" : "This server doesn't keep conversations.";
  }

  /** Start a saved conversation; its id. */
  async create(collection, question) {
    const title = question.trim().replace(/\s+/g, " ").slice(0, 120);
    const created = await api("/v1/conversations", { method: "POST", body: { collection, title } });
    this.setCurrent(created.id);
    return created.id;
  }

  /** List the collection's conversations, newest first. */
  async load(collection) {
    if (!this.persisted || !collection) {
      this.list.replaceChildren();
      return;
    }
    let conversations;
    try {
      conversations = await api(`/v1/conversations?collection=${encodeURIComponent(collection)}`);
    } catch (err) {
      this.note.textContent = `Could not load history: ${err.message}`;
      return;
    }
    this.note.textContent = conversations.length ? "" : "No conversations yet.";
    this.list.replaceChildren(...conversations.map((c) => this.item(c)));
  }

  item(c) {
    const title = c.title || "Untitled conversation";
    const open = el("button", { cls: "conversation-open", attrs: { type: "button", "data-id": c.id } });
    open.append(el("span", { cls: "conversation-title", text: title }),
      el("span", { cls: "conversation-time", text: new Date(c.updated_at * 1000).toLocaleString() }));
    if (c.id === this.currentId) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => this.open(c.id));
    const remove = el("button", {
      cls: "icon-button conversation-delete", text: "✕", attrs: { type: "button", "aria-label": `Delete conversation “${title}”` },
    });
    remove.addEventListener("click", () => this.remove(c.id, title));
    const item = el("li", { cls: "conversation-item" });
    item.append(open, remove);
    return item;
  }

  async open(id) {
    try {
      const conversation = await api(path(id));
      this.setCurrent(id);
      this.onOpen(conversation);
    } catch (err) {
      this.onError(`Could not open the conversation: ${err.message}`);
    }
  }

  async remove(id, title) {
    if (!window.confirm(`Delete the conversation “${title}”?`)) return;
    try {
      await api(path(id), { method: "DELETE" });
    } catch (err) {
      this.onError(`Could not delete: ${err.message}`);
      return;
    }
    this.list.querySelector(`[data-id="${CSS.escape(id)}"]`)?.closest("li")?.remove();
    this.onDeleted(id);
  }

  /** Mark the conversation being shown (null: a new one). */
  setCurrent(id) {
    this.currentId = id;
    for (const button of this.list.querySelectorAll(".conversation-open")) {
      if (button.dataset.id === id) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }
}
