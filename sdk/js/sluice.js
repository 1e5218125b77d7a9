/**
 * The sluice plugin SDK for JavaScript: the Rust SDK's ergonomics for plugins built into
 * components with componentize-js (`sluice plugin build`).
 *
 * A plugin author writes one function and hands it to `transform`:
 *
 * ```js
 * import * as sluice from "sluice";
 *
 * export const transform = sluice.transform((event) => {
 *   const customer = event.after({ id: "int", email: "string?" });
 *   return sluice.Record.to("cdm.customer").jsonKey({ id: customer.id }).jsonValue(customer);
 * });
 * ```
 *
 * Configuration is typed with a schema declared once: `sluice.transform(fn, { config: {
 * topic: { default: "cdm.customer" }, scale: { type: "u32", default: 2 } } })` parses the
 * manifest's pairs at `init` (a bad, missing or unknown key refuses the plugin with the key
 * named) and calls `fn(event, settings)`; `sluice.config()` keeps the raw pairs.
 *
 * `sluice.transform(fn, { init })` builds the `sluice:transform/transform` export: it calls
 * `fn` once per event of each batch with a `ChangeEvent`, turns what it returns (an array of
 * `Record`s, one `Record`, or `null` to filter the event out) into the event's outcome, and a
 * thrown `Reject` into a rejection (the event goes to the dead-letter topic). Any other
 * exception is logged at `error` and traps the instance, like a Rust panic.
 *
 * Row images are parsed with the engine's native `JSON.parse`; integers beyond 2^53 (a
 * `datetime2(7)` column in epoch nanoseconds) arrive as `BigInt`, so nothing loses precision.
 * The Debezium decoders (`debezium.*`) are ports of the Rust SDK's `sluice_sdk::debezium`
 * and give byte-identical strings.
 */

import { log as hostLog } from "sluice:transform/host@0.1.0";

/** Writes one line to the host's log at `level` (`trace`, `debug`, `info`, `warn`, `error`). */
export function log(level, message) {
  hostLog(level, String(message));
}

/** Why a plugin refuses an event: throw one, and the event goes to the dead-letter topic. */
export class Reject extends Error {
  /**
   * @param {string} reason a human-readable explanation, e.g. `after.email is missing`
   * @param {string} [code] a machine-readable code for alerting, e.g. `missing-field`
   */
  constructor(reason, code) {
    super(reason);
    this.name = "Reject";
    this.reason = reason;
    this.code = code;
  }

  /** The same rejection with a code. */
  withCode(code) {
    return new Reject(this.reason, code);
  }
}

/** The plugin's configuration: the manifest's `config` pairs, in order. */
export class Config {
  /** @param {Array<[string, string]>} pairs */
  constructor(pairs) {
    this.pairs = pairs;
    // Plugins read their config per event: one lookup, not a scan of the pairs (a `Map`
    // keeps the last value of a repeated key, as `get` promises).
    this.latest = new Map(pairs);
  }

  /** The value of `key`, or `undefined`. When a key is repeated, the last value wins. */
  get(key) {
    return this.latest.get(key);
  }

  /**
   * The value of `key` as an unsigned 32-bit integer, `undefined` when absent; throws the
   * message the Rust SDK's `config.parse::<u32>(key)` gives for a bad value.
   */
  u32(key) {
    const raw = this.get(key);
    if (raw === undefined) return undefined;
    const problem = parseU32Problem(raw);
    if (problem) throw new Error(`config \`${key}\` = ${JSON.stringify(raw)}: ${problem}`);
    return Number(raw.startsWith("+") ? raw.slice(1) : raw);
  }
}

/** Rust's `u32::from_str` error for `raw`, or `undefined` when it parses. */
function parseU32Problem(raw) {
  const digits = raw.startsWith("+") ? raw.slice(1) : raw;
  if (raw === "") return "cannot parse integer from empty string";
  if (digits === "" || !/^[0-9]+$/.test(digits)) return "invalid digit found in string";
  if (BigInt(digits) > 4294967295n) return "number too large to fit in target type";
  return undefined;
}

let currentConfig = new Config([]);
let currentSettings;

/** Rust's `i64`/`u32` `from_str` errors, for the integer kinds of a settings schema. */
const INTEGER_KINDS = {
  u32: (raw) => parseU32Problem(raw),
  int: (raw) => {
    if (raw === "") return "cannot parse integer from empty string";
    if (!/^[+-]?[0-9]+$/.test(raw) || /^[+-]$/.test(raw)) return "invalid digit found in string";
    if (!Number.isSafeInteger(Number(raw))) return "number too large to fit in target type";
    return undefined;
  },
};

/** The backtick list serde writes in "expected one of" messages. */
function oneOfList(names) {
  return names.map((n) => `\`${n}\``).join(", ");
}

/**
 * Parses configuration pairs against a settings schema (the `config` option of
 * `transform`): `{ key: { type, default, oneOf } }` where `type` is `"string"` (the
 * default), `"u32"`, `"int"`, `"number"` or `"bool"`, and `oneOf` lists the allowed strings.
 * A key with no `default` is required; a key not in the schema is refused. Error messages
 * name the key and match the Rust SDK's (`config <key> = "two": invalid digit found in
 * string`, `config: missing field <key>`, `config: unknown field <key>, ...`).
 */
export function parseSettings(pairs, schema) {
  const latest = new Map(pairs);
  const keys = Object.keys(schema);
  for (const key of latest.keys()) {
    if (!Object.hasOwn(schema, key)) {
      throw new Error(`config: unknown field \`${key}\`, expected one of ${oneOfList(keys)}`);
    }
  }
  const settings = {};
  for (const key of keys) {
    const spec = schema[key];
    const raw = latest.get(key);
    if (raw === undefined) {
      if (!Object.hasOwn(spec, "default")) throw new Error(`config: missing field \`${key}\``);
      settings[key] = spec.default;
      continue;
    }
    const fail = (problem) => {
      throw new Error(`config \`${key}\` = ${JSON.stringify(raw)}: ${problem}`);
    };
    if (spec.oneOf && !spec.oneOf.includes(raw)) {
      fail(`unknown variant \`${raw}\`, expected one of ${oneOfList(spec.oneOf)}`);
    }
    const type = spec.type ?? "string";
    if (type === "string") {
      settings[key] = raw;
    } else if (type === "bool") {
      if (raw !== "true" && raw !== "false") fail("provided string was not `true` or `false`");
      settings[key] = raw === "true";
    } else if (type === "number") {
      const value = Number(raw.trim());
      if (raw.trim() === "" || Number.isNaN(value)) fail("invalid float literal");
      settings[key] = value;
    } else if (Object.hasOwn(INTEGER_KINDS, type)) {
      const text = raw.trim();
      const problem = INTEGER_KINDS[type](text);
      if (problem) fail(problem);
      settings[key] = Number(text);
    } else {
      throw new Error(`settings schema: \`${key}\` has unknown type ${JSON.stringify(type)}`);
    }
  }
  return settings;
}

/**
 * The typed settings this instance was initialised with (`transform(fn, { config })`),
 * or `undefined`.
 */
export function settings() {
  return currentSettings;
}

/** The configuration this instance was initialised with (empty before `init`). */
export function config() {
  return currentConfig;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** An integer literal of 16 or more digits: it may be beyond `Number.MAX_SAFE_INTEGER`. */
const LONG_INTEGER = /\d{16}/;

/**
 * `JSON.parse` that keeps integers beyond 2^53 exact, as `BigInt`s (the engine passes the
 * literal's source text to the reviver). Text without long digit runs skips the reviver.
 */
export function parseJson(text) {
  if (!LONG_INTEGER.test(text)) return JSON.parse(text);
  return JSON.parse(text, (_key, value, context) => {
    if (typeof value !== "number" || Number.isSafeInteger(value) || !Number.isInteger(value)) return value;
    if (context === undefined) {
      // Engines without JSON.parse source text access (Node 20) would round silently.
      throw new Error("this engine's JSON.parse does not expose source text; large integers would be rounded");
    }
    return /^-?\d+$/.test(context.source) ? BigInt(context.source) : value;
  });
}

/**
 * JSON text of `value` as the Rust SDK (serde_json) writes it: compact, keys in insertion
 * order, `BigInt`s as plain integers, `undefined` members left out.
 */
export function toJson(value) {
  try {
    return JSON.stringify(value);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? bigintMarker(v) : v)).replace(
      /"\u0000bigint:(-?\d+)"/g,
      "$1",
    );
  }
}

function bigintMarker(v) {
  return `\u0000bigint:${v}`;
}

/** An s64 from the host (a `BigInt`) as a `Number` when that is exact. */
function s64(v) {
  if (v === undefined) return undefined;
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
}

const SNAPSHOT = {
  none: false,
  "in-progress": true,
  first: true,
  "first-in-data-collection": true,
  "last-in-data-collection": true,
  last: true,
  incremental: true,
};

/** Debezium's one-letter `op` codes by operation. */
export const OP_CODES = {
  create: "c",
  update: "u",
  delete: "d",
  read: "r",
  truncate: "t",
  message: "m",
};

/**
 * One change event, decoded from its Debezium envelope by the host. Row images arrive as
 * JSON text and are parsed only when asked for.
 */
export class ChangeEvent {
  /** Wraps the WIT `change-event` (what `transformBatch` receives). */
  constructor(wit) {
    this.wit = wit;
  }

  /** `create`, `update`, `delete`, `read`, `truncate` or `message`. */
  get op() {
    return this.wit.op;
  }

  /** Debezium's one-letter code of the operation (`c`, `u`, `d`, `r`, `t`, `m`). */
  get opCode() {
    return OP_CODES[this.wit.op];
  }

  /**
   * The source block: `connector`, `name`, `db`, `schema`, `table`, `changeLsn`,
   * `commitLsn`, `eventSerialNo`, `snapshot` (the marker) and `tsMs`; absent values are
   * `undefined`.
   */
  get source() {
    const s = this.wit.source;
    return {
      connector: s.connector,
      name: s.name,
      db: s.db,
      schema: s.schema,
      table: s.table,
      changeLsn: s.changeLsn,
      commitLsn: s.commitLsn,
      eventSerialNo: s64(s.eventSerialNo),
      snapshot: s.snapshot,
      tsMs: s64(s.tsMs),
    };
  }

  /** Whether the event belongs to a snapshot (any marker but `none`). */
  get isSnapshot() {
    return SNAPSHOT[this.wit.source.snapshot];
  }

  /** `schema.table` (or just `table` when the database has no schemas). */
  qualifiedTable() {
    const { schema, table } = this.wit.source;
    return schema === undefined ? table : `${schema}.${table}`;
  }

  /** When the connector processed the event (envelope `ts_ms`). */
  get tsMs() {
    return s64(this.wit.tsMs);
  }

  /** The transaction block (`id`, `totalOrder`, `dataCollectionOrder`), when present. */
  get transaction() {
    const t = this.wit.transaction;
    return t && { id: t.id, totalOrder: s64(t.totalOrder), dataCollectionOrder: s64(t.dataCollectionOrder) };
  }

  /** Where the event was read from: `{ topic, partition, offset }`. */
  get origin() {
    const o = this.wit.origin;
    return { topic: o.topic, partition: o.partition, offset: s64(o.offset) };
  }

  /** The record value exactly as received (the whole Debezium envelope), a `Uint8Array`. */
  get value() {
    return this.wit.value;
  }

  /** The record key bytes as received, or `undefined`. */
  get keyBytes() {
    return this.wit.key;
  }

  /** The headers as received: `[{ key, value }]`, values `Uint8Array` or `undefined`. */
  get headers() {
    return this.wit.headers;
  }

  /** The value of the first header named `key`, as text. */
  header(key) {
    const found = this.wit.headers.find((h) => h.key === key);
    return found && found.value !== undefined ? decoder.decode(found.value) : undefined;
  }

  /** The `before` image as JSON text, or `undefined`. */
  beforeJson() {
    return this.slice(this.wit.before);
  }

  /** The `after` image as JSON text, or `undefined`. */
  afterJson() {
    return this.slice(this.wit.after);
  }

  /** The Kafka Connect value schema as JSON text, when the event carried one. */
  valueSchema() {
    return this.slice(this.wit.valueSchema);
  }

  /**
   * The `before` image, parsed and checked against `shape` (see `checkRow`); throws a
   * `Reject` when absent or not of that shape.
   */
  before(shape) {
    return parseRow("before", this.beforeJson(), shape);
  }

  /** The `after` image, parsed and checked against `shape`, like `before`. */
  after(shape) {
    return parseRow("after", this.afterJson(), shape);
  }

  /** The row as it is now: `after` for creates, updates and reads, `before` for deletes. */
  row(shape) {
    return this.wit.op === "delete" ? this.before(shape) : this.after(shape);
  }

  /**
   * The key, parsed. Accepts both Debezium key forms: the bare primary-key object and
   * `{"schema": ..., "payload": ...}`.
   */
  key() {
    if (this.wit.key === undefined) throw new Reject("the event has no key", "missing-key");
    let value;
    try {
      value = parseJson(decoder.decode(this.wit.key));
    } catch (e) {
      throw new Reject(`key is not JSON: ${e.message}`, "bad-key");
    }
    const keys = value !== null && typeof value === "object" ? Object.keys(value) : [];
    return keys.length === 2 && "schema" in value && "payload" in value ? value.payload : value;
  }

  /**
   * The decimal scale of column `column`, read from the value schema (`parameters.scale` of
   * an `org.apache.kafka.connect.data.Decimal` field); `undefined` without a schema or when
   * the column is not a decimal.
   */
  decimalScale(column) {
    const text = this.valueSchema();
    if (text === undefined) return undefined;
    let schema;
    try {
      schema = JSON.parse(text);
    } catch {
      return undefined;
    }
    const rowSchema = (schema.fields || []).find((f) => f.field === "after" || f.field === "before");
    const field = rowSchema && (rowSchema.fields || []).find((f) => f.field === column);
    if (!field || field.name !== "org.apache.kafka.connect.data.Decimal") return undefined;
    const scale = field.parameters && field.parameters.scale;
    return typeof scale === "string" && parseU32Problem(scale) === undefined ? Number(scale) : undefined;
  }

  slice(span) {
    if (span === undefined) return undefined;
    return decoder.decode(this.wit.value.subarray(span.start, span.start + span.len));
  }
}

function parseRow(image, json, shape) {
  if (json === undefined) throw new Reject(`the event has no \`${image}\` image`, "missing-image");
  let row;
  try {
    row = parseJson(json);
  } catch (e) {
    throw new Reject(`${image}: ${e.message}`, "bad-row");
  }
  if (shape !== undefined) {
    const problem = checkRow(row, shape);
    if (problem) throw new Reject(`${image}: ${problem}`, "bad-row");
  }
  return row;
}

const KINDS = {
  int: (v) => (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint",
  number: (v) => typeof v === "number" || typeof v === "bigint",
  string: (v) => typeof v === "string",
  bool: (v) => typeof v === "boolean",
  any: (v) => v !== null,
};

/** `[column, kind, optional]` of each column of a shape, worked out once per shape (the
 * interpreter would otherwise re-parse every spec string of every row). */
const SHAPES = new WeakMap();
function compiled(shape) {
  let columns = SHAPES.get(shape);
  if (columns === undefined) {
    columns = Object.keys(shape).map((column) => {
      const spec = shape[column];
      const optional = spec.endsWith("?");
      return [column, optional ? spec.slice(0, -1) : spec, optional];
    });
    SHAPES.set(shape, columns);
  }
  return columns;
}

const EXPECTED = { int: "an integer", number: "a number", string: "a string", bool: "a boolean", any: "a value" };

/**
 * Checks a parsed row against `shape`, `{ column: kind }` where kind is `int`, `number`,
 * `string`, `bool` or `any`, with a `?` suffix when the column may be `null` or missing
 * (the JavaScript counterpart of the Rust plugin's `#[derive(Deserialize)]` row struct).
 * Columns not in `shape` are allowed. Returns the first problem, or `undefined`.
 */
export function checkRow(row, shape) {
  if (row === null || typeof row !== "object" || Array.isArray(row)) {
    return `expected an object, found ${toJson(row)}`;
  }
  for (const [column, kind, optional] of compiled(shape)) {
    const value = row[column];
    if (value === undefined || value === null) {
      if (!optional) return `missing field \`${column}\``;
      continue;
    }
    if (!KINDS[kind](value)) return `\`${column}\`: expected ${EXPECTED[kind]}, found ${toJson(value)}`;
  }
  return undefined;
}

/**
 * A record to publish, built with chained calls:
 * `Record.to("cdm.customer").jsonKey({ id: 7 }).jsonValue(row).header("cdm.schema", "v1")`.
 * Without a value it is a tombstone.
 */
export class Record {
  constructor(topic) {
    this.topic = topic;
    this.key = undefined;
    this.value = undefined;
    this.headers = [];
    this.error = undefined;
  }

  /** A record for `topic` with no key, no value and no headers. */
  static to(topic) {
    return new Record(topic);
  }

  /** Sets the key to raw bytes (a `Uint8Array`) or text; `undefined` clears it. */
  rawKey(key) {
    this.key = bytes(key);
    return this;
  }

  /** Sets the key to `key` serialised as JSON. */
  jsonKey(key) {
    this.key = this.serialise("key", key);
    return this;
  }

  /** Sets the value to raw bytes (a `Uint8Array`) or text. */
  rawValue(value) {
    this.value = bytes(value);
    return this;
  }

  /** Sets the value to `value` serialised as JSON. */
  jsonValue(value) {
    this.value = this.serialise("value", value);
    return this;
  }

  /** Makes the record a tombstone (no value), for deletes on compacted topics. */
  tombstone() {
    this.value = undefined;
    return this;
  }

  /** Appends a header (value text or bytes). */
  header(key, value) {
    this.headers.push({ key, value: bytes(value) });
    return this;
  }

  serialise(what, value) {
    try {
      return encoder.encode(toJson(value));
    } catch (e) {
      this.error ??= `${what} of record for ${this.topic}: ${e.message}`;
      return undefined;
    }
  }

  /** The WIT `output-record`; throws a `Reject` when a key or value did not serialise. */
  toWit() {
    if (this.error !== undefined) throw new Reject(this.error, "serialize");
    return { topic: this.topic, key: this.key, value: this.value, headers: this.headers };
  }
}

function bytes(value) {
  return typeof value === "string" ? encoder.encode(value) : value;
}

/** One event's outcome from what the plugin function returned or threw. */
function outcome(run) {
  try {
    const result = run();
    const records = result == null ? [] : Array.isArray(result) ? result : [result];
    return { tag: "records", val: records.map((r) => r.toWit()) };
  } catch (e) {
    if (e instanceof Reject) {
      return { tag: "rejected", val: { reason: e.reason, code: e.code } };
    }
    // Like a Rust panic: the host names the last error line as the trap's reason.
    log("error", `plugin threw: ${e && e.stack ? `${e}\n${e.stack}` : e}`);
    throw e;
  }
}

/**
 * Builds the `transform` export from a function `(event: ChangeEvent) => Record[] | Record
 * | null`. `options.init`, a `(config: Config) => void`, validates the configuration once
 * per instance; a thrown error's message refuses it.
 */
export function transform(fn, options = {}) {
  return {
    init(pairs) {
      currentConfig = new Config(pairs);
      try {
        if (options.config) currentSettings = parseSettings(pairs, options.config);
        if (options.init) options.init(currentConfig);
      } catch (e) {
        throw e instanceof Error ? e.message : String(e);
      }
    },
    transformBatch(events) {
      const typed = currentSettings;
      return events.map((event) => outcome(() => fn(new ChangeEvent(event), typed)));
    },
  };
}

export * as debezium from "./debezium.js";
