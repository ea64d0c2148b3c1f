// Element's SDK changes a password on a Morelia server, as Element's settings do: the
// user-interactive round with m.login.password, then logging in again with the new one.
// Usage: node password.mjs CONFIG_JSON (baseUrl, userId, accessToken, deviceId, password,
// newPassword). Prints one JSON line: {"ok": true, ...} or {"ok": false, "error": ...}.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("error");
const config = JSON.parse(process.argv[2]);
const { baseUrl, userId, accessToken, deviceId } = config;
const client = sdk.createClient({ baseUrl, userId, accessToken, deviceId });

async function main() {
  const auth = { type: "m.login.password", identifier: { type: "m.id.user", user: userId } };
  let refused = null;
  try {
    await client.setPassword({ ...auth, password: "not the password" }, config.newPassword, true);
  } catch (error) {
    refused = error.httpStatus;
  }
  await client.setPassword({ ...auth, password: config.password }, config.newPassword, true);
  const whoami = await client.whoami();
  const fresh = sdk.createClient({ baseUrl });
  let oldRefused = null;
  try {
    await fresh.loginRequest({ type: "m.login.password", identifier: auth.identifier,
                               password: config.password });
  } catch (error) {
    oldRefused = error.httpStatus;
  }
  const login = await fresh.loginRequest({ type: "m.login.password",
                                           identifier: auth.identifier,
                                           password: config.newPassword });
  return { ok: true, refused, oldRefused, stillSignedIn: whoami.user_id,
           newLogin: login.user_id };
}

main().then((result) => console.log(JSON.stringify(result)),
            (error) => console.log(JSON.stringify({ ok: false, error: String(error) })))
  .finally(() => process.exit(0));
