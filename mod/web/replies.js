// Replies (the server's `replies` MTP extension): answering a message from its menu, the bar
// above the composer while doing so, and the quote of the answered message in a reply, which
// leads to it.

import { $, el } from "./dom.js";
import { t } from "./i18n.js";

export class Replies {
  constructor(app) {
    this.app = app;
    this.to = null;  // the message being answered
  }

  start(message) {
    this.to = message;
    $("#replying-text").textContent = t("replying_to", this.app.userName(message.from_user),
      this.app.view.summary(message));
    $("#replying").hidden = false;
    $("#text").focus();
  }

  stop() {
    this.to = null;
    $("#replying").hidden = true;
  }

  // What a send answers ({} when it answers nothing), then no longer replying.
  take() {
    const to = this.to;
    this.stop();
    return to ? { reply_to: to.uuid } : {};
  }

  // The quote at the top of a reply's bubble: who wrote the answered message and its first
  // line; it scrolls to that message when it is loaded.
  quote(entry, message) {
    if (!message.reply_to) return null;
    const answered = entry.messages.find((m) => m.uuid === message.reply_to);
    const author = answered ? this.app.userName(answered.from_user) : "";
    const line = answered ? this.app.view.summary(answered) : t("earlier_message");
    return el("button", {
      type: "button", class: "quote", "data-quote": message.reply_to,
      "aria-label": t("go_to_answered", author, line),
    }, el("span", { class: "quote-author", text: author }), " ",  // read as "author line"
    el("span", { class: "quote-text", text: line }));
  }

  // Scroll to the answered message and give it the focus, if it is on the page.
  show(uuid) {
    const row = $(`#messages [data-uuid="${uuid}"]`);
    if (!row) {
      this.app.view.notice(t("not_loaded"));
      return;
    }
    row.tabIndex = -1;
    row.scrollIntoView({ block: "center" });
    row.focus();
    row.classList.add("flash");
    setTimeout(() => row.classList.remove("flash"), 1500);
  }
}
