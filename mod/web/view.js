// What the page shows, and what its controls do. Every user-supplied string goes through
// textContent (dom.el's `text`), never through markup.

import { $, clear, el, icon } from "./dom.js";
import { t } from "./i18n.js";
import { firstLine, formatted } from "./format.js";
import { imageSize, imageType, shownSize } from "./images.js";
import { MTPError, Offline } from "./mtp.js";

// Files travel base64-encoded inside one websocket frame, and each frame is queued whole on the
// server (its default SEND_QUEUE_BYTES is 8 MiB): 4 MiB of file is 5.4 MiB of base64.
export const MAX_FILE = 4 * 1024 * 1024;
const FILE_FIELDS = ["file_picture", "file_video", "file_audio", "file_document"];
const GROUP_GAP = 300;  // seconds: messages of one author closer than this share a header
// The buttons beside a message, as line icons (labelled for screen readers and as tooltips).
const ICONS = {
  reply: "M10 8L5 12l5 4M5 12h9a5 5 0 0 1 5 5v1",
  react: "M12 3.5a8.5 8.5 0 1 1 0 17a8.5 8.5 0 0 1 0-17zM8.5 14a4 4 0 0 0 7 0M9 9.5v.5M15 9.5v.5",
  edit: "M4 20h4L19 9l-4-4L4 16zM13.5 6.5l4 4",
  delete: "M5 7h14M10 7V4.5h4V7M7 7l1 13h8l1-13M10.5 11v5M13.5 11v5",
};

// A deleted message: the server says so in `deleted` (PROTOCOL.md); from a server older than
// that field, delete_message's traces: this text, the edited flag, and no files or emoji.
export function isDeleted(message) {
  if (typeof message.deleted === "boolean") return message.deleted;
  return Boolean(message.edited_status && message.text === "Message deleted"
    && !message.emoji && !FILE_FIELDS.some((field) => message[field]));
}

export function fileField(type) {
  if (type.startsWith("image/")) return "file_picture";
  if (type.startsWith("video/")) return "file_video";
  if (type.startsWith("audio/")) return "file_audio";
  return "file_document";
}

function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function download(base64, name, type) {
  let bytes;
  try {
    bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  } catch {
    bytes = new TextEncoder().encode(base64);  // not base64: the text as it came
  }
  const url = URL.createObjectURL(new Blob([bytes], type ? { type } : {}));
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export class View {
  constructor(app) {
    this.app = app;
    this.editing = null;
    this.register = false;
    const lang = document.documentElement.lang;
    this.clock = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" });
    this.date = new Intl.DateTimeFormat(lang, { day: "numeric", month: "long", year: "numeric" });
  }

  // -- the page's controls ----------------------------------------------------------------------

  bind() {
    const lang = document.documentElement.lang;
    this.clock = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" });
    this.date = new Intl.DateTimeFormat(lang, { day: "numeric", month: "long", year: "numeric" });
    $("#auth").addEventListener("submit", (event) => this.submitAuth(event));
    $("#auth-switch").addEventListener("click", () => this.switchAuth(!this.register));
    $("#logout").addEventListener("click", () => this.app.logout());
    $("#flow-filter").addEventListener("input", () => this.renderFlows());
    $("#back").addEventListener("click", () => {
      const uuid = this.app.current;
      this.closeFlow();
      const button = $(`#flows [data-flow="${uuid}"]`);  // the keyboard goes on from where it was
      if (button) button.focus();
    });
    $("#composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitText();
    });
    const text = $("#text");
    text.addEventListener("keydown", (event) => this.composerKey(event));
    text.addEventListener("input", () => {
      this.grow();
      if (!this.editing) this.app.mentions.update(text);
      if (!this.editing && this.app.current) this.app.typing.typed(this.app.current, text.value);
    });
    text.addEventListener("paste", (event) => {
      const file = event.clipboardData && event.clipboardData.files[0];
      if (!file || this.editing) return;
      event.preventDefault();
      this.app.sendFile(file, "");
    });
    $("#attach").addEventListener("click", () => $("#file").click());
    $("#file").addEventListener("change", () => {
      const file = $("#file").files[0];
      if (file) this.app.sendFile(file, text.value.trim());
      if (file && text.value.trim()) text.value = "";
      $("#file").value = "";
    });
    $("#cancel-edit").addEventListener("click", () => this.stopEditing());
    $("#cancel-reply").addEventListener("click", () => this.app.replies.stop());
    $("#messages").addEventListener("scroll", () => {
      if ($("#messages").scrollTop < 300) this.app.older();
      this.updateJump();
    });
    $("#jump").addEventListener("click", () => {
      $("#messages").scrollTop = $("#messages").scrollHeight;
      this.updateJump();
      $("#text").focus();
    });
    $("#messages").addEventListener("click", (event) => this.messageClick(event));
    for (const button of document.querySelectorAll("dialog .close")) {
      button.addEventListener("click", () => button.closest("dialog").close());
    }
    $("#viewer").addEventListener("click", () => $("#viewer").close());  // anywhere closes it
    $("#viewer").addEventListener("close", () => $("#viewer-image").removeAttribute("src"));
    $("#new-flow").addEventListener("click", () => this.newFlow());
    $("#new-type").addEventListener("change", () => this.newType());
    $("#new-form").addEventListener("submit", (event) => this.submitNew(event));
    $("#browse").addEventListener("click", () => this.browse());
    $("#settings").addEventListener("click", () => this.settings());
    $("#password-form").addEventListener("submit", (event) => this.submitPassword(event));
    $("#profile-form").addEventListener("submit", (event) => this.submitProfile(event));
    $("#avatar-choose").addEventListener("click", () => $("#avatar-file").click());
    $("#avatar-file").addEventListener("change", () => {
      const file = $("#avatar-file").files[0];
      $("#avatar-file").value = "";
      if (file) this.changePicture(file);
    });
    $("#avatar-remove").addEventListener("click", () => this.changePicture(null));
    $("#notify-on").addEventListener("change", () => this.turnNotifications());
    $("#invite-form").addEventListener("submit", (event) => this.submitInvite(event));
    $("#notify-mode").addEventListener("change", () => {
      this.app.notifier.setMode(this.app.current, $("#notify-mode").value);
    });
    $("#browse-filter").addEventListener("input", () => this.renderPublic());
    $("#members-button").addEventListener("click", () => this.members());
    $("#leave").addEventListener("click", () => {
      if (!confirm(t("confirm_leave"))) return;
      $("#members-dialog").close();
      this.app.leave();
    });
    document.addEventListener("visibilitychange", () => {
      const entry = this.app.flows.get(this.app.current);
      if (entry && this.visible()) {
        this.app.markSeen(entry);
        this.renderFlows();
      }
    });
  }

  showLogin(message = "") {
    $("#chat-view").hidden = true;
    $("#login-view").hidden = false;
    this.offline(false);
    this.switchAuth(false);  // whoever comes next most likely has an account
    $("#auth-password").value = "";
    $("#auth-error").textContent = message;
    clear($("#flows"));
    clear($("#messages"));
    $("#auth-login").focus();
  }

  showChat() {
    $("#login-view").hidden = true;
    $("#chat-view").hidden = false;
    $("#me").textContent = this.app.session.login;
    this.app.wantUser(this.app.session.uuid);
    this.closeFlow();
  }

  switchAuth(register) {
    this.register = register;
    $("#auth-username-row").hidden = !register;
    $("#auth-submit").textContent = t(register ? "register" : "log_in");
    $("#auth-switch").textContent = t(register ? "have_account" : "no_account");
    $("#auth-password").autocomplete = register ? "new-password" : "current-password";
  }

  async submitAuth(event) {
    event.preventDefault();
    const login = $("#auth-login").value.trim();
    const password = $("#auth-password").value;
    if (!login || !password) {
      $("#auth-error").textContent = t("login_needed");
      return;
    }
    $("#auth-error").textContent = "";
    $("#auth-submit").disabled = true;
    try {
      await this.app.authenticate(this.register, login, password,
        $("#auth-username").value.trim(), $("#auth-remember").checked);
      $("#auth-password").value = "";
    } catch (error) {
      $("#auth-error").textContent = this.authError(error, login);
    } finally {
      $("#auth-submit").disabled = false;
    }
  }

  // The server's reasons are English; the common ones are said in the page's language.
  authError(error, login) {
    if (!(error instanceof MTPError)) return error.message;
    if (error.code === 401) return t("wrong_password");
    if (error.code === 409) return t("login_taken", login);
    if (error.code === 429) return t("too_many");
    return t("error", error.message);
  }

  offline(shown) {
    $("#offline").hidden = !shown;
  }

  notice(text) {
    const box = $("#notice");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  visible() {
    return document.visibilityState === "visible";
  }

  // -- the list of flows ------------------------------------------------------------------------

  renderFlows() {
    if (!this.app.session) return;
    const filter = $("#flow-filter").value.trim().toLowerCase();
    const entries = [...this.app.flows.values()]
      .filter((entry) => !filter || this.app.flowTitle(entry.flow).toLowerCase().includes(filter))
      .sort((a, b) => this.activity(b) - this.activity(a));
    const list = clear($("#flows"));
    for (const flow of this.app.invites.flows.values()) list.append(this.invitation(flow));
    for (const entry of entries) {
      const flow = entry.flow;
      const unread = this.app.unread(entry);
      const title = this.app.flowTitle(flow);
      const last = entry.last;
      const preview = last ? `${last.from_user === this.app.session.uuid ? t("you")
        : this.app.userName(last.from_user)}: ${this.summary(last)}` : t(flow.type);
      list.append(el("li", {},
        el("button", {
          type: "button", class: `flow${flow.uuid === this.app.current ? " current" : ""}`,
          "data-flow": flow.uuid, "aria-current": flow.uuid === this.app.current ? "true" : null,
          onclick: () => this.app.open(flow.uuid),
        },
        this.avatar(title, flow.uuid, this.chatPicture(flow)),
        el("span", { class: "flow-main" },
          el("span", { class: "flow-top" },
            el("span", { class: "flow-title", text: title }),
            el("time", { class: "flow-time", text: last ? this.shortTime(last.time) : "" })),
          el("span", { class: "flow-bottom" },
            el("span", { class: "flow-last", text: preview }),
            unread ? el("span", { class: "badge", text: String(unread), "aria-label": t("unread", unread) }) : null)))));
    }
    $("#no-flows").hidden = this.app.flows.size + this.app.invites.flows.size > 0
      || !this.app.loaded;
    this.renderUnread();
  }

  // A chat shows the other member's picture, when they have one.
  chatPicture(flow) {
    if (flow.type !== "chat") return "";
    const other = flow.users.find((uuid) => uuid !== this.app.session.uuid);
    return (this.app.users.get(other) || {}).avatar || "";
  }

  invitation(flow) {
    const title = flow.title || t(flow.type);
    return el("li", { class: "invitation" },
      this.avatar(title, flow.uuid),
      el("span", { class: "flow-main" },
        el("span", { class: "flow-title", text: title }),
        el("span", { class: "flow-last", text: t("invitation") })),
      el("button", { type: "button", class: "primary", text: t("accept"),
        "aria-label": `${t("accept")}: ${title}`, onclick: () => this.app.invites.accept(flow) }),
      el("button", { type: "button", class: "link", text: t("decline"),
        "aria-label": `${t("decline")}: ${title}`, onclick: () => this.app.invites.decline(flow) }));
  }

  async submitInvite(event) {
    event.preventDefault();
    const login = $("#invite-login").value.trim();
    if (!login || !this.app.current) return;
    try {
      $("#invite-result").textContent = await this.app.invites.invite(this.app.current, login);
      $("#invite-login").value = "";
    } catch (error) {
      $("#invite-result").textContent = error instanceof MTPError ? t("error", error.message)
        : error.message;
    }
  }

  // The total unread in the tab's title; on a phone, where the list is behind the back
  // button, what waits in the other conversations on that button.
  renderUnread() {
    let all = 0;
    let elsewhere = 0;
    for (const entry of this.app.flows.values()) {
      const unread = this.app.unread(entry);
      all += unread;
      if (entry.flow.uuid !== this.app.current) elsewhere += unread;
    }
    document.title = all ? `(${all}) Morelia` : "Morelia";
    const back = $("#back");
    if (elsewhere) back.dataset.unread = String(elsewhere);
    else delete back.dataset.unread;
    back.setAttribute("aria-label", back.dataset.unread ? `${t("back")} (${t("unread", elsewhere)})` : t("back"));
  }

  memberCount(flow) {
    return flow.users.length === 1 ? t("members_one") : t("members_count", flow.users.length);
  }

  activity(entry) {
    return entry.last ? entry.last.time : entry.flow.time || 0;
  }

  avatar(name, seed, picture = "") {
    const type = picture ? imageType(picture) : null;
    if (type) {
      return el("img", { class: "avatar", src: `data:${type};base64,${picture}`, alt: "",
        width: 42, height: 42 });
    }
    let hash = 0;
    for (const char of seed) hash = (hash * 31 + char.charCodeAt(0)) % 360;
    const node = el("span", { class: "avatar", "aria-hidden": "true", text: (name.trim()[0] || "?").toUpperCase() });
    node.dataset.hue = String(hash % 12);
    return node;
  }

  summary(message) {
    if (isDeleted(message)) return t("deleted");
    if (message.text) return firstLine(message.text);
    if (message.file_picture) return t("picture");
    if (message.file_video) return t("video");
    if (message.file_audio) return t("audio");
    if (message.file_document) return t("file");
    return message.emoji || "";
  }

  shortTime(seconds) {
    const when = new Date(seconds * 1000);
    return when.toDateString() === new Date().toDateString() ? this.clock.format(when)
      : when.toLocaleDateString(document.documentElement.lang, { day: "numeric", month: "short" });
  }

  // -- one flow ---------------------------------------------------------------------------------

  openFlow(entry) {
    this.app.typing.stop();
    this.stopEditing();
    this.app.replies.stop();
    this.app.mentions.take("");
    this.below = 0;
    $("#chat-view").classList.add("open");
    $("#pick").hidden = true;
    $("#messages").hidden = false;
    clear($("#messages")).append(el("li", { class: "day", text: t("loading") }));
    this.renderHeader();
    this.renderTyping();
    this.renderFlows();
    $("#text").focus();
  }

  // Who else types in the open conversation; looked at again once a notice may have lapsed.
  renderTyping() {
    const line = this.app.current ? this.app.typing.line(this.app.current) : "";
    const list = $("#messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    $("#typing").textContent = line;
    $("#typing").hidden = !line;
    if (atBottom) list.scrollTop = list.scrollHeight;  // the line takes room from the list
    clearTimeout(this.typingTimer);
    if (line) this.typingTimer = setTimeout(() => this.renderTyping(), 36000);
  }

  renderHeader() {
    const entry = this.app.flows.get(this.app.current);
    if (!entry) return;
    const flow = entry.flow;
    $("#flow-title").textContent = this.app.flowTitle(flow);
    $("#flow-info").textContent = flow.info || this.memberCount(flow);
    $("#members-button").hidden = false;
    const mute = flow.type === "channel" && flow.owner !== this.app.session.uuid;
    $("#composer").hidden = mute;
    $("#read-only").hidden = !mute;
  }

  closeFlow() {
    this.app.typing.stop();
    if (this.app.current) history.replaceState(null, "", location.pathname);
    this.app.current = null;
    this.stopEditing();
    $("#chat-view").classList.remove("open");
    $("#pick").hidden = false;
    $("#messages").hidden = true;
    $("#composer").hidden = true;
    $("#read-only").hidden = true;
    $("#members-button").hidden = true;
    $("#jump").hidden = true;
    $("#flow-title").textContent = "";
    $("#flow-info").textContent = "";
    this.renderFlows();
  }

  renderMessages(entry, toBottom) {
    const list = $("#messages");
    const height = list.scrollHeight;
    const top = list.scrollTop;
    const items = [];
    let previous = null;
    for (const message of entry.messages) {
      items.push(...this.messageItems(entry, message, previous));
      previous = message;
    }
    if (!items.length) items.push(this.emptyItem(entry));
    list.replaceChildren(...items);
    if (toBottom) {
      list.scrollTop = list.scrollHeight;
      this.below = 0;
    } else list.scrollTop = top + list.scrollHeight - height;
    this.updateJump();
  }

  emptyItem(entry) {
    const writes = entry.flow.type !== "channel" || entry.flow.owner === this.app.session.uuid;
    return el("li", { class: "empty muted", text: t(writes ? "say_hello" : "no_messages") });
  }

  // "Jump to the latest" shows when the reader is a screen or more above the end, or when
  // messages came below where they are reading (with how many).
  // A picture whose size its header did not give grew when decoded: a conversation read at its
  // end stays there.
  keepAtEnd() {
    const list = $("#messages");
    if (this.atEnd) list.scrollTop = list.scrollHeight;
    this.updateJump();
  }

  updateJump() {
    const list = $("#messages");
    const jump = $("#jump");
    const away = list.scrollHeight - list.scrollTop - list.clientHeight;
    this.atEnd = away < 80;
    if (away < 80) this.below = 0;
    jump.hidden = list.hidden || (away < list.clientHeight && !this.below);
    const label = this.below ? t("new_messages", this.below) : t("to_latest");
    jump.textContent = this.below ? `↓ ${label}` : "↓";
    jump.setAttribute("aria-label", label);
    jump.title = label;
  }

  // A message's row, preceded by a day separator when it starts a day.
  messageItems(entry, message, previous) {
    const items = [];
    const day = new Date(message.time * 1000).toDateString();
    const newDay = !previous || new Date(previous.time * 1000).toDateString() !== day;
    if (newDay) items.push(el("li", { class: "day", text: this.dayLabel(message.time) }));
    const follows = !newDay && previous.from_user === message.from_user
      && message.time - previous.time < GROUP_GAP;
    items.push(this.messageRow(entry, message, follows));
    return items;
  }

  dayLabel(seconds) {
    const when = new Date(seconds * 1000);
    const today = new Date();
    if (when.toDateString() === today.toDateString()) return t("today");
    today.setDate(today.getDate() - 1);
    if (when.toDateString() === today.toDateString()) return t("yesterday");
    return this.date.format(when);
  }

  messageRow(entry, message, follows) {
    const mine = message.from_user === this.app.session.uuid;
    const deleted = isDeleted(message);
    const named = !mine && !deleted && this.app.mentions.mentionsMe(message);
    const row = el("li", {
      class: `message${mine ? " mine" : ""}${follows ? " follows" : ""}${deleted ? " deleted" : ""}${named ? " mentioned" : ""}`,
      "data-uuid": message.uuid || null,
    });
    if (!follows) {
      row.append(el("span", { class: "author", "data-user": message.from_user, text: mine ? t("you") : this.app.userName(message.from_user) }));
    }
    const bubble = el("div", { class: "bubble" });
    if (deleted) bubble.append(el("span", { class: "text", text: t("deleted") }));
    else {
      bubble.append(this.app.replies.quote(entry, message) || []);
      this.attachments(message, bubble);
      if (message.text) bubble.append(el("div", { class: "text" }, formatted(message.text)));
      else if (message.emoji && !FILE_FIELDS.some((field) => message[field])) {
        bubble.append(el("span", { class: "text", text: message.emoji }));
      }
    }
    const foot = el("span", { class: "foot" });
    if (named) foot.append(el("span", { class: "mention-mark", text: t("mentions_you") }));
    if (message.edited_status && !deleted) foot.append(el("span", { class: "edited", text: t("edited") }));
    foot.append(el("time", { text: this.clock.format(new Date((message.time || Date.now() / 1000) * 1000)) }));
    bubble.append(foot);
    row.append(bubble);
    if (!deleted) row.append(this.app.reactions.row(message) || []);
    if (message.uuid && !deleted) row.append(this.messageActions(entry, message, mine));
    return row;
  }

  // The buttons beside a message: reply (where this user writes), react, and for its author
  // (or the flow's owner) edit and delete.
  messageActions(entry, message, mine) {
    const owner = entry.flow.owner === this.app.session.uuid;
    const action = (name, label) => el("button", { type: "button", class: name,
      "data-action": name, "aria-label": t(label), title: t(label) }, icon(ICONS[name]));
    const actions = el("span", { class: "actions" });
    if (entry.flow.type !== "channel" || owner) actions.append(action("reply", "reply_to_message"));
    actions.append(action("react", "react_to_message"));
    if (mine && (message.text || !FILE_FIELDS.some((field) => message[field]))) {
      actions.append(action("edit", "edit_message"));
    }
    if (mine || owner) actions.append(action("delete", "delete_message"));
    return actions;
  }

  attachments(message, bubble) {
    for (const field of FILE_FIELDS) {
      const data = message[field];
      if (!data) continue;
      const type = field === "file_picture" ? imageType(data) : null;
      if (type) {
        const src = `data:${type};base64,${data}`;
        const size = imageSize(data, type);
        const [width, height] = size ? shownSize(size) : [undefined, undefined];
        const picture = el("img", { class: "picture", src, alt: t("picture"), width, height });
        picture.addEventListener("load", () => this.keepAtEnd());
        bubble.append(el("button", { type: "button", class: "picture-open", "aria-label": t("open_picture"),
          onclick: () => this.viewPicture(src) }, picture));
        continue;
      }
      const label = t(field.slice(5) === "document" ? "file" : field.slice(5));
      const name = message.file_name || `${label}-${(message.uuid || "new").slice(0, 8)}`;
      const size = `${Math.ceil(data.length * 3 / 4 / 1024)} KB`;
      bubble.append(el("button", {
        type: "button", class: "attachment",
        "aria-label": t("download", message.file_name || label.toLowerCase()),
        text: `↓ ${message.file_name || label} (${size})`,
        onclick: () => download(data, name, message.file_type),
      }));
    }
  }

  viewPicture(src) {
    $("#viewer-image").src = src;
    $("#viewer").showModal();
  }

  appendMessage(entry, message, pendingCid) {
    if (this.app.current !== entry.flow.uuid) return;
    const list = $("#messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const index = entry.messages.indexOf(message);
    const previous = index > 0 ? entry.messages[index - 1] : null;
    const items = this.messageItems(entry, message, previous);
    const pending = pendingCid !== null && list.querySelector(`[data-pending="${pendingCid}"]`);
    if (pending) {
      pending.replaceWith(...items);
    } else {
      const firstPending = list.querySelector("[data-pending]");
      if (firstPending) firstPending.before(...items);
      else list.append(...items);
    }
    for (const empty of list.querySelectorAll(".empty")) empty.remove();
    if (atBottom || message.from_user === this.app.session.uuid) list.scrollTop = list.scrollHeight;
    else this.below = (this.below || 0) + 1;
    this.updateJump();
  }

  updateMessage(entry, message) {
    if (this.app.current !== entry.flow.uuid) return;
    const old = $(`#messages [data-uuid="${message.uuid}"]`);
    if (!old) return;
    if (this.editing === message.uuid && isDeleted(message)) this.stopEditing();
    old.replaceWith(this.messageRow(entry, message, old.classList.contains("follows")));
  }

  pendingMessage(item) {
    const entry = this.app.flows.get(item.flow);
    if (!entry || this.app.current !== item.flow) return;
    const message = { ...item.content, from_user: this.app.session.uuid, time: Date.now() / 1000 };
    const row = this.messageRow(entry, message, false);
    row.classList.add("pending");
    row.dataset.pending = String(item.cid);
    row.querySelector(".foot").prepend(el("span", { class: "state", text: t("sending") }));
    const list = $("#messages");
    for (const empty of list.querySelectorAll(".empty")) empty.remove();
    list.append(row);
    list.scrollTop = list.scrollHeight;
  }

  failedMessage(item) {
    const row = $(`#messages [data-pending="${item.cid}"]`);
    if (!row) return;
    row.classList.add("failed");
    row.querySelector(".state").textContent = t("failed");
    row.removeAttribute("data-pending");
  }

  refreshAuthors() {
    for (const node of document.querySelectorAll("#messages .author[data-user]")) {
      if (node.dataset.user !== this.app.session.uuid) node.textContent = this.app.userName(node.dataset.user);
    }
    for (const node of document.querySelectorAll("#members .author[data-user]")) {
      node.textContent = this.app.userName(node.dataset.user);
    }
    if (this.app.current) {
      this.renderHeader();
      this.renderTyping();
    }
    if (!this.editing && (this.app.mentions.offered.length || document.activeElement === $("#text"))) {
      this.app.mentions.update($("#text"));  // names just looked up may fit what is typed
    }
    const me = this.app.session && this.app.users.get(this.app.session.uuid);
    if (me) $("#me").textContent = me.username || me.login || this.app.session.login;
  }

  messageClick(event) {
    const button = event.target.closest("button[data-action], button[data-react], button[data-quote]");
    if (!button) return;
    if (button.dataset.quote) {
      this.app.replies.show(button.dataset.quote);
      return;
    }
    const row = button.closest("[data-uuid]");
    const entry = this.app.flows.get(this.app.current);
    const message = row && entry && entry.messages.find((m) => m.uuid === row.dataset.uuid);
    if (!message) return;
    const action = button.dataset.action;
    if (button.dataset.react) this.app.reactions.toggle(message, button.dataset.react);
    else if (action === "reply") {
      this.stopEditing();
      this.app.replies.start(message);
    } else if (action === "react") this.app.reactions.pick(message);
    else if (action === "edit") this.startEditing(message);
    else if (confirm(t("confirm_delete"))) this.app.remove(message.uuid);
  }

  // -- the composer -----------------------------------------------------------------------------

  composerKey(event) {
    if (!event.isComposing && this.app.mentions.key(event)) return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submitText();
    } else if (event.key === "Escape" && (this.editing || this.app.replies.to)) {
      event.preventDefault();
      this.stopEditing();
      this.app.replies.stop();
    } else if (event.key === "ArrowUp" && !event.target.value && !this.editing) {
      const entry = this.app.flows.get(this.app.current);
      const own = entry && [...entry.messages].reverse().find(
        (m) => m.from_user === this.app.session.uuid && !isDeleted(m) && m.text);
      if (own) {
        event.preventDefault();
        this.startEditing(own);
      }
    }
  }

  submitText() {
    const box = $("#text");
    const text = box.value.trim();
    if (this.editing) {
      if (text) this.app.edit(this.editing, text);
      this.stopEditing();
      return;
    }
    if (!text || !this.app.current) return;
    box.value = "";
    this.grow();
    this.app.typing.sent();
    this.app.send({ text, ...this.app.replies.take(), ...this.app.mentions.take(text) });
  }

  startEditing(message) {
    this.app.replies.stop();
    this.editing = message.uuid;
    $("#editing").hidden = false;
    const box = $("#text");
    box.value = message.text;
    this.grow();
    box.focus();
  }

  stopEditing() {
    if (!this.editing) return;
    this.editing = null;
    $("#editing").hidden = true;
    $("#text").value = "";
    this.grow();
  }

  grow() {
    const box = $("#text");
    box.style.height = "auto";
    box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
  }

  // -- dialogs ----------------------------------------------------------------------------------

  newFlow() {
    $("#new-form").reset();
    $("#new-error").textContent = "";
    this.newType();
    $("#new-dialog").showModal();
  }

  newType() {
    const chat = $("#new-type").value === "chat";
    $("#new-title-row").hidden = chat;
    $("#new-info-row").hidden = chat;
    $("#new-private-row").hidden = chat;
    $("#new-login-row").hidden = !chat;
  }

  async submitNew(event) {
    event.preventDefault();
    const type = $("#new-type").value;
    const title = $("#new-title").value.trim();
    const login = $("#new-login").value.trim();
    if (type !== "chat" && !title) {
      $("#new-error").textContent = t("title_needed");
      return;
    }
    try {
      await this.app.create(type, title, $("#new-info").value.trim(), login, $("#new-private").checked);
      $("#new-dialog").close();
    } catch (error) {
      $("#new-error").textContent = error.message;
    }
  }

  settings() {
    const me = this.app.users.get(this.app.session.uuid) || {};
    $("#profile-name").value = me.username || "";
    $("#profile-bio").value = me.bio || "";
    $("#profile-error").textContent = "";
    this.showPicture();
    this.showNotifications();
    $("#password-form").reset();
    $("#password-login").value = this.app.session.login;
    $("#password-error").textContent = "";
    $("#settings-dialog").showModal();
  }

  showPicture() {
    const me = this.app.users.get(this.app.session.uuid) || {};
    const name = me.username || me.login || this.app.session.login;
    clear($("#avatar-preview")).append(this.avatar(name, this.app.session.uuid, me.avatar));
    $("#avatar-remove").hidden = !me.avatar;
  }

  async changePicture(file) {
    $("#profile-error").textContent = "";
    if (file && file.size > MAX_FILE) {
      $("#profile-error").textContent = t("too_large", MAX_FILE >> 20);
      return;
    }
    try {
      const base64 = file ? String(await readAsDataURL(file)).split(",", 2)[1] || "" : "";
      await this.app.updateAvatar(base64);
      this.showPicture();
    } catch (failure) {
      $("#profile-error").textContent = t("error", failure.message);
    }
  }

  async submitProfile(event) {
    event.preventDefault();
    try {
      await this.app.updateProfile($("#profile-name").value.trim(), $("#profile-bio").value);
      $("#settings-dialog").close();
      this.notice(t("profile_saved"));
    } catch (failure) {
      $("#profile-error").textContent = t("error", failure.message);
    }
  }

  showNotifications(note = "") {
    const notifier = this.app.notifier;
    $("#notify-on").checked = notifier.on();
    $("#notify-on").disabled = !notifier.supported();
    $("#notify-note").textContent = note || (notifier.supported() ? "" : t("notify_unsupported"));
  }

  async turnNotifications() {
    const wanted = $("#notify-on").checked;
    const on = await this.app.notifier.turn(wanted);
    this.showNotifications(wanted && !on ? t("notify_blocked") : "");
  }

  async submitPassword(event) {
    event.preventDefault();
    const current = $("#password-current").value;
    const fresh = $("#password-new").value;
    const error = $("#password-error");
    if (!current || !fresh) error.textContent = t("passwords_needed");
    else if (fresh !== $("#password-repeat").value) error.textContent = t("passwords_differ");
    else {
      try {
        await this.app.changePassword(current, fresh, $("#password-others").checked);
        $("#settings-dialog").close();
        this.notice(t("password_changed"));
      } catch (failure) {
        error.textContent = failure instanceof MTPError && failure.code === 401
          ? t("wrong_current_password") : t("error", failure.message);
      }
    }
  }

  async browse() {
    $("#browse-filter").value = "";
    this.found = null;  // not asked yet: "Loading…", not "Nothing found"
    this.renderPublic();
    $("#browse-dialog").showModal();
    try {
      this.found = await this.app.publicFlows();
    } catch (error) {
      this.found = [];
      this.notice(error instanceof Offline ? t("offline") : t("error", error.message));
    }
    this.renderPublic();
  }

  renderPublic() {
    const filter = $("#browse-filter").value.trim().toLowerCase();
    const flows = (this.found || []).filter((flow) => !filter
      || `${flow.title} ${flow.info}`.toLowerCase().includes(filter));
    const list = clear($("#public-flows"));
    for (const flow of flows) {
      list.append(el("li", { class: "row-item" },
        this.avatar(flow.title || "?", flow.uuid),
        el("span", { class: "flow-main" },
          el("span", { class: "flow-title", text: flow.title || t(flow.type) }),
          el("span", { class: "flow-last", text: `${t(flow.type)} · ${this.memberCount(flow)}${flow.info ? ` · ${flow.info}` : ""}` })),
        el("button", { type: "button", class: "primary", "aria-label": `${t("join")}: ${flow.title}`, text: t("join"), onclick: () => {
          $("#browse-dialog").close();
          this.app.join(flow);
        } })));
    }
    $("#browse-empty").textContent = t(this.found ? "nothing_found" : "loading");
    $("#browse-empty").hidden = flows.length > 0;
  }

  members() {
    const entry = this.app.flows.get(this.app.current);
    if (!entry) return;
    const flow = entry.flow;
    const list = clear($("#members"));
    for (const uuid of flow.users) {
      this.app.wantUser(uuid);
      const name = this.app.userName(uuid);
      const user = this.app.users.get(uuid) || {};
      list.append(el("li", { class: "row-item" }, this.avatar(name, uuid, user.avatar),
        el("span", { class: "flow-main" },
          el("span", { class: "flow-title author", "data-user": uuid, text: name }),
          el("span", { class: "flow-last", text: `@${user.login || ""}${uuid === flow.owner ? ` · ${t("owner")}` : ""}` }))));
    }
    $("#leave").hidden = flow.owner === this.app.session.uuid && flow.type !== "chat";
    $("#invite-form").hidden = flow.type === "chat";
    $("#invite-result").textContent = "";
    $("#notify-mode").value = this.app.notifier.mode(flow.uuid);
    $("#members-dialog").showModal();
  }
}
