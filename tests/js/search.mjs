// Element's SDK searches a room of a Morelia server as Element's search box does
// (searchRoomEvents: newest first, an event of context on each side, with profiles) and
// pages back through every result. Usage: node search.mjs CONFIG_JSON (baseUrl, userId,
// accessToken, deviceId, roomId, term). Prints one JSON line: {"ok": true, "results": [the
// bodies around each result, in order], "highlights": [...]} or {"ok": false, "error": ...}.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("error");
const config = JSON.parse(process.argv[2]);
const { baseUrl, userId, accessToken, deviceId, roomId, term } = config;
const client = sdk.createClient({ baseUrl, userId, accessToken, deviceId });

async function main() {
  await client.joinRoom(roomId);
  let found = await client.searchRoomEvents({ term, filter: { rooms: [roomId], limit: 2 } });
  let pages = 1;
  while (found.next_batch) {
    found = await client.backPaginateRoomEventsSearch(found);
    pages += 1;
  }
  const results = found.results.map((result) =>
    result.context.getTimeline().map((event) => event.getContent().body ?? event.getType()));
  return { ok: true, pages, results, highlights: found.highlights };
}

main().then((result) => console.log(JSON.stringify(result)),
            (error) => console.log(JSON.stringify({ ok: false, error: String(error) })))
  .finally(() => process.exit(0));
