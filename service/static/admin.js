// The documents (admin) page: collections with counts, their documents and failures, ingestion jobs, API keys.

import { api, askForKeyInDialog } from "./api.js";
import { DocumentsView } from "./documents.js";
import { JobsView } from "./jobs.js";
import { KeysView } from "./keys.js";
import { el, toast } from "./messages.js";

const $ = (id) => document.getElementById(id);
const COLLECTION_STORAGE = "docqa.collection"; // the chat page's too: both open on the same collection

const state = { collection: null };

// ---- API key, confirmations, messages ------------------------------------------------------------------------

askForKeyInDialog();

/** Ask before doing something that cannot be undone; resolves to whether the user confirmed. Cancel has the focus. */
function confirmAction(title, text, action) {
  return new Promise((resolve) => {
    const dialog = $("confirm-dialog");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-ok").textContent = action;
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

// ---- collections ---------------------------------------------------------------------------------------------

const counts = (c) => `${c.documents} documents · ${c.chunks} chunks · ${c.failed} failed`;

async function loadCollections() {
  let collections;
  try {
    collections = await api("/v1/collections");
  } catch (err) {
    toast(`Could not list collections: ${err.message}`);
    return;
  }
  const wanted = state.collection || localStorage.getItem(COLLECTION_STORAGE);
  const chosen = collections.some((c) => c.name === wanted) ? wanted : collections[0]?.name || null;
  const list = $("collection-list");
  list.replaceChildren(
    ...collections.map((c) => {
      const button = el("button", {
        cls: "collection-button",
        attrs: { type: "button", "data-name": c.name, "aria-pressed": String(c.name === chosen) },
      });
      button.append(el("span", { cls: "collection-name", text: c.name }), el("span", { cls: "collection-counts", text: counts(c) }));
      if (c.description) button.append(el("span", { cls: "collection-description muted", text: c.description }));
      button.addEventListener("click", () => choose(c.name));
      const item = el("li");
      item.append(button);
      return item;
    }),
  );
  if (!collections.length) list.append(el("li", { cls: "muted", text: "No collections you may read." }));
  if (chosen !== state.collection) choose(chosen);
}

function choose(name) {
  state.collection = name;
  if (name) localStorage.setItem(COLLECTION_STORAGE, name);
  for (const button of document.querySelectorAll(".collection-button")) {
    button.setAttribute("aria-pressed", String(button.dataset.name === name));
  }
  documents.show(name);
}

// ---- the page ---------------------------------------------------------------------------------------------------

const jobs = new JobsView({
  onError: toast,
  onFinished: () => {
    loadCollections();
    documents.reload();
  },
});
const documents = new DocumentsView({
  confirm: confirmAction,
  onError: toast,
  onChanged: loadCollections,
  onJob: (job) => jobs.follow(job),
  notify: toast,
});
const keys = new KeysView({ confirm: confirmAction, onError: toast });

document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && jobs.reload());

async function start() {
  await loadCollections();
  jobs.reload();
  keys.load();
}

start();
