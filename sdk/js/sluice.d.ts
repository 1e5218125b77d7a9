/**
 * Types of the sluice plugin SDK for JavaScript (`sluice.js`), for editors and TypeScript
 * checking of plugin sources.
 */

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";
export type Operation = "create" | "update" | "delete" | "read" | "truncate" | "message";
export type SnapshotMarker =
  | "none"
  | "in-progress"
  | "first"
  | "first-in-data-collection"
  | "last-in-data-collection"
  | "last"
  | "incremental";
/** An integer: a `BigInt` when beyond 2^53. */
export type Int = number | bigint;
/** A column kind for `checkRow`; a `?` suffix allows `null` or a missing column. */
export type Kind = "int" | "number" | "string" | "bool" | "any";
export type Shape = { [column: string]: Kind | `${Kind}?` };

export function log(level: LogLevel, message: string): void;
export function parseJson(text: string): any;
export function toJson(value: unknown): string;
export function checkRow(row: unknown, shape: Shape): string | undefined;
export const OP_CODES: { [op in Operation]: string };

export class Reject extends Error {
  constructor(reason: string, code?: string);
  reason: string;
  code: string | undefined;
  withCode(code: string): Reject;
}

export class Config {
  constructor(pairs: Array<[string, string]>);
  pairs: Array<[string, string]>;
  get(key: string): string | undefined;
  u32(key: string): number | undefined;
}
export function config(): Config;

/** One key of a settings schema; without `default` the key is required. */
export type SettingSpec =
  | { type?: "string"; oneOf?: readonly string[]; default?: string }
  | { type: "u32" | "int" | "number"; default?: number }
  | { type: "bool"; default?: boolean };
export type SettingsSchema = { [key: string]: SettingSpec };
/** The settings object a schema describes. */
export type SettingsOf<S extends SettingsSchema> = {
  [K in keyof S]: S[K] extends { type: "bool" }
    ? boolean
    : S[K] extends { type: "u32" | "int" | "number" }
      ? number
      : S[K] extends { oneOf: readonly (infer V)[] }
        ? V
        : string;
};
export function parseSettings<S extends SettingsSchema>(
  pairs: Array<[string, string]>,
  schema: S,
): SettingsOf<S>;
export function settings(): unknown;

export interface SourceInfo {
  connector: string;
  name: string;
  db: string;
  schema?: string;
  table: string;
  changeLsn?: string;
  commitLsn?: string;
  eventSerialNo?: Int;
  snapshot: SnapshotMarker;
  tsMs?: Int;
}

export interface Header {
  key: string;
  value?: Uint8Array;
}

export class ChangeEvent {
  readonly op: Operation;
  readonly opCode: string;
  readonly source: SourceInfo;
  readonly isSnapshot: boolean;
  readonly tsMs: Int | undefined;
  readonly transaction: { id: string; totalOrder: Int; dataCollectionOrder: Int } | undefined;
  readonly origin: { topic: string; partition: number; offset: Int };
  readonly value: Uint8Array;
  readonly keyBytes: Uint8Array | undefined;
  readonly headers: Header[];
  qualifiedTable(): string;
  header(key: string): string | undefined;
  beforeJson(): string | undefined;
  afterJson(): string | undefined;
  valueSchema(): string | undefined;
  before(shape?: Shape): any;
  after(shape?: Shape): any;
  row(shape?: Shape): any;
  key(): any;
  decimalScale(column: string): number | undefined;
}

export class Record {
  static to(topic: string): Record;
  rawKey(key: Uint8Array | string | undefined): Record;
  jsonKey(key: unknown): Record;
  rawValue(value: Uint8Array | string): Record;
  jsonValue(value: unknown): Record;
  tombstone(): Record;
  header(key: string, value: Uint8Array | string): Record;
}

export type TransformResult = Record[] | Record | null | undefined;
export function transform(
  fn: (event: ChangeEvent) => TransformResult,
  options?: { init?: (config: Config) => void },
): unknown;
export function transform<const S extends SettingsSchema>(
  fn: (event: ChangeEvent, settings: SettingsOf<S>) => TransformResult,
  options: { config: S; init?: (config: Config) => void },
): unknown;

/** What `sluice plugin build` exports as the component's `transform-packed`: the module's
 * `transform`, refused (at build time) unless `transform` made it. */
export function packedExport(exported: unknown): unknown;

export namespace debezium {
  function decimalFromBase64(encoded: string, scale: number): string;
  function dateFromEpochDays(days: Int): string;
  function timestampFromEpochMillis(ms: Int): string;
  function timestampFromEpochMicros(us: Int): string;
  function timestampFromEpochNanos(ns: Int): string;
  function timeFromMillisOfDay(ms: Int): string;
  function timeFromNanosOfDay(ns: Int): string;
  function fixed(value: number, digits: number): string;
}
