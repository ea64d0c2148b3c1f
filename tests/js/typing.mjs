// Element's SDK says its user is typing in a room of a Morelia server, then stops, as
// Element's composer does. Usage: node typing.mjs CONFIG_JSON (baseUrl, userId, accessToken,
// deviceId, roomId). Prints one JSON line: {"ok": true} or {"ok": false, "error": ...}.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("error");
const config = JSON.parse(process.argv[2]);
const { baseUrl, userId, accessToken, deviceId, roomId } = config;
const client = sdk.createClient({ baseUrl, userId, accessToken, deviceId });

async function main() {
  await client.joinRoom(roomId);
  await client.sendTyping(roomId, true, 30000);
  await client.sendTyping(roomId, false, 0);
  return { ok: true };
}

main().then((result) => console.log(JSON.stringify(result)),
            (error) => console.log(JSON.stringify({ ok: false, error: String(error) })))
  .finally(() => process.exit(0));
