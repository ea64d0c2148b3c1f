// Typing notices (the server's `typing` MTP extension): telling the others while this user
// types, and the line that says who else types in the open conversation.

import { t } from "./i18n.js";

const RENEW = 20000;  // ms: a notice lasts 30 s on the server, renewed while typing goes on
const STALE = 35000;  // ms: a notice whose end never arrived (the connection was lost) goes

export class Typing {
  constructor(app) {
    this.app = app;
    this.flow = null;     // where this user is said to be typing
    this.sentAt = 0;
    this.others = new Map();  // flow uuid -> {uuids, at}
  }

  // The composer's text in `flowUuid` is now `text`.
  typed(flowUuid, text) {
    if (!text.trim()) {
      this.stop();
      return;
    }
    if (this.flow === flowUuid && Date.now() - this.sentAt < RENEW) return;
    if (this.flow && this.flow !== flowUuid) this.stop();
    this.flow = flowUuid;
    this.sentAt = Date.now();
    this.send(flowUuid, true);
  }

  // Sent, emptied or left: no longer typing.
  stop() {
    if (!this.flow) return;
    const flow = this.flow;
    this.flow = null;
    this.send(flow, false);
  }

  // A message was sent: the server ends the notice itself.
  sent() {
    this.flow = null;
  }

  send(flow, typing) {
    this.app.call("typing", { flow: [{ uuid: flow, typing }] }).catch(() => {});
  }

  // A push: who types in a flow now.
  pushed(flowUuid, uuids) {
    const others = uuids.filter((uuid) => uuid !== this.app.session.uuid);
    for (const uuid of others) this.app.wantUser(uuid);
    this.others.set(flowUuid, { uuids: others, at: Date.now() });
  }

  line(flowUuid) {
    const known = this.others.get(flowUuid);
    if (!known || Date.now() - known.at > STALE) return "";
    const names = known.uuids.map((uuid) => this.app.userName(uuid));
    if (names.length === 0) return "";
    if (names.length === 1) return t("typing_one", names[0]);
    if (names.length === 2) return t("typing_two", names[0], names[1]);
    return t("typing_many");
  }
}
