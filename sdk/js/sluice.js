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
 * `sluice.transform(fn, { init })` builds the `sluice:transform/transform-packed` export
 * (`wit/packed.wit`: each batch in one buffer each way): it calls `fn` once per event of
 * each batch with a `ChangeEvent` read from the batch, turns what it returns (an array of
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
 * `JSON.parse` that keeps integers beyond 2^53 exact, as `BigInt`s. A flat object (a row
 * image: no nested object or array) is parsed as it is, and each member whose integer
 * lost precision is read again from its literal; other text without long digit runs is
 * parsed as it is too; anything else goes through a reviver, which the engine passes
 * each literal's source text (a reviver call per value made it most of a row's cost).
 * The row's path runs no regular expression: in the engine's interpreter a scan of the
 * row by one cost as much as parsing it.
 */
export function parseJson(text) {
  const value = JSON.parse(text);
  if (value !== null && typeof value === "object") {
    if (!Array.isArray(value) && exactFlatObject(text, value)) return value;
  } else if (typeof value !== "number" || Number.isSafeInteger(value) || !Number.isInteger(value)) {
    return value;
  }
  if (!LONG_INTEGER.test(text)) return value;
  return JSON.parse(text, exactIntegers);
}

/**
 * Replaces in `row`, an object parsed from `text`, each integer beyond 2^53 by the
 * `BigInt` of its literal; `false` (leaving `row` to be parsed again) unless `row` is flat
 * and each such literal is found where nothing but that member can be: `"name":` right
 * after `{` or `,` is a key (a quote inside a string is escaped), and in text with one
 * `{` and no `[` (not even inside a string, nor in a member a later duplicate replaced)
 * the last such key is the member `JSON.parse` kept.
 */
function exactFlatObject(text, row) {
  let inexact;
  for (const key in row) {
    const value = row[key];
    if (typeof value === "number") {
      if (Number.isSafeInteger(value) || !Number.isInteger(value)) continue;
      if (inexact === undefined) inexact = [];
      inexact.push(key);
    } else if (value !== null && typeof value === "object") {
      return false;
    }
  }
  if (inexact === undefined) return true;
  if (text.indexOf("{", text.indexOf("{") + 1) !== -1 || text.includes("[")) return false;
  for (let i = 0; i < inexact.length; i++) {
    const key = inexact[i];
    const name = `${JSON.stringify(key)}:`;
    const at = text.lastIndexOf(name);
    const before = at > 0 ? text.charCodeAt(at - 1) : 0;
    if (before !== 0x7b && before !== 0x2c) return false; // `{` or `,`
    const literal = integerLiteral(text, at + name.length);
    if (literal === undefined) return false;
    row[key] = literal;
  }
  return true;
}

/**
 * The `BigInt` of the integer literal (and only that: no fraction, no exponent) at
 * `from`, between JSON whitespace and followed by `,` or `}`; `undefined` otherwise.
 */
function integerLiteral(text, from) {
  let at = from;
  let c = text.charCodeAt(at);
  while (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) c = text.charCodeAt(++at);
  const start = at;
  if (c === 0x2d) c = text.charCodeAt(++at); // `-`
  const digits = at;
  while (c >= 0x30 && c <= 0x39) c = text.charCodeAt(++at);
  if (at === digits) return undefined;
  const end = at;
  while (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) c = text.charCodeAt(++at);
  if (c !== 0x2c && c !== 0x7d) return undefined; // `,` or `}`
  return BigInt(text.slice(start, end));
}

function exactIntegers(_key, value, context) {
  if (typeof value !== "number" || Number.isSafeInteger(value) || !Number.isInteger(value)) return value;
  if (context === undefined) {
    // Engines without JSON.parse source text access (Node 20) would round silently.
    throw new Error("this engine's JSON.parse does not expose source text; large integers would be rounded");
  }
  return /^-?\d+$/.test(context.source) ? BigInt(context.source) : value;
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
  }
  // `BigInt`s: the engine writes them as given with `JSON.rawJSON` where it has it;
  // elsewhere each becomes a marked string, unquoted afterwards.
  if (typeof JSON.rawJSON === "function") {
    return JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? JSON.rawJSON(String(v)) : v));
  }
  for (let marker = "\u0000bigint"; ; marker += "\u0000") {
    let marked = 0;
    const text = JSON.stringify(value, (_key, v) => {
      if (typeof v !== "bigint") return v;
      marked += 1;
      return `${marker}:${v}`;
    });
    // The marker as `JSON.stringify` writes it inside a string (NUL escaped).
    const written = JSON.stringify(marker).slice(1, -1).replaceAll("\\", "\\\\");
    const pattern = new RegExp(`"${written}:(-?\\d+)"`, "g");
    // A string of the plugin's that is exactly a marked integer would be unquoted too:
    // then a longer marker.
    if ((text.match(pattern) || []).length === marked) return text.replace(pattern, "$1");
  }
}

const SNAPSHOT_MARKERS = [
  "none",
  "in-progress",
  "first",
  "first-in-data-collection",
  "last-in-data-collection",
  "last",
  "incremental",
];

/** The `operation` enum by index, as the packed batch carries it. */
const OPERATIONS = ["create", "update", "delete", "read", "truncate", "message"];

/** Debezium's one-letter `op` codes by operation. */
export const OP_CODES = {
  create: "c",
  update: "u",
  delete: "d",
  read: "r",
  truncate: "t",
  message: "m",
};

const OP_LETTERS = OPERATIONS.map((op) => OP_CODES[op]);

/** An absent optional value's offset in the packed batch (`wit/packed.wit`). */
const NONE = 0xffffffff;
/** Words per event entry in version 1 of the packed batch. */
const EVENT_WORDS = 49;

/** A signed 64-bit integer from its two words (low, high), as a `Number` when exact. */
function s64(low, high) {
  const signedHigh = high | 0;
  if (signedHigh >= -0x200000 && signedHigh < 0x200000) return signedHigh * 4294967296 + low;
  return (BigInt(signedHigh) << 32n) | BigInt(low);
}

/**
 * One packed batch (`wit/packed.wit`): its bytes, its words, and the text of the strings
 * consecutive events share (the host writes them once), decoded once.
 */
class PackedBatch {
  constructor(data) {
    // Word reads through a `Uint32Array` (wasm is little-endian, as the format); a buffer
    // that does not start on a word boundary is copied to one that does.
    const bytes = data.byteOffset % 4 === 0 ? data : data.slice();
    if (bytes.byteLength < 16) throw new Error(`packed batch of ${bytes.byteLength} bytes`);
    this.bytes = bytes;
    this.words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
    const [version, count, stride, headers] = this.words.subarray(0, 4);
    if (version !== 1 || stride < EVENT_WORDS) {
      throw new Error(`packed batch of version ${version} with ${stride} words per event`);
    }
    this.count = count;
    this.stride = stride;
    this.headersAt = 4 + count * stride;
    if (this.headersAt + 4 * headers > this.words.length) throw new Error("packed batch shorter than its tables");
    this.shared = new Map();
    this.qualified = new Map();
  }

  text(offset, length) {
    if (offset === NONE) return undefined;
    return decoder.decode(this.bytes.subarray(offset, offset + length));
  }

  sharedText(offset, length) {
    if (offset === NONE) return undefined;
    let text = this.shared.get(offset);
    if (text === undefined) {
      text = decoder.decode(this.bytes.subarray(offset, offset + length));
      this.shared.set(offset, text);
    }
    return text;
  }

  /** A copy of the bytes at (offset, length), or `undefined` for an absent value. */
  copy(offset, length) {
    return offset === NONE ? undefined : this.bytes.slice(offset, offset + length);
  }
}

/**
 * One change event, decoded from its Debezium envelope by the host and packed into the
 * batch (`wit/packed.wit`). Every part is read from the batch when first asked for; row
 * images arrive as JSON text and are parsed only when asked for.
 */
export class ChangeEvent {
  /** The event whose entry starts at word `at` of `batch`. */
  constructor(batch, at) {
    this.batch = batch;
    this.at = at;
  }

  /** `create`, `update`, `delete`, `read`, `truncate` or `message`. */
  get op() {
    return OPERATIONS[this.batch.words[this.at]];
  }

  /** Debezium's one-letter code of the operation (`c`, `u`, `d`, `r`, `t`, `m`). */
  get opCode() {
    return OP_LETTERS[this.batch.words[this.at]];
  }

  /**
   * The source block: `connector`, `name`, `db`, `schema`, `table`, `changeLsn`,
   * `commitLsn`, `eventSerialNo`, `snapshot` (the marker) and `tsMs`; absent values are
   * `undefined`.
   */
  get source() {
    // A plain object, as the fields are (spread and `Object.keys` see them); the texts
    // the events of a batch share are decoded once per batch.
    const batch = this.batch;
    const w = batch.words;
    const at = this.at;
    return {
      connector: batch.sharedText(w[at + 11], w[at + 12]),
      name: batch.sharedText(w[at + 13], w[at + 14]),
      db: batch.sharedText(w[at + 15], w[at + 16]),
      schema: batch.sharedText(w[at + 17], w[at + 18]),
      table: batch.sharedText(w[at + 19], w[at + 20]),
      changeLsn: batch.text(w[at + 21], w[at + 22]),
      commitLsn: batch.text(w[at + 23], w[at + 24]),
      eventSerialNo: w[at + 25] ? s64(w[at + 26], w[at + 27]) : undefined,
      snapshot: SNAPSHOT_MARKERS[w[at + 28]],
      tsMs: w[at + 29] ? s64(w[at + 30], w[at + 31]) : undefined,
    };
  }

  /** Whether the event belongs to a snapshot (any marker but `none`). */
  get isSnapshot() {
    return this.batch.words[this.at + 28] !== 0;
  }

  /** `schema.table` (or just `table` when the database has no schemas). */
  qualifiedTable() {
    const batch = this.batch;
    const w = batch.words;
    const at = this.at;
    // Events that share the table's text share its schema's too (`wit/packed.wit`).
    let qualified = batch.qualified.get(w[at + 19]);
    if (qualified === undefined) {
      const table = batch.sharedText(w[at + 19], w[at + 20]);
      const schema = batch.sharedText(w[at + 17], w[at + 18]);
      qualified = schema === undefined ? table : `${schema}.${table}`;
      batch.qualified.set(w[at + 19], qualified);
    }
    return qualified;
  }

  /** When the connector processed the event (envelope `ts_ms`). */
  get tsMs() {
    const w = this.batch.words;
    const at = this.at;
    return w[at + 32] ? s64(w[at + 33], w[at + 34]) : undefined;
  }

  /** The transaction block (`id`, `totalOrder`, `dataCollectionOrder`), when present. */
  get transaction() {
    const w = this.batch.words;
    const at = this.at;
    if (!w[at + 35]) return undefined;
    return {
      id: this.batch.text(w[at + 36], w[at + 37]),
      totalOrder: s64(w[at + 38], w[at + 39]),
      dataCollectionOrder: s64(w[at + 40], w[at + 41]),
    };
  }

  /** Where the event was read from: `{ topic, partition, offset }`. */
  get origin() {
    const w = this.batch.words;
    const at = this.at;
    return {
      topic: this.batch.sharedText(w[at + 44], w[at + 45]),
      partition: w[at + 46] | 0,
      offset: s64(w[at + 47], w[at + 48]),
    };
  }

  /** The record value exactly as received (the whole Debezium envelope), a `Uint8Array`. */
  get value() {
    const w = this.batch.words;
    return this.batch.copy(w[this.at + 1], w[this.at + 2]);
  }

  /** The record key bytes as received, or `undefined`. */
  get keyBytes() {
    const w = this.batch.words;
    return this.batch.copy(w[this.at + 3], w[this.at + 4]);
  }

  /** The headers as received: `[{ key, value }]`, values `Uint8Array` or `undefined`. */
  get headers() {
    const batch = this.batch;
    const w = batch.words;
    const first = w[this.at + 42];
    const headers = [];
    for (let index = first; index < first + w[this.at + 43]; index++) {
      const h = batch.headersAt + 4 * index;
      headers.push({ key: batch.text(w[h], w[h + 1]), value: batch.copy(w[h + 2], w[h + 3]) });
    }
    return headers;
  }

  /** The value of the first header named `key`, as text. */
  header(key) {
    const found = this.headers.find((h) => h.key === key);
    return found && found.value !== undefined ? decoder.decode(found.value) : undefined;
  }

  /** The `before` image as JSON text, or `undefined`. */
  beforeJson() {
    return this.slice(5);
  }

  /** The `after` image as JSON text, or `undefined`. */
  afterJson() {
    return this.slice(7);
  }

  /** The Kafka Connect value schema as JSON text, when the event carried one. */
  valueSchema() {
    return this.slice(9);
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
    return this.batch.words[this.at] === 2 ? this.before(shape) : this.after(shape);
  }

  /**
   * The key, parsed. Accepts both Debezium key forms: the bare primary-key object and
   * `{"schema": ..., "payload": ...}`.
   */
  key() {
    const w = this.batch.words;
    const text = this.batch.text(w[this.at + 3], w[this.at + 4]);
    if (text === undefined) throw new Reject("the event has no key", "missing-key");
    let value;
    try {
      value = parseJson(text);
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

  /** The text of the span (inside the value) at word `word` of the entry. */
  slice(word) {
    const w = this.batch.words;
    const start = w[this.at + word];
    if (start === NONE) return undefined;
    const from = w[this.at + 1] + start;
    return decoder.decode(this.batch.bytes.subarray(from, from + w[this.at + word + 1]));
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

const KINDS = ["int", "number", "string", "bool", "any"];
const EXPECTED = ["an integer", "a number", "a string", "a boolean", "a value"];

/** Whether `value` (neither `null` nor `undefined`) is of kind `kind` (its index in `KINDS`). */
function isKind(kind, value) {
  switch (kind) {
    case 0:
      return (typeof value === "number" && Number.isInteger(value)) || typeof value === "bigint";
    case 1:
      return typeof value === "number" || typeof value === "bigint";
    case 2:
      return typeof value === "string";
    case 3:
      return typeof value === "boolean";
    default:
      return true;
  }
}

/**
 * The columns, kinds and optionality of a shape, worked out once per shape (the
 * interpreter would otherwise re-parse every spec string of every row); a spec of no
 * known kind throws, naming it.
 */
const SHAPES = new WeakMap();
function compiled(shape) {
  let columns = SHAPES.get(shape);
  if (columns === undefined) {
    const names = Object.keys(shape);
    columns = { names, kinds: [], optional: [] };
    for (const column of names) {
      const spec = shape[column];
      const optional = typeof spec === "string" && spec.endsWith("?");
      const kind = KINDS.indexOf(optional ? spec.slice(0, -1) : spec);
      if (kind < 0) throw new Error(`row shape: \`${column}\` has unknown kind ${JSON.stringify(spec)}`);
      columns.kinds.push(kind);
      columns.optional.push(optional);
    }
    SHAPES.set(shape, columns);
  }
  return columns;
}

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
  const { names, kinds, optional } = compiled(shape);
  for (let i = 0; i < names.length; i++) {
    const value = row[names[i]];
    if (value === undefined || value === null) {
      if (!optional[i]) return `missing field \`${names[i]}\``;
      continue;
    }
    if (!isKind(kinds[i], value)) {
      return `\`${names[i]}\`: expected ${EXPECTED[kinds[i]]}, found ${toJson(value)}`;
    }
  }
  return undefined;
}

/**
 * A record to publish, built with chained calls:
 * `Record.to("cdm.customer").jsonKey({ id: 7 }).jsonValue(row).header("cdm.schema", "v1")`.
 * Without a value it is a tombstone. Keys, values and header values are kept as given
 * (text or a `Uint8Array`) and written as UTF-8 straight into the batch's outcomes.
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
    this.key = key;
    return this;
  }

  /** Sets the key to `key` serialised as JSON. */
  jsonKey(key) {
    this.key = this.serialise("key", key);
    return this;
  }

  /** Sets the value to raw bytes (a `Uint8Array`) or text. */
  rawValue(value) {
    this.value = value;
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
    this.headers.push({ key, value });
    return this;
  }

  serialise(what, value) {
    try {
      return toJson(value);
    } catch (e) {
      this.error ??= `${what} of record for ${this.topic}: ${e.message}`;
      return undefined;
    }
  }
}

/**
 * The outcomes of one batch as `wit/packed.wit` lays them out: little-endian `u32`
 * words and UTF-8 bytes, in one buffer that grows by doubling.
 */
class OutcomeWriter {
  constructor(capacity) {
    this.bytes = new Uint8Array(capacity);
    this.view = new DataView(this.bytes.buffer);
    this.length = 0;
  }

  reserve(more) {
    const needed = this.length + more;
    if (needed <= this.bytes.length) return;
    let capacity = this.bytes.length * 2;
    while (capacity < needed) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  word(value) {
    this.reserve(4);
    this.view.setUint32(this.length, value, true);
    this.length += 4;
  }

  /** A length and the bytes of `value` (text as UTF-8, or a `Uint8Array`). */
  sized(value) {
    if (typeof value === "string") {
      // UTF-8 takes at most three bytes per UTF-16 unit.
      this.reserve(4 + 3 * value.length);
      const { written } = encoder.encodeInto(value, this.bytes.subarray(this.length + 4));
      this.view.setUint32(this.length, written, true);
      this.length += 4 + written;
    } else if (ArrayBuffer.isView(value)) {
      // A `Uint8Array`, or any view of bytes (the engine's own list<u8> included).
      const length = value.byteLength;
      this.reserve(4 + length);
      this.view.setUint32(this.length, length, true);
      this.bytes.set(new Uint8Array(value.buffer, value.byteOffset, length), this.length + 4);
      this.length += 4 + length;
    } else {
      throw new TypeError(`expected text or a Uint8Array, found ${value === null ? "null" : typeof value}`);
    }
  }

  /** `sized`, or the `none` marker for `undefined` (and `null`). */
  optional(value) {
    if (value == null) this.word(NONE);
    else this.sized(value);
  }

  // Indexed loops, here and on every path run per event: `for...of` makes an iterator
  // and a result object per step in the engine's interpreter.
  records(records) {
    this.word(0);
    this.word(records.length);
    for (let r = 0; r < records.length; r++) {
      const record = records[r];
      this.sized(record.topic);
      this.optional(record.key);
      this.optional(record.value);
      const headers = record.headers;
      this.word(headers.length);
      for (let h = 0; h < headers.length; h++) {
        this.sized(headers[h].key);
        this.optional(headers[h].value);
      }
    }
  }

  rejection(reject) {
    this.word(1);
    this.sized(String(reject.reason));
    this.optional(reject.code == null ? undefined : String(reject.code));
  }

  finish() {
    return this.bytes.subarray(0, this.length);
  }
}

/**
 * What the plugin function returned, as an array of `Record`s; throws a `Reject` when a
 * key or value of one did not serialise.
 */
function recordsOf(result) {
  const records = result == null ? [] : Array.isArray(result) ? result : [result];
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (!(record instanceof Record)) {
      throw new TypeError(`a transform returns Records (or an array of them, or null), not ${toJson(record)}`);
    }
    if (record.error !== undefined) throw new Reject(record.error, "serialize");
  }
  return records;
}

/**
 * Builds the plugin's export from a function `(event: ChangeEvent) => Record[] | Record
 * | null`. `options.init`, a `(config: Config) => void`, validates the configuration once
 * per instance; a thrown error's message refuses it. `sluice plugin build` exports it as
 * `sluice:transform/transform-packed` (`wit/packed.wit`): each batch arrives as one
 * buffer, read lazily, and the outcomes leave as one.
 */
export function transform(fn, options = {}) {
  return {
    [EXPORT]: true,
    init(pairs) {
      currentConfig = new Config(pairs);
      try {
        if (options.config) currentSettings = parseSettings(pairs, options.config);
        if (options.init) options.init(currentConfig);
      } catch (e) {
        throw e instanceof Error ? e.message : String(e);
      }
    },
    transformPacked(data) {
      const batch = new PackedBatch(data);
      const typed = currentSettings;
      const out = new OutcomeWriter(1024 + 512 * batch.count);
      out.word(1);
      out.word(batch.count);
      for (let i = 0, at = 4; i < batch.count; i++, at += batch.stride) {
        let records;
        try {
          records = recordsOf(fn(new ChangeEvent(batch, at), typed));
        } catch (e) {
          if (e instanceof Reject) {
            out.rejection(e);
            continue;
          }
          throw threw(e);
        }
        try {
          out.records(records);
        } catch (e) {
          // A key, value or header of a type that is not bytes: a plugin bug, like a
          // thrown error (the batch's outcomes are not returned).
          throw threw(e);
        }
      }
      return out.finish();
    },
  };
}

/** Logs what the plugin threw (like a Rust panic: the host names the last error line
 * as the trap's reason) and returns it, to be thrown on, which traps the instance. */
function threw(e) {
  log("error", `plugin threw: ${e && e.stack ? `${e}\n${e.stack}` : e}`);
  return e;
}

/** Marks what `transform` built, so the build can tell a plugin's export is the SDK's. */
const EXPORT = Symbol("sluice.transform");

/**
 * The component's `transform-packed` export from the plugin module's `transform` export;
 * `sluice plugin build` calls it (at build time, when the module is initialised), so a
 * plugin whose `transform` is not made by `sluice.transform(fn)` fails to build with this
 * message.
 */
export function packedExport(exported) {
  if (exported === undefined) {
    throw new Error("the plugin's main module has no `transform` export: `export const transform = sluice.transform(fn)`");
  }
  if (exported === null || exported[EXPORT] !== true) {
    throw new Error("the plugin's `transform` export is not made by `sluice.transform(fn)` (the SDK builds the component's export)");
  }
  return exported;
}

export * as debezium from "./debezium.js";
