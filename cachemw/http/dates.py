"""HTTP-date (RFC 9110 §5.6.7) and Age (RFC 9111 §5.1) parsing and formatting.

Parsers are total: any input (bytes or str, any content) yields a value or ``None``; they
never raise. Fixed-position slicing is used instead of regular expressions because these run
on every cached request (Date, Expires, Last-Modified, If-Modified-Since, ...).
"""

from __future__ import annotations

import math
import time

__all__ = ["MAX_DELTA_SECONDS", "format_age", "format_http_date", "parse_age", "parse_http_date"]

# RFC 9111 §1.2.2: a delta-seconds value too large to represent is taken as 2^31.
MAX_DELTA_SECONDS = 2147483648

# HTTP-date is case-sensitive (RFC 9110 §5.6.7), but RFC 9111 §4.2 tells a cache to match
# it case-insensitively; the parser lower-cases once and uses lower-case tables.
_DAY_NAMES = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_DAY_NAMES_SET = frozenset(name.lower() for name in _DAY_NAMES)
_DAY_NAMES_LONG = frozenset(
    (b"monday", b"tuesday", b"wednesday", b"thursday", b"friday", b"saturday", b"sunday")
)
_MONTH_NAMES = (
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun",
    b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
)  # fmt: skip
_MONTH_NUMBERS = {name.lower(): number for number, name in enumerate(_MONTH_NAMES, start=1)}
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# Representable range for formatting: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
_MIN_EPOCH = -62135596800
_MAX_EPOCH = 253402300799
_OWS = b" \t"
# When the caller gives no clock, two-digit years use the POSIX pivot (69 -> 2069,
# 70 -> 1970), which agrees with the §5.6.7 50-year rule for every year from 1977 to 2069.
_POSIX_PIVOT_YEAR = 2019


def _to_ascii_bytes(value: bytes | str) -> bytes | None:
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        return None


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _epoch(year: int, month: int, day: int, clock: bytes) -> float | None:
    """Epoch seconds for a validated date and an ``HH:MM:SS`` clock; ``None`` if invalid."""
    if len(clock) != 8 or clock[2:3] != b":" or clock[5:6] != b":":
        return None
    hh, mm, ss = clock[0:2], clock[3:5], clock[6:8]
    if not (hh.isdigit() and mm.isdigit() and ss.isdigit()):
        return None
    hour, minute, second = int(hh), int(mm), int(ss)
    # RFC 9110 §5.6.7: second allows 60 for a leap second.
    if hour > 23 or minute > 59 or second > 60 or year < 1 or not 1 <= month <= 12:
        return None
    last_day = 29 if month == 2 and _is_leap(year) else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= last_day:
        return None
    return float(_days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second)


def _two_digit_year(yy: int, now: float | None) -> int:
    # RFC 9110 §5.6.7: a two-digit year that appears to be more than 50 years in the future
    # is the most recent past year with the same last two digits.
    if now is None or math.isnan(now):
        reference = _POSIX_PIVOT_YEAR
    else:
        reference = time.gmtime(_clamp_epoch(now)).tm_year
    year = reference - reference % 100 + yy
    if year > reference + 50:
        year -= 100
    return year


def _parse_imf_fixdate(v: bytes) -> float | None:
    # "Sun, 06 Nov 1994 08:49:37 GMT"
    if (
        v[0:3] not in _DAY_NAMES_SET
        or v[3:5] != b", "
        or v[7:8] != b" "
        or v[11:12] != b" "
        or v[16:17] != b" "
        or v[25:] != b" gmt"
    ):
        return None
    day, year = v[5:7], v[12:16]
    month = _MONTH_NUMBERS.get(v[8:11])
    if month is None or not day.isdigit() or not year.isdigit():
        return None
    return _epoch(int(year), month, int(day), v[17:25])


def _parse_rfc850(v: bytes, now: float | None) -> float | None:
    # "Sunday, 06-Nov-94 08:49:37 GMT"
    name, sep, rest = v.partition(b", ")
    if not sep or name not in _DAY_NAMES_LONG or len(rest) != 22:
        return None
    if rest[2:3] != b"-" or rest[6:7] != b"-" or rest[9:10] != b" " or rest[18:] != b" gmt":
        return None
    day, year = rest[0:2], rest[7:9]
    month = _MONTH_NUMBERS.get(rest[3:6])
    if month is None or not day.isdigit() or not year.isdigit():
        return None
    return _epoch(_two_digit_year(int(year), now), month, int(day), rest[10:18])


def _parse_asctime(v: bytes) -> float | None:
    # "Sun Nov  6 08:49:37 1994"
    if v[0:3] not in _DAY_NAMES_SET or v[3:4] != b" " or v[7:8] != b" " or v[10:11] != b" ":
        return None
    if v[19:20] != b" ":
        return None
    month = _MONTH_NUMBERS.get(v[4:7])
    day, year = v[8:10], v[20:24]
    if day[0:1] == b" ":
        day = day[1:]
    if month is None or not day.isdigit() or not year.isdigit():
        return None
    return _epoch(int(year), month, int(day), v[11:19])


def parse_http_date(value: bytes | str, *, now: float | None = None) -> float | None:
    """Epoch seconds (UTC) of an HTTP-date, or ``None`` when it is not a valid one.

    Accepts IMF-fixdate and the obsolete RFC 850 and asctime forms (RFC 9110 §5.6.7),
    matching names case-insensitively as RFC 9111 §4.2 asks of caches. ``now``
    (epoch seconds) resolves RFC 850 two-digit years by the 50-year rule; without it the
    POSIX pivot is used (identical for 1977-2069).
    """
    raw = _to_ascii_bytes(value)
    if raw is None:
        return None
    v = raw.strip(_OWS).lower()
    length = len(v)
    if length == 29:
        return _parse_imf_fixdate(v)
    if length == 24:
        return _parse_asctime(v)
    if 30 <= length <= 33:
        return _parse_rfc850(v, now)
    return None


def _clamp_epoch(epoch_seconds: float) -> int:
    if math.isnan(epoch_seconds):
        raise ValueError("epoch_seconds must be a number, got NaN")
    return int(min(max(epoch_seconds, _MIN_EPOCH), _MAX_EPOCH))


def format_http_date(epoch_seconds: float) -> bytes:
    """IMF-fixdate for ``epoch_seconds`` (fraction truncated), e.g. ``Sun, 06 Nov 1994 ...``.

    Values outside years 1-9999 are clamped to that range; NaN raises ``ValueError``.
    """
    t = time.gmtime(_clamp_epoch(epoch_seconds))
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAY_NAMES[t.tm_wday],
        t.tm_mday,
        _MONTH_NAMES[t.tm_mon - 1],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


def parse_age(value: bytes | str | None) -> int | None:
    """The Age field's delta-seconds (RFC 9111 §5.1), clamped to 2147483648 (§1.2.2).

    ``None`` for an absent or invalid value (a list, a sign, a fraction, ...), which a cache
    ignores.
    """
    if value is None:
        return None
    raw = _to_ascii_bytes(value)
    if raw is None:
        return None
    digits = raw.strip(_OWS)
    if not digits.isdigit():
        return None
    # Avoid int() on huge strings (CPython limits digit conversion); they clamp anyway.
    significant = digits.lstrip(b"0")
    if len(significant) > 10:
        return MAX_DELTA_SECONDS
    return min(int(significant or b"0"), MAX_DELTA_SECONDS)


def format_age(age_seconds: float) -> bytes:
    """The Age field value for a current age (RFC 9111 §5.1): whole seconds, 0..2^31."""
    if math.isnan(age_seconds) or age_seconds <= 0:  # negative: clock skew
        return b"0"
    return b"%d" % min(int(age_seconds), MAX_DELTA_SECONDS)
