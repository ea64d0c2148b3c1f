// Browser notifications of messages that arrive while the tab is hidden. They are turned on in
// the settings (the browser asks for permission then, on that click); each conversation
// notifies by its setting: "default" (direct chats, and messages that mention this user),
// "all" or "off". Both are kept in this browser.

const ON = "morelia.notify.on";
const MODES = "morelia.notify.modes";
export const NOTIFY_MODES = ["default", "all", "off"];

export class Notifier {
  supported() {
    return "Notification" in window;
  }

  on() {
    return this.supported() && Notification.permission === "granted"
      && localStorage.getItem(ON) === "1";
  }

  // Turns notifications on or off; resolves with whether they are on (the browser may refuse).
  async turn(wanted) {
    let granted = false;
    if (wanted && this.supported()) {
      granted = (await Notification.requestPermission()) === "granted";
    }
    localStorage.setItem(ON, granted ? "1" : "0");
    return granted;
  }

  mode(flowUuid) {
    return JSON.parse(localStorage.getItem(MODES) || "{}")[flowUuid] || "default";
  }

  setMode(flowUuid, mode) {
    const modes = JSON.parse(localStorage.getItem(MODES) || "{}");
    if (mode === "default") delete modes[flowUuid];
    else modes[flowUuid] = mode;
    localStorage.setItem(MODES, JSON.stringify(modes));
  }

  wants(flow, mentioned = false) {
    const mode = this.mode(flow.uuid);
    return this.on() && (mode === "all" || (mode === "default" && (flow.type === "chat" || mentioned)));
  }

  // One notification per conversation at a time: a newer one replaces it (its tag).
  show(title, body, tag, onclick) {
    const note = new Notification(title, { body, tag, icon: "/web/icon.svg" });
    note.onclick = () => {
      window.focus();
      onclick();
      note.close();
    };
  }
}
