/**
 * Decoders for the encodings Debezium gives SQL Server (and other) column types in JSON: a
 * port of the Rust SDK's `sluice_sdk::debezium`, giving the same strings byte for byte.
 *
 * With `decimal.handling.mode=precise` and `time.precision.mode=adaptive`, Debezium writes
 * `decimal` as base64 of the unscaled big-endian two's-complement integer (the scale is in
 * the schema), `date` as days since 1970-01-01, `datetime2` as epoch milliseconds,
 * microseconds or nanoseconds depending on the precision, and `time` as milliseconds or
 * nanoseconds of the day. Counts may be `Number`s or `BigInt`s (`parseJson` gives `BigInt`s
 * beyond 2^53); the arithmetic is exact either way.
 */

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/** Each UTF-16 unit below 128 to its sextet, or -1. */
const SEXTET = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) SEXTET[ALPHABET.charCodeAt(i)] = i;

// The decoders run per event in the engine's interpreter, where regular expressions,
// `for...of`, array destructuring and the self-hosted `padStart` each cost far more than
// the loop or index they stand for: the paths run per value avoid them.

/** The sextet of the UTF-16 unit at `i` of `text`, or -1 when it is not base64's. */
function sextet(text, i) {
  const unit = text.charCodeAt(i);
  return unit < 128 ? SEXTET[unit] : -1;
}

/** Standard base64 with optional padding, strict like the Rust SDK's decoder. */
function base64Bytes(text) {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0x3d) end--; // trailing `=`
  const body = end === text.length ? text : text.slice(0, end);
  const padding = text.length - body.length;
  for (let i = 0; i < body.length; i++) {
    if (sextet(body, i) < 0) throw new Error(`Invalid symbol ${body.charCodeAt(i)}, offset ${i}.`);
  }
  if (body.length % 4 === 1) throw new Error(`Invalid input length: ${body.length}`);
  const out = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < body.length; i++) {
    acc = (acc << 6) | sextet(body, i);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) {
    const last = body.length - 1;
    throw new Error(`Invalid last symbol ${body.charCodeAt(last)}, offset ${last}.`);
  }
  if (padding > 2 || (padding > 0 && (body.length + padding) % 4 !== 0)) throw new Error("Invalid padding");
  return out;
}

/**
 * Debezium's precise decimal (base64 of the unscaled value as big-endian two's complement,
 * at most 16 bytes) as a plain decimal string with exactly `scale` fraction digits:
 * `("MDk=", 2)` → `"123.45"`, `("ng0=", 2)` → `"-250.75"`, `("Kg==", 0)` → `"42"`.
 * Throws an `Error` with the Rust SDK's message when `encoded` is not base64, is empty, or
 * holds more than 16 bytes.
 */
export function decimalFromBase64(encoded, scale) {
  let bytes;
  try {
    bytes = base64Bytes(encoded);
  } catch (e) {
    const chars = [...encoded];
    const shown = chars.slice(0, 48).join("");
    const cut = chars.length > 48 ? "…" : "";
    throw new Error(`an encoded decimal is not valid base64: ${JSON.stringify(shown)}${cut} (${e.message})`);
  }
  if (bytes.length === 0) throw new Error("an encoded decimal has no bytes");
  if (bytes.length > 16) {
    throw new Error(`an encoded decimal of ${bytes.length} bytes is wider than 16 bytes (38 digits)`);
  }
  if (bytes.length <= 6) {
    // Up to 48 bits: exact in a `Number`, and no `BigInt` (each result an allocation in
    // the interpreter).
    let unscaled = 0;
    for (let i = 0; i < bytes.length; i++) unscaled = unscaled * 256 + bytes[i];
    if (bytes[0] & 0x80) unscaled -= 2 ** (8 * bytes.length);
    return formatScaled(unscaled, scale);
  }
  let unscaled = 0n;
  for (let i = 0; i < bytes.length; i++) unscaled = (unscaled << 8n) | BigInt(bytes[i]);
  if (bytes[0] & 0x80) unscaled -= 1n << BigInt(8 * bytes.length);
  return formatScaled(unscaled, scale);
}

/** `unscaled` (a `BigInt`, or a `Number` that is an exact integer) / 10^scale as text. */
function formatScaled(unscaled, scale) {
  const negative = unscaled < 0;
  const sign = negative ? "-" : "";
  const digits = (negative ? -unscaled : unscaled).toString();
  if (scale === 0) return sign + digits;
  const padded = digits.padStart(scale + 1, "0");
  return `${sign}${padded.slice(0, padded.length - scale)}.${padded.slice(padded.length - scale)}`;
}

/** Floor division and its remainder of `BigInt`s. */
function divEuclid(a, b) {
  const r = ((a % b) + b) % b;
  return [(a - r) / b, r];
}

/** `(year, month, day)` of a day count (a `BigInt`): Howard Hinnant's `civil_from_days`. */
function civilFromDays(days) {
  const z = days + 719468n;
  const [era, doe] = divEuclid(z, 146097n);
  const yoe = (doe - doe / 1460n + doe / 36524n - doe / 146096n) / 365n;
  const doy = doe - (365n * yoe + yoe / 4n - yoe / 100n);
  const mp = (5n * doy + 2n) / 153n;
  const day = doy - (153n * mp + 2n) / 5n + 1n;
  const month = mp < 10n ? mp + 3n : mp - 9n;
  return [yoe + era * 400n + (month <= 2n ? 1n : 0n), Number(month), Number(day)];
}

/**
 * `civilFromDays` in `Number`s, for |days| below 2^40 (every date of years ±3 billion):
 * the interpreter allocates every `BigInt` result, which made the `BigInt` version most of
 * a plugin's time per event (BENCHMARKS.md). Exact: every intermediate stays far below
 * 2^53 and `Math.floor` of a quotient of such integers is the integer quotient.
 */
function civilFromDaysNumber(days) {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (month <= 2 ? 1 : 0), month, day];
}

const SMALL_DAYS = 2 ** 40;

const ZEROS = "000000000";

/** `n` (a `Number` or `BigInt`) in decimal, zero-padded to `width` digits. */
function pad(n, width) {
  const digits = `${n}`;
  if (digits.length >= width) return digits;
  return width - digits.length <= ZEROS.length ? ZEROS.slice(0, width - digits.length) + digits : digits.padStart(width, "0");
}

/** `io.debezium.time.Date` (days since 1970-01-01) → `"YYYY-MM-DD"`: `20777` → `"2026-11-20"`. */
export function dateFromEpochDays(days) {
  const small = typeof days === "number" ? Math.abs(days) < SMALL_DAYS : days > -SMALL_DAYS && days < SMALL_DAYS;
  const civil = small ? civilFromDaysNumber(Number(days)) : civilFromDays(BigInt(days));
  const year = civil[0];
  const month = civil[1];
  const day = civil[2];
  const negative = year < 0;
  return `${negative ? "-" : ""}${pad(negative ? -year : year, 4)}-${pad(month, 2)}-${pad(day, 2)}`;
}

/**
 * `[seconds, fraction]` of a count of `perSecond` (10^`digits`) units, floor division, as
 * `Number`s when exact.
 */
function split(count, perSecond, digits) {
  if (typeof count === "number" && Number.isSafeInteger(count)) {
    const seconds = Math.floor(count / perSecond);
    return [seconds, count - seconds * perSecond];
  }
  if (typeof count === "bigint" && count >= 0n) {
    // A non-negative count in decimal: the seconds are its leading digits, the fraction
    // its last ones. Cheaper than `BigInt` division (epoch nanoseconds are `BigInt`s).
    const text = count.toString();
    if (text.length - digits <= 15) {
      const seconds = text.length > digits ? Number(text.slice(0, text.length - digits)) : 0;
      return [seconds, Number(text.length > digits ? text.slice(text.length - digits) : text)];
    }
  }
  const division = divEuclid(BigInt(count), BigInt(perSecond));
  const seconds = division[0];
  const fraction = division[1];
  const exact = seconds > -9007199254740991n && seconds < 9007199254740991n;
  return [exact ? Number(seconds) : seconds, Number(fraction)];
}

function timestamp(count, perSecond, digits) {
  const parts = split(count, perSecond, digits);
  const seconds = parts[0];
  const fraction = parts[1];
  let days;
  let s;
  if (typeof seconds === "number") {
    days = Math.floor(seconds / 86400);
    s = seconds - days * 86400;
  } else {
    const division = divEuclid(seconds, 86400n);
    days = division[0];
    s = Number(division[1]);
  }
  const time = `${pad(Math.floor(s / 3600), 2)}:${pad(Math.floor((s % 3600) / 60), 2)}:${pad(s % 60, 2)}`;
  return `${dateFromEpochDays(days)}T${time}.${pad(fraction, digits)}Z`;
}

/** `io.debezium.time.Timestamp` (epoch ms) → RFC 3339 UTC with 3 fraction digits. */
export function timestampFromEpochMillis(ms) {
  return timestamp(ms, 1000, 3);
}

/** `io.debezium.time.MicroTimestamp` (epoch µs) → RFC 3339 UTC with 6 fraction digits. */
export function timestampFromEpochMicros(us) {
  return timestamp(us, 1000000, 6);
}

/** `io.debezium.time.NanoTimestamp` (epoch ns) → RFC 3339 UTC with 9 fraction digits. */
export function timestampFromEpochNanos(ns) {
  return timestamp(ns, 1000000000, 9);
}

function timeOfDay(count, perSecond, digits) {
  let units = BigInt(count);
  const sign = units < 0n ? "-" : "";
  if (units < 0n) units = -units;
  const seconds = units / perSecond;
  const fraction = units % perSecond;
  return `${sign}${pad(seconds / 3600n, 2)}:${pad((seconds % 3600n) / 60n, 2)}:${pad(seconds % 60n, 2)}.${pad(fraction, digits)}`;
}

/** `io.debezium.time.Time` (ms of the day) → `"HH:MM:SS.mmm"`, not wrapped into a day. */
export function timeFromMillisOfDay(ms) {
  return timeOfDay(ms, 1000n, 3);
}

/** `io.debezium.time.NanoTime` (ns of the day) → `"HH:MM:SS.nnnnnnnnn"`, not wrapped. */
export function timeFromNanosOfDay(ns) {
  return timeOfDay(ns, 1000000000n, 9);
}

/**
 * `value` with exactly `digits` fraction digits, rounded half to even on the exact binary
 * value, as Rust's `format!("{value:.digits$}")` writes an `f64` (`toFixed` rounds ties up
 * and switches to exponents from 1e21).
 */
export function fixed(value, digits) {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
  // The exact value as mantissa × 2^exponent.
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const negative = hi >>> 31 === 1;
  const biased = (hi >>> 20) & 0x7ff;
  let mantissa = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  if (biased !== 0) mantissa |= 1n << 52n;
  const exponent = BigInt((biased === 0 ? 1 : biased) - 1075);
  // scaled = |value| × 10^digits as a fraction numerator / denominator.
  let numerator = mantissa * 10n ** BigInt(digits);
  let denominator = 1n;
  if (exponent >= 0n) numerator <<= exponent;
  else denominator <<= -exponent;
  let quotient = numerator / denominator;
  const twice = (numerator % denominator) * 2n;
  if (twice > denominator || (twice === denominator && quotient % 2n === 1n)) quotient += 1n;
  const text = formatScaled(quotient, digits);
  return negative ? `-${text}` : text;
}
