"""HTTP-date (RFC 9110 §5.6.7) and Age (RFC 9111 §5.1) parsing and formatting."""

from __future__ import annotations

import calendar
import email.utils
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachemw.http.dates import (
    MAX_DELTA_SECONDS,
    format_age,
    format_http_date,
    parse_age,
    parse_http_date,
)

RFC_EXAMPLE_EPOCH = 784111777.0  # Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 §5.6.7)
NOW_2026 = calendar.timegm((2026, 11, 25, 9, 0, 0))


@pytest.mark.parametrize(
    "value",
    [
        b"Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate
        b"Sunday, 06-Nov-94 08:49:37 GMT",  # obsolete RFC 850
        b"Sun Nov  6 08:49:37 1994",  # obsolete asctime
        b"Sun Nov 06 08:49:37 1994",  # asctime with a 2DIGIT day
        "Sun, 06 Nov 1994 08:49:37 GMT",  # str input
        b"  Sun, 06 Nov 1994 08:49:37 GMT\t",  # surrounding OWS
    ],
)
def test_all_three_http_date_formats_are_accepted(value: bytes | str) -> None:
    assert parse_http_date(value, now=NOW_2026) == RFC_EXAMPLE_EPOCH


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"0",
        b"-1",
        b"Sun, 06 Nov 1994 08:49:37 UTC",
        b"Thu, 18 Aug 50 02:01:18 GMT",
        b"Thu 18 Aug 2050 02:01:18 GMT",
        b"Thu, 18  Aug  2050 02:01:18 GMT",
        b"Thu, 18-Aug-2050 02:01:18 GMT",
        b"Thu, 18 Aug 2050 02.01.18 GMT",
        b"Thu, 18 Aug 2050 2:01:18 GMT",
        b"Sun, 06 Nov 1994 08:49:37 +0000",
        b"Sun, 6 Nov 1994 08:49:37 GMT",
        b"Sun, 06 Nov 94 08:49:37 GMT",
        b"Sun, 06 Nov 1994 08:49 GMT",
        b"Sun, 06 Nov 1994 24:00:00 GMT",
        b"Sun, 06 Nov 1994 08:60:00 GMT",
        b"Sun, 06 Nov 1994 08:49:61 GMT",
        b"Sun, 31 Nov 1994 08:49:37 GMT",
        b"Sun, 00 Nov 1994 08:49:37 GMT",
        b"Sun, 06 Nov 0000 08:49:37 GMT",
        b"Xyz, 06 Nov 1994 08:49:37 GMT",
        b"Sun, 06 Noo 1994 08:49:37 GMT",
        b"Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT",
        b"Sun, \xd9\xa0\xd9\xa6 Nov 1994 08:49:37 GMT",
        "Sun, ٠٦ Nov 1994 08:49:37 GMT",  # non-ASCII digits
        b"Sun, +6 Nov 1994 08:49:37 GMT",
        b"Sunday, 06-Nov-94 08:49:37 UTC",
        b"Sun Nov  6 08:49:37 94",
    ],
)
def test_invalid_http_date_is_none(value: bytes | str) -> None:
    assert parse_http_date(value) is None


@pytest.mark.parametrize(
    "value",
    [
        b"sun, 06 nov 1994 08:49:37 gmt",
        b"SUN, 06 NOV 1994 08:49:37 GMT",
        b"SUNDAY, 06-NOV-94 08:49:37 GMT",
        b"SUN NOV  6 08:49:37 1994",
    ],
)
def test_cache_matches_http_date_case_insensitively(value: bytes) -> None:
    # RFC 9111 §4.2: a cache SHOULD match HTTP-date case-insensitively.
    assert parse_http_date(value, now=NOW_2026) == RFC_EXAMPLE_EPOCH


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (b"Thu, 29 Feb 2024 00:00:00 GMT", True),
        (b"Tue, 29 Feb 2000 00:00:00 GMT", True),
        (b"Wed, 29 Feb 2023 00:00:00 GMT", False),
        (b"Thu, 29 Feb 1900 00:00:00 GMT", False),
    ],
)
def test_february_29_is_valid_only_in_leap_years(value: bytes, valid: bool) -> None:
    assert (parse_http_date(value) is not None) is valid


def test_leap_second_is_accepted() -> None:
    assert parse_http_date(b"Sat, 31 Dec 2016 23:59:60 GMT") == calendar.timegm(
        (2017, 1, 1, 0, 0, 0)
    )


@pytest.mark.parametrize(
    ("two_digit", "year"),
    [(b"26", 2026), (b"76", 2076), (b"77", 1977), (b"99", 1999), (b"00", 2000)],
)
def test_rfc850_year_more_than_50_years_ahead_is_in_the_past(two_digit: bytes, year: int) -> None:
    value = b"Monday, 01-Jan-" + two_digit + b" 00:00:00 GMT"
    assert parse_http_date(value, now=NOW_2026) == calendar.timegm((year, 1, 1, 0, 0, 0))


@pytest.mark.parametrize(("two_digit", "year"), [(b"69", 2069), (b"70", 1970)])
def test_rfc850_year_without_a_clock_uses_the_posix_pivot(two_digit: bytes, year: int) -> None:
    value = b"Monday, 01-Jan-" + two_digit + b" 00:00:00 GMT"
    assert parse_http_date(value) == calendar.timegm((year, 1, 1, 0, 0, 0))


def test_format_http_date_is_imf_fixdate() -> None:
    assert format_http_date(RFC_EXAMPLE_EPOCH + 0.9) == b"Sun, 06 Nov 1994 08:49:37 GMT"


def test_format_http_date_clamps_to_four_digit_years() -> None:
    assert format_http_date(1e300) == b"Fri, 31 Dec 9999 23:59:59 GMT"
    assert format_http_date(-1e300) == b"Mon, 01 Jan 0001 00:00:00 GMT"


@given(st.text())
def test_parse_http_date_is_total_on_text(value: str) -> None:
    result = parse_http_date(value)
    assert result is None or isinstance(result, float)


@given(st.binary(max_size=40), st.none() | st.floats())
def test_parse_http_date_is_total_on_bytes_and_any_clock(value: bytes, now: float | None) -> None:
    result = parse_http_date(value, now=now)
    assert result is None or isinstance(result, float)


@given(st.floats())
def test_rfc850_date_parses_with_any_clock(now: float) -> None:
    assert parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT", now=now) is not None or now < 0


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_format_http_date_agrees_with_email_utils_and_round_trips(moment: datetime) -> None:
    moment = moment.replace(microsecond=0, tzinfo=UTC)
    epoch = calendar.timegm(moment.utctimetuple())
    formatted = format_http_date(epoch)
    if moment.year >= 1000:  # email.utils does not zero-pad years
        assert formatted == email.utils.format_datetime(moment, usegmt=True).encode()
    assert parse_http_date(formatted) == epoch


DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


@given(st.datetimes(min_value=datetime(1977, 1, 1), max_value=datetime(2069, 12, 31)))
def test_obsolete_rfc850_and_asctime_forms_parse_like_imf_fixdate(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    epoch = calendar.timegm(moment.utctimetuple())
    rfc850 = f"{DAY_NAMES[moment.weekday()]}, {moment:%d-%b-%y %H:%M:%S} GMT"
    asctime = f"{moment:%a %b} {moment.day:2d} {moment:%H:%M:%S %Y}"
    assert parse_http_date(rfc850) == epoch
    assert parse_http_date(asctime) == epoch


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"0", 0),
        (b"60", 60),
        (" 60\t", 60),
        (b"000000000000005", 5),
        (b"2147483647", 2147483647),
        (b"2147483648", MAX_DELTA_SECONDS),
        (b"99999999999", MAX_DELTA_SECONDS),
        (b"9" * 5000, MAX_DELTA_SECONDS),
        (None, None),
        (b"", None),
        (b"-1", None),
        (b"+1", None),
        (b"1.5", None),
        (b"1, 2", None),
        (b"abc", None),
        ("٣", None),
    ],
)
def test_age_is_delta_seconds_clamped_and_invalid_is_ignored(
    value: bytes | str | None, expected: int | None
) -> None:
    assert parse_age(value) == expected


@given(st.one_of(st.text(), st.binary()))
def test_parse_age_is_total(value: bytes | str) -> None:
    result = parse_age(value)
    assert result is None or 0 <= result <= MAX_DELTA_SECONDS


@pytest.mark.parametrize(
    ("age", "expected"),
    [(0.0, b"0"), (1.99, b"1"), (-5.0, b"0"), (float("nan"), b"0"), (1e20, b"2147483648")],
)
def test_age_field_is_whole_non_negative_seconds(age: float, expected: bytes) -> None:
    assert format_age(age) == expected
