// The chat page: collections, conversations, asking with a streamed answer, uploads by drag and drop.

import { api, askForKeyInDialog, streamEvents } from "./api.js";
import { History } from "./history.js";
import { AnswerView, el, toast, userMessage } from "./messages.js";
import { PassagePanel } from "./passage.js";
import { Uploads } from "./uploads.js";

const $ = (id) => document.getElementById(id);
const COLLECTION_STORAGE = "docqa.collection";
const EMPTY_STATE = $("empty-state").cloneNode(true);

const state = { collection: null, controller: null };

const panel = new PassagePanel((message) => toast(message));
const uploads = new Uploads(() => loadCollections(true));
const conversations = new History({
  onOpen: showConversation,
  onDeleted: (id) => id === conversations.currentId && newConversation(),
  onError: (message) => toast(message),
});

// ---- API key -------------------------------------------------------------------------------------------------

askForKeyInDialog();

// ---- collections and conversations ------------------------------------------------------------------------------

async function loadCollections(keepSelection = false) {
  const select = $("collection");
  let collections;
  try {
    collections = await api("/v1/collections");
  } catch (err) {
    toast(`Could not list collections: ${err.message}`);
    return;
  }
  const wanted = keepSelection ? state.collection : localStorage.getItem(COLLECTION_STORAGE);
  select.replaceChildren(
    ...collections.map((c) => el("option", { text: `${c.name} (${c.documents} docs)`, attrs: { value: c.name } })),
  );
  if (!collections.length) {
    select.append(el("option", { text: "no collections", attrs: { value: "" } }));
    setCollection(null);
    return;
  }
  const chosen = collections.some((c) => c.name === wanted) ? wanted : collections[0].name;
  select.value = chosen;
  if (chosen !== state.collection) setCollection(chosen);
}

function setCollection(name) {
  state.collection = name;
  if (name) localStorage.setItem(COLLECTION_STORAGE, name);
  $("drop-collection").textContent = name || "—";
  newConversation(false);
  conversations.load(name);
}

/** Show a reopened conversation's turns. */
function showConversation(conversation) {
  stopAsking();
  panel.close();
  const messages = $("messages");
  messages.replaceChildren();
  let question = "";
  for (const m of conversation.messages) {
    if (m.role === "user") {
      question = m.content;
      messages.append(userMessage(m.content));
      continue;
    }
    const view = new AnswerView(question, openPassage);
    view.finish({ ...m, answer: m.content, citations: m.citations || [] });
    messages.append(view.node);
  }
  closeSidebar();
  messages.lastElementChild?.scrollIntoView({ block: "end" });
  $("question").focus();
}

function newConversation(focus = true) {
  stopAsking();
  conversations.setCurrent(null);
  panel.close();
  $("messages").replaceChildren(EMPTY_STATE.cloneNode(true));
  closeSidebar();
  if (focus) $("question").focus();
}

// ---- asking ----------------------------------------------------------------------------------------------------

function openPassage(citation, view, trigger) {
  panel.open(citation, view, state.collection, trigger);
}

async function ask(question) {
  if (state.controller || !question.trim()) return;
  if (!state.collection) {
    toast("Pick a collection first (or upload documents into one).");
    return;
  }
  $("empty-state")?.remove();
  const messages = $("messages");
  const view = new AnswerView(question, openPassage);
  messages.append(userMessage(question), view.node);
  view.node.scrollIntoView({ block: "end" });
  setBusy(new AbortController());
  try {
    const [url, body] = await endpointFor(question);
    await streamEvents(url, body, (name, data) => {
      view.handle(name, data);
      if (name !== "citations") view.node.scrollIntoView({ block: "end" });
    }, state.controller.signal);
    if (!view.finished) view.fail("The answer stopped before it was complete.");
  } catch (err) {
    view.fail(err.name === "AbortError" ? "Stopped." : err.message);
    if (err.status === 404 && conversations.currentId) conversations.setCurrent(null); // deleted elsewhere: the next question starts anew
  } finally {
    setBusy(null);
    conversations.load(state.collection);
  }
}

/** Where to send a question: the current conversation (created on the first question), or /v1/ask. */
async function endpointFor(question) {
  if (!conversations.persisted) return ["/v1/ask", { question, collection: state.collection, stream: true }];
  const id = conversations.currentId ?? (await conversations.create(state.collection, question));
  return [`/v1/conversations/${encodeURIComponent(id)}/messages`, { content: question, stream: true }];
}

function setBusy(controller) {
  state.controller = controller;
  const send = $("send");
  send.textContent = controller ? "Stop" : "Send";
  send.setAttribute("aria-label", controller ? "Stop the answer" : "Send question");
  send.classList.toggle("button-stop", Boolean(controller));
}

function stopAsking() {
  state.controller?.abort();
}

// ---- layout, keyboard, drag and drop ------------------------------------------------------------------------------

function toggleSidebar(open) {
  document.body.classList.toggle("sidebar-open", open);
  $("sidebar-toggle").setAttribute("aria-expanded", String(open));
  $("sidebar-toggle").setAttribute("aria-label", open ? "Hide conversations" : "Show conversations");
  $("sidebar-backdrop").hidden = !open;
  if (open) $("new-conversation").focus();
}

function closeSidebar() {
  if (document.body.classList.contains("sidebar-open")) toggleSidebar(false);
}

function wireComposer() {
  const question = $("question");
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    if (state.controller) return stopAsking();
    const text = question.value;
    if (!text.trim()) return;
    question.value = "";
    autosize();
    ask(text.trim());
  });
  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (!state.controller) $("composer").requestSubmit();
    }
  });
  const autosize = () => {
    question.style.height = "auto";
    question.style.height = `${Math.min(question.scrollHeight, 200)}px`;
  };
  question.addEventListener("input", autosize);
}

function wireDragAndDrop() {
  const overlay = $("drop-overlay");
  let depth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  window.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    depth++;
    overlay.hidden = false;
  });
  window.addEventListener("dragleave", (e) => {
    if (hasFiles(e) && --depth <= 0) overlay.hidden = true;
  });
  window.addEventListener("dragover", (e) => hasFiles(e) && e.preventDefault());
  window.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    uploads.add([...e.dataTransfer.files], state.collection);
  });
  const input = $("file-input");
  $("upload-button").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    uploads.add([...input.files], state.collection);
    input.value = "";
  });
}

function wire() {
  $("collection").addEventListener("change", (e) => setCollection(e.target.value || null));
  $("new-conversation").addEventListener("click", () => newConversation());
  $("sidebar-toggle").addEventListener("click", () => toggleSidebar(!document.body.classList.contains("sidebar-open")));
  $("sidebar-backdrop").addEventListener("click", () => toggleSidebar(false));
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || $("key-dialog").open) return;
    if (panel.isOpen) panel.close();
    else if (document.body.classList.contains("sidebar-open")) {
      toggleSidebar(false);
      $("sidebar-toggle").focus();
    }
  });
  wireComposer();
  wireDragAndDrop();
}

/** The upload form accepts what the server's parsers read (GET /v1/formats), and its hint names them. */
async function loadFormats() {
  try {
    const formats = await api("/v1/formats");
    $("file-input").accept = formats.flatMap((f) => f.suffixes).join(",");
    const names = formats.map((f) => f.name).join(", ");
    $("upload-hint").textContent = `Add documents (${names}) to the current collection; you can also drop files on the page.`;
  } catch {
    // Without the list the form takes any file; the server still refuses what it cannot read, with 415.
  }
}

async function start() {
  wire();
  loadFormats();
  await conversations.detect();
  await loadCollections();
  $("question").focus();
}

start();
