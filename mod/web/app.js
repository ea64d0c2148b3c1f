// The web client: session, state kept in step with the server, and the page's events.
// Rendering is in view.js; the connection in mtp.js; the strings in i18n/.

import { loadStrings, t, translatePage } from "./i18n.js";
import { Connection, MTPError, Offline, clientId } from "./mtp.js";
import { Invites } from "./invites.js";
import { Mentions } from "./mentions.js";
import { Notifier } from "./notify.js";
import { Reactions } from "./reactions.js";
import { Replies } from "./replies.js";
import { Search } from "./search.js";
import { Typing } from "./typing.js";
import { View, fileField, MAX_FILE } from "./view.js";

const PAGE = 50;
// What a connection asks for as it binds: pushes, and the extensions the page uses.
const META = { push: true,
  extensions: ["typing", "replies", "reactions", "read", "mentions", "files"] };
const KEY = "morelia.session";

class App {
  constructor() {
    this.conn = new Connection(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
    this.conn.onpush = (frame) => this.pushed(frame);
    this.conn.onstate = (online, code) => this.connection(online, code);
    this.session = null;      // {uuid, auth_id, login}
    this.flows = new Map();   // uuid -> {flow, total, last, messages: [], start, loaded}
    this.users = new Map();   // uuid -> profile
    this.counted = new Set(); // message uuids already counted in their flow's total
    this.tallied = new Set(); // message uuids already counted as unread (or read) here
    this.outbox = [];         // sends not yet answered, in order
    this.lastTime = 0;        // get_update catches up from here after a reconnect
    this.current = null;
    this.loaded = false;
    this.waitOnline = null;
    this.notifier = new Notifier();
    this.typing = new Typing(this);
    this.invites = new Invites(this);
    this.replies = new Replies(this);
    this.reactions = new Reactions(this);
    this.mentions = new Mentions(this);
    this.search = new Search(this);
    this.view = new View(this);
  }

  async boot() {
    await loadStrings();
    translatePage();
    const saved = sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
    this.session = saved ? JSON.parse(saved) : null;
    this.view.bind();
    this.search.bind();
    if (this.session) {
      this.view.showChat();
      this.conn.start();
    } else {
      this.view.showLogin();
    }
  }

  cred() {
    return { uuid: this.session.uuid, auth_id: this.session.auth_id };
  }

  call(type, data = {}, meta = undefined) {
    return this.conn.request(type, { ...data, user: [this.cred(), ...(data.user || [])] }, meta);
  }

  online() {
    if (this.conn.online) return Promise.resolve();
    if (this.conn.stopped) this.conn.start();
    return new Promise((resolve) => { this.waitOnline = resolve; });
  }

  // -- session ----------------------------------------------------------------------------------

  async authenticate(register, login, password, username, remember) {
    await this.online();
    const user = { login, password };
    if (register && username) user.username = username;
    const reply = await this.conn.request(register ? "register_user" : "authentication",
      { user: [user] }, META);
    const found = reply.data.user[0];
    this.session = { uuid: found.uuid, auth_id: found.auth_id, login };
    (remember ? localStorage : sessionStorage).setItem(KEY, JSON.stringify(this.session));
    this.lastTime = reply.errors.time;
    this.view.showChat();
    await this.loadAll();
  }

  async updateProfile(username, bio) {
    const reply = await this.conn.request("update_profile",
      { user: [{ ...this.cred(), username, bio }] });
    this.users.set(this.session.uuid, reply.data.user[0]);
    this.view.refreshAuthors();
    this.view.renderFlows();
  }

  async updateAvatar(base64) {
    const reply = await this.conn.request("update_profile",
      { user: [{ ...this.cred(), avatar: base64 }] });
    this.users.set(this.session.uuid, reply.data.user[0]);
    this.view.refreshAuthors();
    this.view.renderFlows();
  }

  async changePassword(current, fresh, endOtherSessions) {
    const user = { ...this.cred(), password: current, new_password: fresh,
      end_other_sessions: endOtherSessions };
    await this.conn.request("change_password", { user: [user] });
  }

  logout(message = "") {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    this.session = null;
    this.conn.stop();
    this.flows.clear();
    this.invites.clear();
    this.search.close();
    this.outbox = [];
    this.counted.clear();
    this.tallied.clear();
    this.current = null;
    this.loaded = false;
    history.replaceState(null, "", location.pathname);
    this.view.showLogin(message);
  }

  async connection(online, code) {
    this.view.offline(!online && !this.conn.stopped);
    if (!online) {
      if (code === 1009 && this.outbox.length) this.failed(this.outbox[0], t("too_large", MAX_FILE >> 20));
      return;
    }
    if (this.waitOnline) {
      this.waitOnline();
      this.waitOnline = null;
    }
    if (!this.session) return;
    try {
      const reply = await this.call("ping_pong", {}, META);
      if (!this.loaded) {
        this.lastTime = reply.errors.time;
        await this.loadAll();
      } else {
        await this.catchUp();
      }
      this.pump();
    } catch (error) {
      if (error instanceof MTPError && error.code === 401) this.logout(t("session_ended"));
      else if (!(error instanceof Offline)) this.view.notice(t("error", error.message));
    }
  }

  // -- keeping in step --------------------------------------------------------------------------

  async loadAll() {
    this.wantUser(this.session.uuid);
    let flows = [];
    try {
      flows = (await this.call("all_flow")).data.flow;
    } catch (error) {
      if (!(error instanceof MTPError && error.code === 404)) throw error;
    }
    for (const flow of flows) {
      if (this.isMember(flow)) this.upsertFlow(flow);
      this.invites.seen(flow);
    }
    await Promise.all([...this.flows.values()].map((entry) => this.loadLast(entry)));
    this.loaded = true;
    this.view.renderFlows();
    const wanted = this.current || location.hash.slice(1);
    if (wanted && this.flows.has(wanted)) this.open(wanted);
  }

  async loadLast(entry) {
    const uuid = entry.flow.uuid;
    const head = await this.call("all_messages", { flow: [{ uuid, message_start: 0, message_end: 0 }] });
    entry.total = head.data.flow[0].message_end;
    if (entry.total > 0) {
      const page = await this.call("all_messages",
        { flow: [{ uuid, message_start: entry.total - 1, message_end: entry.total }] });
      for (const message of page.data.message) {
        this.counted.add(message.uuid);
        entry.last = message;
        this.wantUser(message.from_user);
      }
    }
  }

  async catchUp() {
    const since = this.lastTime;
    const reply = await this.call("get_update", { time: since });
    const data = reply.data;
    for (const user of data.user || []) this.users.set(user.uuid, { ...this.users.get(user.uuid), ...user });
    for (const flow of data.flow || []) {
      if (this.isMember(flow)) this.upsertFlow(flow);
      else this.dropFlow(flow.uuid);
    }
    for (const message of data.message || []) this.received(message, message.time >= since);
    for (const flow of data.flow || []) this.readState(flow);  // the server's count wins
    this.lastTime = data.time;
    this.view.renderFlows();
    this.view.refreshAuthors();
  }

  pushed(frame) {
    const data = frame.data || {};
    const kind = frame.meta.event;
    if (data.time) this.lastTime = Math.max(this.lastTime, data.time);
    const flow = (data.flow || [])[0];
    const user = (data.user || [])[0];
    const message = (data.message || [])[0];
    if (flow && (kind === "flow_invited" || kind === "invite_declined")
        && user && user.uuid === this.session.uuid) {
      if (kind === "flow_invited") this.invites.seen(flow);
      else this.invites.forget(flow.uuid);
      this.view.renderFlows();
      return;
    }
    if (kind === "flow_read" && flow) {
      this.readState(flow);
      this.view.renderFlows();
      return;
    }
    if (kind === "typing" && flow) {
      this.typing.pushed(flow.uuid, flow.typing || []);
      this.view.renderTyping();
      return;
    }
    if (message && (kind === "reaction_added" || kind === "reaction_removed")) {
      this.reacted(message);
      return;
    }
    if (message && kind === "message_sent") this.received(message, true);
    else if (message && (kind === "message_edited" || kind === "message_deleted")) {
      this.received({ ...message, deleted: kind === "message_deleted" }, false);
    } else if (kind === "flow_left" && user && user.uuid === this.session.uuid) this.dropFlow(flow.uuid);
    else if (kind === "flow_deleted" && flow) this.dropFlow(flow.uuid);
    else if (flow && flow.users && this.isMember(flow)) {
      const fresh = !this.flows.has(flow.uuid);
      const entry = this.upsertFlow(flow);
      if (fresh) this.loadLast(entry).then(() => this.view.renderFlows(), () => {});
      if (this.current === flow.uuid) this.view.renderHeader();
    }
    this.view.renderFlows();
  }

  // A message from a page, a push or get_update: stored once by uuid; `fresh` when it may be new.
  received(message, fresh) {
    const entry = this.flows.get(message.from_flow);
    if (!entry) return;
    this.wantUser(message.from_user);
    const pending = message.from_user === this.session.uuid
      && this.outbox.find((item) => item.cid === message.client_id && item.flow === message.from_flow);
    if (pending) this.outbox.splice(this.outbox.indexOf(pending), 1);
    const known = entry.messages.find((m) => m.uuid === message.uuid);
    if (known) {
      Object.assign(known, message);
      this.view.updateMessage(entry, known);
    } else if (fresh && !this.counted.has(message.uuid)) {
      this.counted.add(message.uuid);
      entry.total += 1;
      if (entry.loaded) {
        entry.messages.push(message);
        this.view.appendMessage(entry, message, pending ? pending.cid : null);
      }
      if (!entry.last || entry.last.time <= message.time) entry.last = message;
    }
    // Told once per message, even when a page of history (a new conversation's last
    // message) counted it before its push came.
    if (fresh && !known && !this.tallied.has(message.uuid)) {
      this.tallied.add(message.uuid);
      if (this.current === entry.flow.uuid && this.view.visible()) this.markSeen(entry);
      else if (!pending && message.from_user !== this.session.uuid) {
        entry.unread = (entry.unread || 0) + 1;
        this.notify(entry, message);
      }
    }
    if (entry.last && entry.last.uuid === message.uuid) Object.assign(entry.last, message);
  }

  // A message's reactions after a change (a push, or the answer to this user's own).
  reacted(change) {
    const entry = this.flows.get(change.from_flow);
    const known = entry && entry.messages.find((m) => m.uuid === change.uuid);
    if (!known) return;
    known.reactions = change.reactions;
    this.view.updateMessage(entry, known);
  }

  notify(entry, message) {
    const mentioned = (message.mentions || []).includes(this.session.uuid);
    if (this.view.visible() || !this.notifier.wants(entry.flow, mentioned)) return;
    const sender = this.userName(message.from_user);
    const title = entry.flow.type === "chat" ? sender : `${sender} · ${this.flowTitle(entry.flow)}`;
    this.notifier.show(title, this.view.summary(message).slice(0, 200), entry.flow.uuid,
      () => this.open(entry.flow.uuid));
  }

  isMember(flow) {
    return Array.isArray(flow.users) && flow.users.includes(this.session.uuid);
  }

  upsertFlow(flow) {
    let entry = this.flows.get(flow.uuid);
    if (entry) Object.assign(entry.flow, flow);
    else {
      entry = { flow, total: 0, last: null, messages: [], start: 0, loaded: false, unread: 0, read: null };
      this.flows.set(flow.uuid, entry);
    }
    this.readState(flow);
    if (flow.type === "chat") for (const member of flow.users) this.wantUser(member);
    return entry;
  }

  dropFlow(uuid) {
    if (!this.flows.delete(uuid)) return;
    if (this.current === uuid) {
      this.current = null;
      this.view.closeFlow();
    }
  }

  // Read state is the server's (its `read` extension), so every device agrees: a message of
  // someone else adds one here until the server's count arrives; reading the open
  // conversation to its end tells the server.
  unread(entry) {
    return this.loaded ? entry.unread || 0 : 0;
  }

  readState(flow) {
    const entry = this.flows.get(flow.uuid);
    // While this page's own mark is on its way, the server's older state would flicker back.
    if (!entry || typeof flow.unread !== "number" || entry.marking) return;
    entry.unread = flow.unread;
    entry.read = flow.read;
  }

  // Read up to the latest message: shown at once, told to the server at most once a second
  // per conversation (a busy one would otherwise be a write per message and reader).
  markSeen(entry) {
    const last = entry.last;
    if (!last || !last.uuid || entry.read === last.uuid) return;
    entry.read = last.uuid;
    entry.unread = 0;
    if (entry.marking) return;
    entry.marking = setTimeout(() => {
      entry.marking = 0;
      if (!this.session || this.flows.get(entry.flow.uuid) !== entry) return;  // logged out, left
      this.call("mark_read", { flow: [{ uuid: entry.flow.uuid }], message: [{ uuid: entry.read }] })
        .then((reply) => this.readState(reply.data.flow[0]), () => {});
    }, entry.markedAt && Date.now() - entry.markedAt < 1000 ? 1000 : 0);
    entry.markedAt = Date.now();
  }

  // -- users ------------------------------------------------------------------------------------

  wantUser(uuid) {
    if (!uuid || this.users.has(uuid)) return;
    this.users.set(uuid, { uuid });
    (this.wanted ||= new Set()).add(uuid);
    if (this.wantTimer) return;
    this.wantTimer = setTimeout(() => this.lookUp(), 0);
  }

  async lookUp() {
    this.wantTimer = 0;
    const asked = [...this.wanted].slice(0, 100);
    for (const uuid of asked) this.wanted.delete(uuid);
    if (this.wanted.size) this.wantTimer = setTimeout(() => this.lookUp(), 0);
    let found = [];
    try {
      found = (await this.call("user_info", { user: asked.map((uuid) => ({ uuid })) })).data.user;
    } catch (error) {
      if (error instanceof MTPError && error.reply.data) found = error.reply.data.user || [];
      else for (const uuid of asked) this.users.delete(uuid);
    }
    for (const user of found) this.users.set(user.uuid, user);
    this.view.refreshAuthors();
    this.search.refreshAuthors();
    this.view.renderFlows();
  }

  userName(uuid) {
    const user = this.users.get(uuid);
    return (user && (user.username || user.login)) || "…";
  }

  flowTitle(flow) {
    if (flow.type === "chat") {
      const other = flow.users.find((uuid) => uuid !== this.session.uuid) || this.session.uuid;
      return this.userName(other);
    }
    return flow.title || t(flow.type);
  }

  // -- a flow -----------------------------------------------------------------------------------

  async open(uuid) {
    const entry = this.flows.get(uuid);
    if (!entry) return;
    this.current = uuid;
    this.view.openFlow(entry);
    if (!entry.loaded) {
      const head = await this.call("all_messages", { flow: [{ uuid, message_start: 0, message_end: 0 }] });
      const total = head.data.flow[0].message_end;
      const start = Math.max(0, total - PAGE);
      const page = total ? await this.call("all_messages", { flow: [{ uuid, message_start: start, message_end: total }] })
        : { data: { message: [] } };
      if (entry.loaded) return;  // a push opened it meanwhile
      entry.messages = page.data.message;
      for (const message of entry.messages) {
        this.counted.add(message.uuid);
        this.wantUser(message.from_user);
      }
      entry.total = Math.max(entry.total, total);
      entry.start = start;
      entry.loaded = true;
      if (entry.messages.length) entry.last = entry.messages[entry.messages.length - 1];
    }
    this.markSeen(entry);
    if (this.current === uuid) {
      this.view.renderMessages(entry, true);
      history.replaceState(null, "", `#${uuid}`);  // a reload (or a bookmark) opens it again
      performance.mark("morelia:flow-shown");  // bench/web_bench.py times this
    }
    this.view.renderFlows();
  }

  async older() {
    const entry = this.flows.get(this.current);
    if (!entry || !entry.loaded || entry.start === 0 || this.paging) return;
    this.paging = true;
    try {
      const start = Math.max(0, entry.start - PAGE);
      const page = await this.call("all_messages",
        { flow: [{ uuid: entry.flow.uuid, message_start: start, message_end: entry.start }] });
      const known = new Set(entry.messages.map((m) => m.uuid));
      const older = page.data.message.filter((m) => !known.has(m.uuid));
      for (const message of older) {
        this.counted.add(message.uuid);
        this.wantUser(message.from_user);
      }
      entry.messages = [...older, ...entry.messages];
      entry.start = start;
      if (this.current === entry.flow.uuid) this.view.renderMessages(entry, false);
    } finally {
      this.paging = false;
    }
  }

  // -- writing ----------------------------------------------------------------------------------

  send(content) {
    const item = { cid: clientId(), flow: this.current, content };
    this.outbox.push(item);
    this.view.pendingMessage(item);
    this.pump();
  }

  sendFile(file, caption) {
    if (file.size > MAX_FILE) {
      this.view.notice(t("too_large", MAX_FILE >> 20));
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      const base64 = String(reader.result).split(",", 2)[1] || "";
      const content = { [fileField(file.type)]: base64, file_name: file.name.slice(0, 255) };
      if (file.type) content.file_type = file.type;
      if (caption) content.text = caption;
      this.send(content);
    };
    reader.readAsDataURL(file);
  }

  async pump() {
    if (this.pumping || !this.session) return;
    this.pumping = true;
    try {
      while (this.outbox.length && this.conn.online) {
        const item = this.outbox[0];
        try {
          const reply = await this.call("send_message", {
            flow: [{ uuid: item.flow }], message: [{ client_id: item.cid, ...item.content }] });
          const stored = reply.data.message[0];
          this.received({ text: "", ...item.content, ...stored, edited_status: false }, true);
          const index = this.outbox.indexOf(item);
          if (index >= 0) this.outbox.splice(index, 1);
        } catch (error) {
          if (error instanceof Offline) break;
          this.failed(item, error.message);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  failed(item, why) {
    const index = this.outbox.indexOf(item);
    if (index >= 0) this.outbox.splice(index, 1);
    this.view.failedMessage(item);
    this.view.notice(why);
  }

  async edit(uuid, text) {
    await this.act("edited_message", { message: [{ uuid, text }] });
  }

  async remove(uuid) {
    await this.act("delete_message", { message: [{ uuid }] });
  }

  async act(type, data) {
    try {
      return await this.call(type, data);
    } catch (error) {
      this.view.notice(t("error", error instanceof Offline ? t("offline") : error.message));
      return null;
    }
  }

  async join(flow) {
    const reply = await this.act("join_flow", { flow: [{ uuid: flow.uuid }] });
    if (!reply) return;
    const joined = (reply.data && reply.data.flow && reply.data.flow[0])
      || { ...flow, users: [...flow.users, this.session.uuid] };
    const entry = this.upsertFlow(joined);
    await this.loadLast(entry);
    this.view.renderFlows();
    this.open(flow.uuid);
  }

  async leave() {
    const uuid = this.current;
    if (await this.act("leave_flow", { flow: [{ uuid }] })) {
      this.dropFlow(uuid);
      this.view.renderFlows();
    }
  }

  async create(type, title, info, login, privately) {
    const flow = { type, title, info, users: [], private: privately };
    if (type === "chat") {
      let found;
      try {
        found = await this.call("user_info", { user: [{ login }] });
      } catch (error) {
        if (error instanceof MTPError && error.code === 404) throw new Error(t("no_such_user", login));
        throw error;
      }
      flow.users = [found.data.user[0].uuid];
      flow.title = "";
      this.users.set(found.data.user[0].uuid, found.data.user[0]);
    }
    let made;
    try {
      made = (await this.call("add_flow", { flow: [flow] })).data.flow[0];
    } catch (error) {
      if (!(error instanceof MTPError && error.code === 409)) throw error;
      made = error.reply.data.flow[0];
      this.view.notice(t("chat_exists"));
    }
    this.upsertFlow(made);
    this.view.renderFlows();
    this.open(made.uuid);
  }

  async publicFlows() {
    try {
      return (await this.call("all_flow")).data.flow.filter(
        (f) => f.type !== "chat" && !f.private && !this.isMember(f));
    } catch (error) {
      if (error instanceof MTPError && error.code === 404) return [];
      throw error;
    }
  }
}

const app = new App();
window.addEventListener("error", (event) => console.warn("morelia:", event.message));
app.boot().catch((error) => console.warn("morelia: start failed", error));
