/**
 * `packed-echo-js`: `packed-echo`'s `echo` mode written with the JavaScript SDK, so the
 * SDK's reader of the packed batch (`wit/packed.wit`) meets the host's writer on every
 * field. Each event becomes one record on `packed.echo`: its key the event's key, its
 * value a JSON object of every field of the event as the SDK gives it (the names and
 * encodings of `packed-echo`: enums by index, absent values `null`), its headers the
 * event's headers; events whose `after` image holds `"reject"` are rejected with code
 * `asked`.
 */

import * as sluice from "sluice";

const OPERATIONS = ["create", "update", "delete", "read", "truncate", "message"];
const MARKERS = [
  "none",
  "in-progress",
  "first",
  "first-in-data-collection",
  "last-in-data-collection",
  "last",
  "incremental",
];
const decoder = new TextDecoder();

const orNull = (value) => (value === undefined ? null : value);

function echo(event) {
  const after = event.afterJson();
  if (after !== undefined && after.includes('"reject"')) {
    throw new sluice.Reject("the row asks for it", "asked");
  }
  const source = event.source;
  const transaction = event.transaction;
  const origin = event.origin;
  const key = event.keyBytes;
  const fields = {
    op: OPERATIONS.indexOf(event.op),
    value: decoder.decode(event.value),
    key: key === undefined ? null : decoder.decode(key),
    before: orNull(event.beforeJson()),
    after: orNull(after),
    valueSchema: orNull(event.valueSchema()),
    connector: source.connector,
    name: source.name,
    db: source.db,
    schema: orNull(source.schema),
    table: source.table,
    changeLsn: orNull(source.changeLsn),
    commitLsn: orNull(source.commitLsn),
    eventSerialNo: orNull(source.eventSerialNo),
    snapshot: MARKERS.indexOf(source.snapshot),
    sourceTsMs: orNull(source.tsMs),
    tsMs: orNull(event.tsMs),
    txId: transaction ? transaction.id : null,
    txTotalOrder: transaction ? transaction.totalOrder : null,
    txCollectionOrder: transaction ? transaction.dataCollectionOrder : null,
    topic: origin.topic,
    partition: origin.partition,
    offset: origin.offset,
  };
  const record = sluice.Record.to("packed.echo").rawKey(key).jsonValue(fields);
  for (const header of event.headers) record.header(header.key, header.value);
  return record;
}

export const transform = sluice.transform(echo);
