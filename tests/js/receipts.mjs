// Element's SDK reads a room of a Morelia server as Element does: it syncs, and sends a read
// receipt for the latest event (and its read marker) through the SDK's own calls. Usage:
// node receipts.mjs CONFIG_JSON (baseUrl, userId, accessToken, deviceId, roomId). Prints one
// JSON line: {"ok": true, "read": EVENT_ID} or {"ok": false, "error": ...}.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { prepared } from "./prepared.mjs";

logger.setLevel("error");
const config = JSON.parse(process.argv[2]);
const { baseUrl, userId, accessToken, deviceId, roomId } = config;
const client = sdk.createClient({ baseUrl, userId, accessToken, deviceId });

async function main() {
  const ready = prepared(client);
  await client.startClient({ initialSyncLimit: 20 });
  await ready;
  const room = client.getRoom(roomId);
  const events = room.getLiveTimeline().getEvents();
  const last = [...events].reverse().find((event) => event.getType() === "m.room.message");
  await client.sendReadReceipt(last);
  await client.setRoomReadMarkers(roomId, last.getId());
  return { ok: true, read: last.getId() };
}

main().then((result) => console.log(JSON.stringify(result)),
            (error) => console.log(JSON.stringify({ ok: false, error: String(error) })))
  .finally(() => { client.stopClient(); process.exit(0); });
