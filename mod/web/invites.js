// Invitations: to the private groups and channels others invite this user into (listed above
// the conversations, accepted with join_flow, declined with leave_flow), and inviting someone
// by login into the open conversation (invite_flow).

import { t } from "./i18n.js";
import { MTPError } from "./mtp.js";

export class Invites {
  constructor(app) {
    this.app = app;
    this.flows = new Map();  // uuid -> flow, for flows this user is invited to
  }

  clear() {
    this.flows.clear();
  }

  // A flow all_flow or a push shows: an invitation when it is private and this user not in it.
  seen(flow) {
    if (flow.private && !this.app.isMember(flow)) this.flows.set(flow.uuid, flow);
    else this.flows.delete(flow.uuid);
  }

  forget(uuid) {
    this.flows.delete(uuid);
  }

  async accept(flow) {
    this.forget(flow.uuid);
    await this.app.join(flow);
  }

  async decline(flow) {
    if (await this.app.act("leave_flow", { flow: [{ uuid: flow.uuid }] })) this.forget(flow.uuid);
    this.app.view.renderFlows();
  }

  // Invites the user of `login` into a flow; resolves with what to tell, or throws.
  async invite(flowUuid, login) {
    let found;
    try {
      found = await this.app.call("user_info", { user: [{ login }] });
    } catch (error) {
      if (error instanceof MTPError && error.code === 404) throw new Error(t("no_such_user", login));
      throw error;
    }
    const user = found.data.user[0];
    await this.app.call("invite_flow", { flow: [{ uuid: flowUuid, users: [user.uuid] }] });
    this.app.users.set(user.uuid, user);
    return t("invited", user.username || user.login);
  }
}
