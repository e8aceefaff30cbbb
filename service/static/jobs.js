// Ingestion jobs: the recent ones (GET /v1/jobs), each with its files' progress; a job's files (GET /v1/jobs/{id})
// are listed on demand, and unfinished jobs are polled until they end.

import { api } from "./api.js";
import { formatTime } from "./documents.js";
import { el } from "./messages.js";

const $ = (id) => document.getElementById(id);
const PAGE = 20;
const POLL_MS = 1000;
const UNFINISHED = new Set(["queued", "running"]);

/** "2 ingested · 1 failed" for {ingested: 2, failed: 1}, pending files last. */
function countsText(counts) {
  const entries = Object.entries(counts || {}).sort(([a], [b]) => (a === "pending") - (b === "pending") || a.localeCompare(b));
  return entries.map(([status, n]) => `${n} ${status}`).join(" · ");
}

export class JobsView {
  /** onFinished() runs when a job this page watched ends (documents and counts may have changed). */
  constructor({ onError, onFinished }) {
    Object.assign(this, { onError, onFinished });
    this.list = $("job-list");
    this.items = new Map(); // job id → JobItem
    this.shown = PAGE;
    this.timer = null;
    $("refresh-jobs").addEventListener("click", () => this.reload());
    $("more-jobs").addEventListener("click", () => {
      this.shown += PAGE;
      this.reload();
    });
  }

  async reload() {
    await this.refresh();
    this.schedule();
  }

  /** The recent jobs' summaries (one request), keeping the items already shown. */
  async refresh() {
    let jobs;
    try {
      jobs = await api(`/v1/jobs?limit=${this.shown + 1}`);
    } catch (err) {
      this.onError(`Could not list ingestion jobs: ${err.message}`);
      return;
    }
    $("more-jobs").hidden = jobs.length <= this.shown;
    const items = jobs.slice(0, this.shown).map((job) => {
      const item = this.item(job.id);
      item.summarise(job);
      return item;
    });
    this.items = new Map(items.map((item) => [item.id, item]));
    this.list.replaceChildren(...items.map((item) => item.node));
    $("jobs-empty").hidden = items.length > 0;
  }

  /** Show a job just started from this page, with its files listed, and follow it to its end. */
  async follow(job) {
    const item = this.item(job.id);
    this.items = new Map([[job.id, item], ...[...this.items].filter(([id]) => id !== job.id)]);
    this.list.prepend(item.node);
    $("jobs-empty").hidden = true;
    item.detail(job);
    item.expand(true);
    this.schedule();
  }

  item(id) {
    return this.items.get(id) || new JobItem(id, () => this.schedule());
  }

  schedule() {
    clearTimeout(this.timer);
    if ([...this.items.values()].some((item) => item.unfinished)) this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  /** Follow the unfinished jobs: an open one's files (GET /v1/jobs/{id}), the others' summaries (one list request). */
  async poll() {
    const watched = [...this.items.values()].filter((item) => item.unfinished);
    await Promise.all(watched.filter((item) => item.open).map((item) => item.load()));
    if (watched.some((item) => !item.open)) await this.refresh();
    if (watched.some((item) => !item.unfinished)) this.onFinished();
    this.schedule();
  }
}

class JobItem {
  /** onLoaded() runs after its files were loaded (an unfinished job is then followed). */
  constructor(id, onLoaded) {
    this.id = id;
    this.onLoaded = onLoaded;
    this.unfinished = true;
    this.loaded = false;
    this.node = el("li", { cls: "job", attrs: { "data-id": id } });
    const head = el("div", { cls: "job-head" });
    this.state = el("span", { cls: "job-state" });
    this.title = el("span", { cls: "job-title" });
    this.when = el("span", { cls: "job-when muted" });
    head.append(this.state, this.title, this.when);
    this.progressText = el("p", { cls: "job-progress" });
    this.bar = el("progress", { attrs: { "aria-label": `Files done in job ${id}` } });
    this.error = el("p", { cls: "job-error", attrs: { hidden: "" } });
    this.toggle = el("button", { cls: "link-button job-toggle", text: "Show files", attrs: { type: "button", "aria-expanded": "false" } });
    this.files = el("ul", { cls: "job-files", attrs: { hidden: "", id: `job-files-${id}` } });
    this.toggle.setAttribute("aria-controls", this.files.id);
    this.toggle.addEventListener("click", () => this.expand(this.files.hidden));
    this.node.append(head, this.progressText, this.bar, this.error, this.toggle, this.files);
  }

  /** Show a job's state and its files' counts (a summary from GET /v1/jobs, or a full record). */
  summarise(job) {
    const total = job.file_count ?? job.files.length;
    const pending = job.counts?.pending || 0;
    this.unfinished = UNFINISHED.has(job.state);
    this.node.dataset.state = job.state;
    this.state.textContent = job.state;
    this.title.textContent = `${job.collection} · job ${job.id}`;
    this.when.textContent = formatTime(job.finished_at ?? job.started_at ?? job.created_at);
    this.progressText.textContent = `${total - pending} of ${total} files done${job.counts && Object.keys(job.counts).length ? ` — ${countsText(job.counts)}` : ""}`;
    this.bar.max = Math.max(total, 1);
    this.bar.value = total - pending;
    this.error.hidden = !job.error;
    this.error.textContent = job.error || "";
  }

  get open() {
    return !this.files.hidden;
  }

  /** Show a job's full record: its summary and each file's outcome. */
  detail(job) {
    this.summarise(job);
    this.loaded = true;
    this.files.replaceChildren(
      ...job.files.map((f) => {
        const item = el("li", { cls: "job-file", attrs: { "data-status": f.status, "data-source": f.source } });
        item.append(el("span", { cls: "job-file-source", text: f.source }), el("span", { cls: "job-file-status", text: f.status }));
        const detail = f.status === "failed" ? f.reason || "unknown error" : f.chunks ? `${f.chunks} chunks` : f.reason;
        if (detail) item.append(el("span", { cls: f.status === "failed" ? "job-file-reason" : "job-file-detail muted", text: detail }));
        return item;
      }),
    );
  }

  async load() {
    try {
      this.detail(await api(`/v1/jobs/${encodeURIComponent(this.id)}`));
      this.onLoaded();
    } catch (err) {
      this.unfinished = false; // not followed any further
      this.files.replaceChildren(el("li", { cls: "job-file-reason", text: `Could not load the files: ${err.message}` }));
    }
  }

  expand(open) {
    this.files.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
    this.toggle.textContent = open ? "Hide files" : "Show files";
    if (open && !this.loaded) this.load();
  }
}
