// Two matrix-js-sdk clients with Rust crypto exchange a message in an encrypted DM on a
// Morelia server. Usage: node e2ee.mjs CONFIG_JSON (baseUrl, text, alice and bob: userId,
// accessToken, deviceId). Prints one JSON line: {"ok": true, "body": ...} or {"ok": false, ...}.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("error");
const config = JSON.parse(process.argv[2]);
const deadline = (ms, what) => new Promise((_, reject) =>
  setTimeout(() => reject(new Error(`timed out: ${what}`)), ms));

async function start(who) {
  const client = sdk.createClient({ baseUrl: config.baseUrl, ...who });
  await client.initRustCrypto({ useIndexedDB: false });
  const ready = new Promise((resolve) => client.on(sdk.ClientEvent.Sync, (state) => {
    if (state === "PREPARED" || state === "SYNCING") resolve();
  }));
  await client.startClient({ initialSyncLimit: 10 });
  await Promise.race([ready, deadline(20000, "first sync")]);
  return client;
}

function waitFor(client, event, test, what, ms = 30000) {
  return Promise.race([new Promise((resolve) => {
    const listener = (...args) => {
      const found = test(...args);
      if (found) { client.off(event, listener); resolve(found); }
    };
    client.on(event, listener);
  }), deadline(ms, what)]);
}

async function main() {
  const alice = await start(config.alice);
  const bob = await start(config.bob);
  const invited = waitFor(bob, sdk.RoomEvent.MyMembership,
    (room, membership) => membership === "invite" && room.roomId, "bob's invite");
  const { room_id: roomId } = await alice.createRoom({
    is_direct: true, preset: "trusted_private_chat", invite: [config.bob.userId],
    initial_state: [{ type: "m.room.encryption", state_key: "",
                      content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  const invitedRoom = await invited;
  if (invitedRoom !== roomId) throw new Error(`invited to ${invitedRoom}, not ${roomId}`);
  const bobJoined = waitFor(alice, sdk.RoomStateEvent.Members,
    (event, state, member) => member.roomId === roomId && member.userId === config.bob.userId
      && member.membership === "join", "bob's join seen by alice");
  await bob.joinRoom(roomId);
  await bobJoined;
  const encrypted = alice.getRoom(roomId).hasEncryptionStateEvent();
  const received = waitFor(bob, sdk.RoomEvent.Timeline, (event, room) =>
    room && room.roomId === roomId && event.getWireType() === "m.room.encrypted"
    && event.getSender() === config.alice.userId && event, "the message at bob");
  await alice.sendTextMessage(roomId, config.text);
  const event = await received;
  await bob.decryptEventIfNeeded(event);
  if (event.isDecryptionFailure()) {
    await waitFor(bob, sdk.MatrixEventEvent.Decrypted, (e) => e === event && !e.isDecryptionFailure() && e,
      "decryption", 20000).catch(() => {});
  }
  const result = { ok: event.getType() === "m.room.message", roomId, encrypted,
                   wireType: event.getWireType(), type: event.getType(),
                   body: event.getContent().body ?? null,
                   failure: event.decryptionFailureReason ?? null };
  alice.stopClient(); bob.stopClient();
  console.log(JSON.stringify(result));
}

main().then(() => process.exit(0), (error) => {
  console.log(JSON.stringify({ ok: false, error: String(error && error.stack || error) }));
  process.exit(1);
});
