// Reactions (the server's `reactions` MTP extension): the counts under a message, who used each
// key, taking one's own on and off, and the small picker of keys.

import { $, clear, el } from "./dom.js";
import { t } from "./i18n.js";

export const PICKS = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

export class Reactions {
  constructor(app) {
    this.app = app;
  }

  // The row of keys under a message, or null when nobody reacted.
  row(message) {
    const groups = message.reactions || [];
    if (!groups.length) return null;
    const me = this.app.session.uuid;
    const row = el("div", { class: "reactions", role: "group", "aria-label": t("reactions") });
    for (const group of groups) {
      const names = group.users.map((uuid) => (uuid === me ? t("you") : this.app.userName(uuid)));
      const label = t("reaction_label", group.key, group.users.length, names.join(", "));
      row.append(el("button", {
        type: "button", class: "reaction", "data-react": group.key, title: label,
        "aria-label": label, "aria-pressed": String(group.users.includes(me)),
        text: `${group.key} ${group.users.length}`,
      }));
    }
    return row;
  }

  // Put this user's reaction `key` on a message, or take it back if it is there.
  async toggle(message, key) {
    const me = this.app.session.uuid;
    const mine = (message.reactions || []).some((group) => group.key === key && group.users.includes(me));
    const reply = await this.app.act("react", { message: [{ uuid: message.uuid, reaction: key, remove: mine }] });
    if (reply) this.app.reacted({ ...reply.data.message[0], from_flow: message.from_flow });
  }

  // The picker: a dialog of common keys; choosing one reacts with it.
  pick(message) {
    const list = clear($("#react-picks"));
    for (const key of PICKS) {
      list.append(el("li", {}, el("button", {
        type: "button", class: "react-pick", text: key, "aria-label": t("react_with", key),
        onclick: () => {
          $("#react-dialog").close();
          this.toggle(message, key);
        },
      })));
    }
    $("#react-dialog").showModal();
  }
}
