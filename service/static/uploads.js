// Uploads: one request per file (so each gets its own progress bar), then the ingestion job polled to its end.

import { api, uploadFile } from "./api.js";
import { el } from "./messages.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 700;
const FINAL = new Set(["ingested", "unchanged", "replaced", "removed", "failed"]);

export class Uploads {
  /** onIngested() runs after a job finishes, so the page can refresh collection counts. */
  constructor(onIngested) {
    this.onIngested = onIngested;
    this.section = $("uploads");
    this.list = $("upload-list");
    $("uploads-clear").addEventListener("click", () => this.clearFinished());
  }

  /** Upload each file into the collection and follow its job. */
  add(files, collection) {
    if (!collection) {
      this.section.hidden = false;
      this.list.append(this.row("—").failWith("There is no collection to upload into."));
      return;
    }
    for (const file of files) this.start(file, collection);
  }

  async start(file, collection) {
    const row = this.row(file.name);
    this.list.append(row.node);
    this.section.hidden = false;
    try {
      const job = await uploadFile(collection, file, (f) => row.progress(f, `uploading ${Math.round(f * 100)}%`));
      row.progress(null, "queued");
      await this.follow(job, row);
    } catch (err) {
      row.failWith(err.message);
    }
  }

  async follow(job, row) {
    while (job.state === "queued" || job.state === "running") {
      row.progress(null, job.state === "running" ? "ingesting…" : "queued");
      await new Promise((r) => setTimeout(r, POLL_MS));
      job = await api(`/v1/jobs/${encodeURIComponent(job.id)}`);
    }
    const outcome = job.files?.[0];
    if (job.state === "failed" && !(outcome && FINAL.has(outcome.status))) {
      row.failWith(job.error || "the ingestion job failed");
    } else if (outcome) {
      row.finish(outcome);
    } else {
      row.failWith(job.error || "the job reported no file");
    }
    this.onIngested();
  }

  row(name) {
    return new UploadRow(name);
  }

  clearFinished() {
    for (const item of [...this.list.children]) if (item.dataset.done) item.remove();
    if (!this.list.children.length) this.section.hidden = true;
  }
}

class UploadRow {
  constructor(name) {
    this.node = el("li", { cls: "upload-row", attrs: { "data-status": "uploading" } });
    this.name = el("span", { cls: "upload-name", text: name });
    this.status = el("span", { cls: "upload-status", text: "starting…" });
    this.bar = el("progress", { attrs: { max: "1", "aria-label": `Progress of ${name}` } });
    this.node.append(this.name, this.status, this.bar);
  }

  progress(fraction, text) {
    if (fraction == null) this.bar.removeAttribute("value");
    else this.bar.value = fraction;
    this.status.textContent = text;
  }

  finish(outcome) {
    const chunks = outcome.chunks ? ` · ${outcome.chunks} chunks` : "";
    this.done(outcome.status, outcome.status === "failed" ? `failed: ${outcome.reason || "unknown error"}` : outcome.status + chunks);
  }

  failWith(message) {
    this.done("failed", `failed: ${message}`);
    return this.node;
  }

  done(status, text) {
    this.node.dataset.status = status;
    this.node.dataset.done = "1";
    this.status.textContent = text;
    this.bar.remove();
    if (status === "failed") this.status.setAttribute("role", "alert");
  }
}
