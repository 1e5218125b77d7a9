"""Decoders for the encodings Debezium gives SQL Server (and other) column types in JSON:
a port of the Rust SDK's ``sluice_sdk::debezium``, giving the same strings byte for byte.

With ``decimal.handling.mode=precise`` and ``time.precision.mode=adaptive``, Debezium writes
``decimal`` as base64 of the unscaled big-endian two's-complement integer (the scale is in
the schema), ``date`` as days since 1970-01-01, ``datetime2`` as epoch milliseconds,
microseconds or nanoseconds depending on the precision, and ``time`` as milliseconds or
nanoseconds of the day. Python integers are exact, so no value loses precision.
"""

import binascii
import datetime
import math

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SEXTET = {c: i for i, c in enumerate(_ALPHABET)}


class DecodeError(ValueError):
    """A Debezium-encoded value could not be decoded; the message says why."""


def _base64_bytes(text: str) -> bytes:
    """Standard base64 with optional padding, strict like the Rust SDK's decoder.

    Canonical text (padded, no stray bits: what Debezium writes) is decoded in C and
    checked by encoding it back; anything else takes the loop below, which the Rust
    decoder's error messages are ported in."""
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
        if binascii.b2a_base64(raw, newline=False) == text.encode("ascii"):
            return raw
    except (binascii.Error, ValueError):
        pass
    return _base64_bytes_checked(text)


def _base64_bytes_checked(text: str) -> bytes:
    body = text.rstrip("=")
    padding = len(text) - len(body)
    for i, c in enumerate(body):
        if c not in _SEXTET:
            raise ValueError(f"Invalid symbol {ord(c)}, offset {i}.")
    if len(body) % 4 == 1:
        raise ValueError(f"Invalid input length: {len(body)}")
    acc, bits, out = 0, 0, bytearray()
    for c in body:
        acc = (acc << 6) | _SEXTET[c]
        bits += 6
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if acc & ((1 << bits) - 1):
        last = len(body) - 1
        raise ValueError(f"Invalid last symbol {ord(body[last])}, offset {last}.")
    if padding > 2 or (padding and (len(body) + padding) % 4):
        raise ValueError("Invalid padding")
    return bytes(out)


def decimal_from_base64(encoded: str, scale: int) -> str:
    """Debezium's precise decimal (base64 of the unscaled value as big-endian two's
    complement, at most 16 bytes) as a plain decimal string with exactly ``scale`` fraction
    digits: ``("MDk=", 2)`` → ``"123.45"``, ``("ng0=", 2)`` → ``"-250.75"``.

    Raises ``DecodeError`` (the Rust SDK's message) when ``encoded`` is not base64, is
    empty, or holds more than 16 bytes.
    """
    try:
        raw = _base64_bytes(encoded)
    except ValueError as e:
        shown = encoded[:48]
        cut = "…" if len(encoded) > 48 else ""
        quoted = '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'
        raise DecodeError(f"an encoded decimal is not valid base64: {quoted}{cut} ({e})") from None
    if not raw:
        raise DecodeError("an encoded decimal has no bytes")
    if len(raw) > 16:
        raise DecodeError(
            f"an encoded decimal of {len(raw)} bytes is wider than 16 bytes (38 digits)"
        )
    return _format_scaled(int.from_bytes(raw, "big", signed=True), scale)


def _format_scaled(unscaled: int, scale: int) -> str:
    sign = "-" if unscaled < 0 else ""
    digits = str(abs(unscaled))
    if scale == 0:
        return sign + digits
    padded = digits.rjust(scale + 1, "0")
    return f"{sign}{padded[:-scale]}.{padded[-scale:]}"


def _civil_from_days(days: int) -> tuple:
    """(year, month, day) of a day count: Howard Hinnant's ``civil_from_days``."""
    z = days + 719_468
    era, doe = divmod(z, 146_097)
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if month <= 2 else 0), month, day


# Days since the epoch of 0001-01-01 and 9999-12-31: the range `datetime.date` covers, in
# C, with the same "YYYY-MM-DD" as below.
_ORDINAL_OF_EPOCH = datetime.date(1970, 1, 1).toordinal()
_FIRST_DAY, _LAST_DAY = 1 - _ORDINAL_OF_EPOCH, datetime.date.max.toordinal() - _ORDINAL_OF_EPOCH
_from_ordinal = datetime.date.fromordinal


def date_from_epoch_days(days: int) -> str:
    """``io.debezium.time.Date`` (days since 1970-01-01) → ``"YYYY-MM-DD"``:
    ``20777`` → ``"2026-11-20"``; years outside 0000–9999 get a sign or more digits."""
    if _FIRST_DAY <= days <= _LAST_DAY:
        return _from_ordinal(days + _ORDINAL_OF_EPOCH).isoformat()
    year, month, day = _civil_from_days(days)
    sign = "-" if year < 0 else ""
    return f"{sign}{abs(year):04}-{month:02}-{day:02}"


def _timestamp(count: int, per_second: int, digits: int) -> str:
    seconds, fraction = divmod(count, per_second)
    days, of_day = divmod(seconds, 86_400)
    # One `%` format: parsed once in C, where an f-string formats each part on its own.
    return "%sT%02d:%02d:%02d.%0*dZ" % (
        date_from_epoch_days(days),
        of_day // 3_600,
        of_day % 3_600 // 60,
        of_day % 60,
        digits,
        fraction,
    )


def timestamp_from_epoch_millis(ms: int) -> str:
    """``io.debezium.time.Timestamp`` (epoch ms) → RFC 3339 UTC with 3 fraction digits."""
    return _timestamp(ms, 1_000, 3)


def timestamp_from_epoch_micros(us: int) -> str:
    """``io.debezium.time.MicroTimestamp`` (epoch µs) → RFC 3339 UTC with 6 fraction digits."""
    return _timestamp(us, 1_000_000, 6)


def timestamp_from_epoch_nanos(ns: int) -> str:
    """``io.debezium.time.NanoTimestamp`` (epoch ns) → RFC 3339 UTC with 9 fraction digits."""
    return _timestamp(ns, 1_000_000_000, 9)


def _time_of_day(units: int, per_second: int, digits: int) -> str:
    sign = "-" if units < 0 else ""
    seconds, fraction = divmod(abs(units), per_second)
    h, m, s = seconds // 3_600, seconds % 3_600 // 60, seconds % 60
    return f"{sign}{h:02}:{m:02}:{s:02}.{fraction:0{digits}}"


def time_from_millis_of_day(ms: int) -> str:
    """``io.debezium.time.Time`` (ms of the day) → ``"HH:MM:SS.mmm"``, not wrapped."""
    return _time_of_day(ms, 1_000, 3)


def time_from_nanos_of_day(ns: int) -> str:
    """``io.debezium.time.NanoTime`` (ns of the day) → ``"HH:MM:SS.nnnnnnnnn"``, not wrapped."""
    return _time_of_day(ns, 1_000_000_000, 9)


def fixed(value: float, digits: int) -> str:
    """``value`` with exactly ``digits`` fraction digits, as Rust's
    ``format!("{value:.digits$}")`` writes an ``f64`` (round half to even on the exact
    binary value, ``NaN``, ``inf``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, f".{digits}f")
