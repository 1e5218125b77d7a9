/**
 * `{{name}}`: a sluice plugin. It publishes each row's id, table and operation to
 * `example.out`, keyed by the id, and a tombstone for a delete. Edit `mapEvent` to map
 * your rows; `sluice plugin test` checks it against `samples/` (see README.md).
 */

import * as sluice from "sluice";

/** The columns this plugin reads (`int`, `number`, `string`, `bool`, `any`; `?` if nullable). */
const ROW = { id: "int" };

function mapEvent(event) {
  // Neither image: nothing to publish.
  if (event.op === "truncate" || event.op === "message") return [];
  const row = event.row(ROW);
  const key = { id: row.id };
  if (event.op === "delete") return [sluice.Record.to("example.out").jsonKey(key).tombstone()];
  sluice.log("debug", `row ${row.id}`);
  const summary = { id: row.id, table: event.qualifiedTable(), op: event.opCode };
  return [sluice.Record.to("example.out").jsonKey(key).jsonValue(summary)];
}

export const transform = sluice.transform(mapEvent);
