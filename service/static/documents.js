// The documents of one collection: status, chunks, pages, OCR'd pages, size, when ingested; failures with their
// reasons; download, re-ingest and delete (after a confirmation). Text only via textContent.

import { api, openSource } from "./api.js";
import { el } from "./messages.js";

const $ = (id) => document.getElementById(id);

/** "5.1 KB" for 5120 bytes. */
export function formatBytes(n) {
  if (n == null) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** A timestamp (seconds since the epoch) as local date and time. */
export function formatTime(seconds) {
  return seconds == null ? "—" : new Date(seconds * 1000).toLocaleString();
}

const documentPath = (collection, id) => `/v1/collections/${encodeURIComponent(collection)}/documents/${id}`;

export class DocumentsView {
  /** confirm(title, text, action) → Promise<boolean>; onChanged() after a delete; onJob(job) for a re-ingest. */
  constructor({ confirm, onError, onChanged, onJob, notify }) {
    Object.assign(this, { confirm, onError, onChanged, onJob, notify });
    this.collection = null;
    this.failures = [];
    this.rows = $("document-rows");
    $("status-filter").addEventListener("change", () => this.reload());
    $("refresh-documents").addEventListener("click", () => this.reload());
  }

  show(collection) {
    this.collection = collection;
    $("documents-heading").textContent = collection ? `Documents of ${collection}` : "Documents";
    $("documents-caption").textContent = collection ? `Documents of ${collection}` : "Documents";
    this.reload();
  }

  async reload() {
    const collection = this.collection;
    if (!collection) {
      this.render([], []);
      return;
    }
    const status = $("status-filter").value;
    const base = `/v1/collections/${encodeURIComponent(collection)}/documents`;
    try {
      const [documents, failures] = await Promise.all([
        api(status ? `${base}?status=${status}` : base),
        status === "failed" ? null : api(`${base}?status=failed`),
      ]);
      if (collection !== this.collection) return; // another collection was chosen meanwhile
      this.render(documents, failures ?? documents);
    } catch (err) {
      this.onError(`Could not list the documents of ${collection}: ${err.message}`);
    }
  }

  render(documents, failures) {
    this.rows.replaceChildren(...documents.map((d) => this.row(d)));
    this.showEmpty();
    this.renderFailures(failures);
  }

  showEmpty() {
    const empty = this.rows.children.length === 0;
    $("documents-empty").hidden = !empty;
    $("document-table").hidden = empty;
  }

  renderFailures(failures) {
    this.failures = failures;
    $("failures").hidden = failures.length === 0;
    $("failures-heading").textContent = `${failures.length} ${failures.length === 1 ? "file" : "files"} failed`;
    $("failure-list").replaceChildren(
      ...failures.map((d) => {
        const item = el("li", { cls: "failure", attrs: { "data-id": String(d.id) } });
        item.append(el("span", { cls: "failure-source", text: d.source }), el("span", { cls: "failure-reason", text: d.error || "unknown error" }));
        return item;
      }),
    );
  }

  row(d) {
    const tr = el("tr", { cls: "doc-row", attrs: { "data-id": String(d.id), "data-source": d.source, "data-status": d.status } });
    const name = el("td", { cls: "doc-name", attrs: { "data-label": "Document" } });
    const box = el("div", { cls: "doc-name-box" });
    box.append(el("span", { cls: "doc-title", text: d.title || d.source }));
    if (d.title && d.title !== d.source) box.append(el("span", { cls: "doc-source muted", text: d.source }));
    if (d.status === "failed") box.append(el("span", { cls: "doc-error", text: d.error || "unknown error" }));
    for (const warning of d.warnings || []) box.append(el("span", { cls: "doc-warning", text: warning }));
    name.append(box);
    const ocr = d.ocr_pages?.length ? `${d.ocr_pages.length}` : "0";
    const cells = [
      ["Status", d.status === "ok" ? "ingested" : "failed", "doc-status"],
      ["Chunks", String(d.chunks)],
      ["Pages", d.pages == null ? "—" : String(d.pages)],
      ["OCR'd pages", ocr],
      ["Size", formatBytes(d.size)],
      ["Ingested", formatTime(d.updated_at)],
    ].map(([label, text, cls]) => el("td", { cls: cls || "", text, attrs: { "data-label": label } }));
    if (d.ocr_pages?.length) cells[3].title = `pages ${d.ocr_pages.join(", ")}`;
    const actions = el("td", { cls: "doc-actions", attrs: { "data-label": "Actions" } });
    actions.append(
      this.button("Download", `Download ${d.source}`, "download", () => this.download(d)),
      this.button("Re-ingest", `Re-ingest ${d.source}`, "reingest", () => this.reingest(d)),
      this.button("Delete", `Delete ${d.source}`, "delete", () => this.remove(d, tr), "button-danger"),
    );
    tr.append(name, ...cells, actions);
    return tr;
  }

  button(text, label, action, onClick, extra = "") {
    const button = el("button", { cls: `button button-small ${extra}`.trim(), text, attrs: { type: "button", "aria-label": label, "data-action": action } });
    button.addEventListener("click", onClick);
    return button;
  }

  async download(d) {
    try {
      await openSource(`${documentPath(this.collection, d.id)}/file`);
    } catch (err) {
      this.onError(`Could not download ${d.source}: ${err.message}`);
    }
  }

  async reingest(d) {
    try {
      const job = await api(`${documentPath(this.collection, d.id)}/reingest`, { method: "POST" });
      this.notify(`Re-ingesting ${d.source}…`);
      this.onJob(job);
    } catch (err) {
      this.onError(`Could not re-ingest ${d.source}: ${err.message}`);
    }
  }

  async remove(d, tr) {
    const sure = await this.confirm(`Delete ${d.source}?`, "It is removed from the collection and never cited again. This cannot be undone.", "Delete");
    if (!sure) {
      tr.querySelector("[data-action='delete']")?.focus();
      return;
    }
    try {
      await api(documentPath(this.collection, d.id), { method: "DELETE" });
    } catch (err) {
      this.onError(`Could not delete ${d.source}: ${err.message}`);
      return;
    }
    const next = tr.nextElementSibling || tr.previousElementSibling;
    tr.remove();
    this.showEmpty();
    this.renderFailures(this.failures.filter((f) => f.id !== d.id));
    this.notify(`Deleted ${d.source}.`);
    (next?.querySelector("[data-action='delete']") || $("documents-heading")).focus();
    this.onChanged();
    if (d.metadata?.attachments?.length) this.reload(); // its attachments went with it
  }
}
