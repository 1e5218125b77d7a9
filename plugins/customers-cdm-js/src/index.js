/**
 * `customers-cdm` in JavaScript: maps Debezium change events of a SQL Server
 * `dbo.customers` table to the canonical customer record on `cdm.customer`, record for
 * record and byte for byte what the Rust plugin in `plugins/customers-cdm` publishes
 * (tests/golden.rs runs both over the samples).
 *
 * - columns are renamed to the CDM's camelCase names, first and last name joined;
 * - the email is masked (`j***@example.com`);
 * - `credit_limit` (decimal) is decoded from Debezium's encoding into a decimal string,
 *   whatever `decimal.handling.mode` the connector used (`precise` base64, `string`,
 *   `double`); the scale comes from the event's schema when it has one, else from config;
 * - `birth_date` (days since epoch), `created_at` (epoch ms) and `updated_at` (epoch ns)
 *   become ISO-8601 strings;
 * - the key is `{"customerId": <id>}`; creates, updates and snapshot reads publish the new
 *   state (upsert); deletes publish a tombstone, so `cdm.customer` can be compacted.
 *
 * Config (`SETTINGS`, typed and checked once at `init`; an unknown key or a bad value
 * refuses the plugin with the key named): `topic` (default `cdm.customer`);
 * `decimal.handling.mode`: `precise` (default), `string` or `double`; `credit_limit.scale`
 * when events carry no schema (default 2).
 */

import * as sluice from "sluice";

const { Record, Reject, debezium } = sluice;

/** The plugin's configuration schema (the Rust plugin's `Settings`). */
const SETTINGS = {
  topic: { default: "cdm.customer" },
  "decimal.handling.mode": { oneOf: ["precise", "string", "double"], default: "precise" },
  "credit_limit.scale": { type: "u32", default: 2 },
};

/** A row of `dbo.customers` as Debezium encodes it. */
const CUSTOMER_ROW = {
  id: "int",
  first_name: "string?",
  last_name: "string?",
  email: "string?",
  credit_limit: "any?",
  birth_date: "int?",
  created_at: "int?",
  updated_at: "int?",
  customer_guid: "string?",
  is_active: "bool?",
};

/** Maps one change event of `dbo.customers` to its canonical record (or tombstone). */
function customersCdm(event, settings) {
  const topic = settings.topic;
  const op = event.op;
  if (op === "truncate" || op === "message") return [];
  const row = event.row(CUSTOMER_ROW);
  const key = { customerId: row.id };
  if (op === "delete") return [Record.to(topic).jsonKey(key).tombstone()];

  const source = event.source;
  const canonical = {
    customerId: row.id,
    firstName: row.first_name ?? null,
    lastName: row.last_name ?? null,
    fullName: fullName(row.first_name, row.last_name),
    emailMasked: row.email == null ? null : maskEmail(row.email),
    creditLimit: row.credit_limit == null ? null : decodeDecimal(
            row.credit_limit,
            settings["decimal.handling.mode"],
            event.decimalScale("credit_limit") ?? settings["credit_limit.scale"],
          ),
    birthDate: row.birth_date == null ? null : debezium.dateFromEpochDays(row.birth_date),
    createdAt: row.created_at == null ? null : debezium.timestampFromEpochMillis(row.created_at),
    updatedAt: row.updated_at == null ? null : debezium.timestampFromEpochNanos(row.updated_at),
    externalId: row.customer_guid == null ? null : asciiLowercase(row.customer_guid),
    active: row.is_active ?? true,
    source: {
      table: event.qualifiedTable(),
      op: event.opCode,
      snapshot: event.isSnapshot,
      commitLsn: source.commitLsn ?? null,
      changeLsn: source.changeLsn ?? null,
      tsMs: source.tsMs ?? null,
    },
  };
  return [Record.to(topic).jsonKey(key).jsonValue(canonical).header("cdm.schema", "customer.v1")];
}

/** Decodes a decimal column in any of Debezium's `decimal.handling.mode`s. */
function decodeDecimal(raw, mode, scale) {
  if (mode === "precise" && typeof raw === "string") {
    try {
      return debezium.decimalFromBase64(raw, scale);
    } catch (e) {
      throw new Reject(e.message, "decode");
    }
  }
  if (mode === "string" && typeof raw === "string") return raw;
  if (mode === "double" && (typeof raw === "number" || typeof raw === "bigint")) {
    return debezium.fixed(Number(raw), scale);
  }
  throw new Reject(`credit_limit: ${sluice.toJson(raw)} is not a decimal in \`${mode}\` mode`, "bad-decimal");
}

function fullName(first, last) {
  if (first != null && last != null) return `${first} ${last}`;
  return first ?? last ?? "";
}

/** `john.doe@example.com` → `j***@example.com`; text without `@` is masked whole. */
function maskEmail(email) {
  const at = email.indexOf("@");
  if (at <= 0) return "***";
  return `${String.fromCodePoint(email.codePointAt(0))}***@${email.slice(at + 1)}`;
}

/**
 * Like Rust's `to_ascii_lowercase`: only A-Z change (so `toLowerCase` for ASCII text). A
 * loop, not a regular expression: per event, in the engine's interpreter, it is cheaper.
 */
function asciiLowercase(text) {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
  }
  return text.toLowerCase();
}

export const transform = sluice.transform(customersCdm, { config: SETTINGS });
