"""Sans-I/O HTTP semantics: header parsers/formatters, freshness, storability and cache keys.

Everything here is a pure function or a frozen dataclass: no asyncio, no Valkey, no Starlette,
and no clock reads (time is always passed in). Parsers never raise on any input.
"""
