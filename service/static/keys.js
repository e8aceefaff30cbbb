// API keys, for admin keys only: list, create (the secret is shown once, here), revoke. The section stays hidden
// for any other key (GET /v1/keys answers 403).

import { api } from "./api.js";
import { formatTime } from "./documents.js";
import { el } from "./messages.js";

const $ = (id) => document.getElementById(id);

export class KeysView {
  /** confirm(title, text, action) → Promise<boolean>. */
  constructor({ confirm, onError }) {
    Object.assign(this, { confirm, onError });
    this.section = $("keys-section");
    $("key-create").addEventListener("submit", (e) => {
      e.preventDefault();
      this.create();
    });
  }

  /** Show the section if this key may manage keys (an admin of every collection). */
  async load() {
    let keys;
    try {
      keys = await api("/v1/keys");
    } catch (err) {
      this.section.hidden = true;
      if (err.status !== 403) this.onError(`Could not list API keys: ${err.message}`);
      return;
    }
    this.section.hidden = false;
    $("key-rows").replaceChildren(...keys.map((k) => this.row(k)));
  }

  row(k) {
    const tr = el("tr", { cls: "key-row", attrs: { "data-id": k.id, "data-revoked": String(k.revoked_at != null) } });
    const cells = [
      ["Name", k.name || "—"],
      ["Id", k.id],
      ["Role", k.role],
      ["Collections", k.collections ? k.collections.join(", ") : "all"],
      ["Created", formatTime(k.created_at)],
      ["Revoked", k.revoked_at == null ? "—" : formatTime(k.revoked_at)],
    ].map(([label, text]) => el("td", { text, attrs: { "data-label": label } }));
    const actions = el("td", { cls: "key-actions", attrs: { "data-label": "Actions" } });
    if (k.revoked_at == null) {
      const revoke = el("button", {
        cls: "button button-small button-danger", text: "Revoke",
        attrs: { type: "button", "aria-label": `Revoke key ${k.name || k.id}`, "data-action": "revoke" },
      });
      revoke.addEventListener("click", () => this.revoke(k, revoke));
      actions.append(revoke);
    }
    tr.append(...cells, actions);
    return tr;
  }

  async create() {
    const collections = $("new-key-collections").value.split(",").map((c) => c.trim()).filter(Boolean);
    const body = { role: $("new-key-role").value, name: $("new-key-name").value.trim(), collections: collections.length ? collections : null };
    let created;
    try {
      created = await api("/v1/keys", { method: "POST", body });
    } catch (err) {
      this.onError(`Could not create the key: ${err.message}`);
      return;
    }
    $("new-key-secret").textContent = created.key; // shown here once; never stored by the page
    $("new-key").hidden = false;
    $("new-key-name").value = "";
    $("new-key-collections").value = "";
    await this.load();
    $("new-key-secret").focus();
  }

  async revoke(k, button) {
    const label = k.name ? `${k.name} (${k.id})` : k.id;
    if (!(await this.confirm(`Revoke key ${label}?`, "Requests with it are refused from now on. This cannot be undone.", "Revoke"))) {
      button.focus();
      return;
    }
    try {
      await api(`/v1/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" });
    } catch (err) {
      this.onError(`Could not revoke key ${label}: ${err.message}`);
      return;
    }
    await this.load();
    $("keys-heading").focus();
  }
}
