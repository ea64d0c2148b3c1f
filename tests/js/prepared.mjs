// Waiting for Element's SDK to finish its first sync, as Element does before it shows a room.
import * as sdk from "matrix-js-sdk";

export function prepared(client) {
  return new Promise((resolve, reject) => {
    client.on(sdk.ClientEvent.Sync, (state) => {
      if (state === "PREPARED") resolve();
      if (state === "ERROR") reject(new Error("sync failed"));
    });
  });
}
