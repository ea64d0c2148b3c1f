// Element's SDK in a room of a Morelia server where an MTP user wrote a message and reacted
// to it: it syncs, finds that reaction among the message's annotations as Element's timeline
// does, replies to the message, reacts to it, reads the reactions back from /relations and
// takes its own back. Usage: node reactions.mjs CONFIG_JSON (baseUrl, userId, accessToken,
// deviceId, roomId, eventId, key). Prints one JSON line: {"ok": true, ...} or
// {"ok": false, "error": ...}.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { prepared } from "./prepared.mjs";

logger.setLevel("error");
const config = JSON.parse(process.argv[2]);
const { baseUrl, userId, accessToken, deviceId, roomId, eventId, key } = config;
const client = sdk.createClient({ baseUrl, userId, accessToken, deviceId });

function annotations() {
  const relations = client.getRoom(roomId)?.getUnfilteredTimelineSet().relations
    .getChildEventsForEvent(eventId, "m.annotation", "m.reaction");
  const byKey = {};
  for (const [annotation, events] of relations?.getSortedAnnotationsByKey() ?? []) {
    byKey[annotation] = [...events].map((event) => event.getSender()).sort();
  }
  return byKey;
}

async function main() {
  await client.joinRoom(roomId);
  const ready = prepared(client);
  await client.startClient({ initialSyncLimit: 30 });
  await ready;
  const seen = annotations();
  const reply = await client.sendMessage(roomId, {
    msgtype: "m.text", body: "Agreed", "m.relates_to": { "m.in_reply_to": { event_id: eventId } },
  });
  const reaction = await client.sendEvent(roomId, "m.reaction", {
    "m.relates_to": { rel_type: "m.annotation", event_id: eventId, key: "👍" },
  });
  const listed = await client.fetchRelations(roomId, eventId, "m.annotation", "m.reaction");
  const keys = listed.chunk.map((event) => event.content["m.relates_to"].key).sort();
  await client.redactEvent(roomId, reaction.event_id);
  return { ok: true, seen, keys, reply: reply.event_id.startsWith("$"), mtpKey: key };
}

main().then((result) => console.log(JSON.stringify(result)),
            (error) => console.log(JSON.stringify({ ok: false, error: String(error) })))
  .finally(() => { client.stopClient(); process.exit(0); });
