// Message search (search_messages): the conversations' search box also searches what was
// written in them. Enter (or the button under the box) lists the messages found, newest
// first, a page at a time; a result opens its conversation at that message.

import { $, clear, el } from "./dom.js";
import { t } from "./i18n.js";
import { MTPError, Offline } from "./mtp.js";

const PAGE = 20;
const REVEAL_PAGES = 20;  // history pages loaded, at most, to show a result far back
const WORD = /[\p{L}\p{N}]/u;

// The parts of `text` with the words searched for (lower case) marked at the start of words;
// `ё` matches `е`, as the server finds it.
function marked(text, words) {
  const plain = text.toLowerCase().replaceAll("ё", "е");
  const wanted = words.map((word) => word.replaceAll("ё", "е")).filter(Boolean);
  const parts = [];
  let from = 0;
  let at = 0;
  while (at < plain.length) {
    const word = wanted.find((w) => plain.startsWith(w, at) && (at === 0 || !WORD.test(plain[at - 1])));
    if (!word) {
      at += 1;
      continue;
    }
    if (at > from) parts.push(text.slice(from, at));
    parts.push(el("mark", { text: text.slice(at, at + word.length) }));
    at += word.length;
    from = at;
  }
  if (from < text.length) parts.push(text.slice(from));
  return parts;
}

// A long text from a little before its first marked word, on one line.
function snippet(text, words) {
  const line = text.replace(/\s+/g, " ").trim();
  const plain = line.toLowerCase().replaceAll("ё", "е");
  const first = Math.min(...words.map((word) => {
    const found = plain.indexOf(word.replaceAll("ё", "е"));
    return found < 0 ? Infinity : found;
  }));
  return first > 40 && first !== Infinity ? `…${line.slice(first - 30)}` : line;
}

export class Search {
  constructor(app) {
    this.app = app;
    this.query = "";     // what the results shown are of ("": none shown)
    this.next = null;    // the token of the next page
    this.words = [];
    this.count = 0;
  }

  bind() {
    const box = $("#flow-filter");
    box.addEventListener("input", () => this.typed());
    box.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && box.value.trim()) {
        event.preventDefault();
        this.run(box.value.trim());
      } else if (event.key === "Escape" && box.value) {
        event.preventDefault();
        box.value = "";
        this.typed();
      }
    });
    $("#search-messages").addEventListener("click", () => this.run(box.value.trim()));
    $("#results-more").addEventListener("click", () => this.more());
    $("#results-close").addEventListener("click", () => {
      box.value = "";
      this.typed();
      box.focus();
    });
  }

  // The box changed: offer a message search; results of another text go.
  typed() {
    const text = $("#flow-filter").value.trim();
    const go = $("#search-messages");
    go.hidden = !text || text === this.query;
    if (text) go.textContent = t("search_messages_for", text);
    if (this.query && text !== this.query) this.close();
    this.app.view.renderFlows();
  }

  close() {
    this.query = "";
    this.next = null;
    $("#sidebar").classList.remove("searching");
    $("#results").hidden = true;
    clear($("#results-list"));
  }

  async run(text) {
    if (!text || !this.app.session) return;
    this.query = text;
    this.next = null;
    this.count = 0;
    $("#search-messages").hidden = true;
    $("#sidebar").classList.add("searching");
    $("#results").hidden = false;
    clear($("#results-list"));
    await this.page(text, null);
  }

  async more() {
    if (this.next) await this.page(this.query, this.next);
  }

  async page(text, token) {
    const status = $("#results-status");
    const more = $("#results-more");
    status.textContent = t("searching");
    more.hidden = true;
    let reply;
    try {
      const search = { text, order: "recent", limit: PAGE };
      if (token) search.next_batch = token;
      reply = await this.app.call("search_messages", { search });
    } catch (error) {
      if (text !== this.query) return;
      status.textContent = error instanceof Offline ? t("offline")
        : error instanceof MTPError && error.code === 429 ? t("too_many")
          : t("error", error.message);
      return;
    }
    if (text !== this.query) return;  // another search began meanwhile
    const found = reply.data.search || {};
    this.words = found.highlights || [];
    this.next = found.next_batch || null;
    const list = $("#results-list");
    for (const message of reply.data.message || []) {
      this.app.wantUser(message.from_user);
      list.append(this.item(message));
      this.count += 1;
    }
    status.textContent = this.count ? t("messages_found", this.next ? `${this.count}+` : this.count)
      : t("no_messages_found");
    more.hidden = !this.next;
  }

  item(message) {
    const view = this.app.view;
    const entry = this.app.flows.get(message.from_flow);
    const title = entry ? this.app.flowTitle(entry.flow) : "…";
    const author = message.from_user === this.app.session.uuid ? t("you")
      : this.app.userName(message.from_user);
    const text = message.text ? snippet(message.text, this.words) : view.summary(message);
    return el("li", {}, el("button", {
      type: "button", class: "flow result", "data-message": message.uuid,
      onclick: () => this.open(message),
    },
    view.avatar(title, message.from_flow),
    el("span", { class: "flow-main" },
      el("span", { class: "flow-top" },
        el("span", { class: "flow-title", text: title }),
        el("time", { class: "flow-time", text: view.shortTime(message.time) })),
      el("span", { class: "result-text" },
        el("span", { class: "result-author", "data-user": message.from_user, text: `${author}: ` }),
        ...marked(text, this.words)))));
  }

  // Authors' names arrive after the results: put them in.
  refreshAuthors() {
    for (const node of document.querySelectorAll("#results-list .result-author")) {
      const uuid = node.dataset.user;
      node.textContent = `${uuid === this.app.session.uuid ? t("you") : this.app.userName(uuid)}: `;
    }
  }

  // Opens a result's conversation and shows the message there, loading older pages of its
  // history as far as it takes (up to REVEAL_PAGES).
  async open(message) {
    await this.app.open(message.from_flow);
    const entry = this.app.flows.get(message.from_flow);
    if (!entry) return;
    for (let pages = 0; pages < REVEAL_PAGES && entry.loaded && entry.start > 0
         && !entry.messages.some((m) => m.uuid === message.uuid); pages += 1) {
      await this.app.older();
    }
    const row = document.querySelector(`#messages [data-uuid="${CSS.escape(message.uuid)}"]`);
    if (!row || this.app.current !== message.from_flow) return;
    row.scrollIntoView({ block: "center" });
    row.classList.add("found");
    setTimeout(() => row.classList.remove("found"), 2500);
  }
}
