// Mentions (the server's `mentions` MTP extension): typing "@" in the composer offers the
// conversation's members (a listbox under the keyboard's control), choosing one writes
// "@Name", and a send names the members whose "@Name" is still in the text.

import { $, clear, el } from "./dom.js";
import { t } from "./i18n.js";

const SHOWN = 6;  // members offered at once

export class Mentions {
  constructor(app) {
    this.app = app;
    this.chosen = new Map();  // "@Name" -> uuid, for the message being written
    this.offered = [];
    this.active = 0;
  }

  // The word being typed, if it starts with "@": [its start, the text after "@"].
  typed(box) {
    const before = box.value.slice(0, box.selectionStart);
    const match = /(^|\s)@([^\s@]*)$/.exec(before);
    return match ? [before.length - match[2].length - 1, match[2]] : null;
  }

  // The composer changed: offer the members the typed "@..." fits, or close the list.
  update(box) {
    const found = this.typed(box);
    const entry = this.app.flows.get(this.app.current);
    if (!found || !entry) {
      this.close();
      return;
    }
    for (const uuid of entry.flow.users) this.app.wantUser(uuid);  // names to offer
    const wanted = found[1].toLowerCase();
    this.offered = entry.flow.users.filter((uuid) => uuid !== this.app.session.uuid)
      .map((uuid) => ({ uuid, name: this.app.userName(uuid), login: (this.app.users.get(uuid) || {}).login || "" }))
      .filter((user) => user.name.toLowerCase().startsWith(wanted) || user.login.toLowerCase().startsWith(wanted))
      .slice(0, SHOWN);
    if (!this.offered.length) {
      this.close();
      return;
    }
    this.active = Math.min(this.active, this.offered.length - 1);
    this.render();
  }

  render() {
    const list = clear($("#mention-list"));
    this.offered.forEach((user, index) => {
      list.append(el("li", {
        id: `mention-${index}`, role: "option", class: "mention-option",
        "aria-selected": String(index === this.active),
        onmousedown: (event) => {
          event.preventDefault();  // the composer keeps the focus
          this.choose(index);
        },
      }, el("span", { text: user.name }), user.login ? el("span", { class: "muted small", text: ` @${user.login}` }) : null));
    });
    list.hidden = false;
    $("#text").setAttribute("aria-activedescendant", `mention-${this.active}`);
  }

  close() {
    this.offered = [];
    this.active = 0;
    $("#mention-list").hidden = true;
    $("#text").removeAttribute("aria-activedescendant");
  }

  // A key in the composer; true when the list used it.
  key(event) {
    if (!this.offered.length) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.offered.length) % this.offered.length;
      this.render();
    } else if (event.key === "Enter" || event.key === "Tab") {
      this.choose(this.active);
    } else if (event.key === "Escape") {
      this.close();
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  choose(index) {
    const user = this.offered[index];
    const box = $("#text");
    const found = this.typed(box);
    if (!user || !found) return;
    const label = `@${user.name}`;
    const end = box.selectionStart;
    box.value = `${box.value.slice(0, found[0])}${label} ${box.value.slice(end)}`;
    const caret = found[0] + label.length + 1;
    box.setSelectionRange(caret, caret);
    this.chosen.set(label, user.uuid);
    this.close();
    box.focus();
  }

  // Whom a text about to be sent names (those chosen whose "@Name" it still holds).
  take(text) {
    const named = [...this.chosen].filter(([label]) => text.includes(label)).map(([, uuid]) => uuid);
    this.chosen.clear();
    this.close();
    return named.length ? { mentions: [...new Set(named)] } : {};
  }

  // Whether a message names this user.
  mentionsMe(message) {
    return (message.mentions || []).includes(this.app.session.uuid);
  }
}
