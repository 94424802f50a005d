"""Export lines encoded by PostgreSQL: one CSV record or JSON document per event.

The same values and spellings as ``search.export`` produces from domain objects, so a
million-row export costs PostgreSQL time, not Python objects
(``tests/integration/test_export_encoding.py`` compares the two).
"""

from __future__ import annotations

from typing import Final

from psycopg import sql

from auditline.storage.search.rows import Projection

# Export lines encoded by PostgreSQL: the same values and spellings as
# ``search.export`` produces from domain objects (times as Python's isoformat in UTC with
# "Z", IP addresses as Python spells them, the formula neutralisation, CSV quoting), one
# text value per row, so a million-row export costs PostgreSQL time, not Python objects.

_TS_TEXT: Final = """(to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
    || CASE WHEN mod(extract(microseconds FROM {c})::bigint, 1000000) <> 0
            THEN to_char({c} AT TIME ZONE 'UTC', '.US') ELSE '' END || 'Z')"""
# IPv6 spellings differ in one reserved range: PostgreSQL writes ::/96 (IPv4-compatible)
# addresses with a dotted quad, Python (and so ``canonical_ip``, which the leaf hash and the
# API use) in hex. IPv4-mapped addresses are dotted on both sides (``canonical_ip`` spells
# them so on every Python version).
_HEX_TAIL: Final = """to_hex((({c} - {net}::inet) >> 16)::int) || ':'
                      || to_hex((({c} - {net}::inet) & 65535)::int)"""
_IP_TEXT: Final = (
    "CASE WHEN family({c}) = 6 AND {c} << '::/96'::inet AND {c} - '::'::inet >= 65536"
    " THEN '::' || " + _HEX_TAIL.replace("{net}", "'::'") + " ELSE host({c}) END"
)
_CSV_QUOTE: Final = """CASE WHEN {v} IS NULL THEN ''
        WHEN {v} ~ '[",\\r\\n]' THEN '"' || replace({v}, '"', '""') || '"'
        ELSE {v} END"""
_NEUTRALISE: Final = (
    "(CASE WHEN left({c}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
    "THEN chr(39) || {c} ELSE {c} END)"
)


def _ts_text(col: sql.Composable) -> sql.Composable:
    return sql.SQL(_TS_TEXT).format(c=col)


def _ip_text(col: sql.Composable) -> sql.Composable:
    return sql.SQL(_IP_TEXT).format(c=col)


def _csv_quote(value: sql.Composable) -> sql.Composable:
    return sql.SQL(_CSV_QUOTE).format(v=value)


def _csv_text(col: sql.Composable) -> sql.Composable:
    return _csv_quote(sql.SQL(_NEUTRALISE).format(c=col))


def _line(alias: str, fmt: str) -> sql.Composable:
    def c(name: str) -> sql.Composable:
        return sql.Identifier(alias, name)

    def cast(name: str) -> sql.Composable:
        return sql.SQL("{}::text").format(c(name))

    def blank(value: sql.Composable) -> sql.Composable:
        return sql.SQL("coalesce({}, '')").format(value)

    if fmt == "csv":
        cells = [
            cast("id"), c("tenant_id"), cast("seq"), _ts_text(c("timestamp")),
            _ts_text(c("received_at")), _csv_text(c("user_id")), blank(c("actor_type")),
            _csv_text(c("session_id")), c("action"), _csv_text(c("resource_type")),
            _csv_text(c("resource_id")), blank(_ip_text(c("ip_address"))),
            _csv_text(c("user_agent")), cast("severity"), blank(c("outcome")),
            _csv_text(c("message")), _csv_text(c("request_id")),
            _csv_quote(sql.SQL("to_jsonb({})::text").format(c("changed_fields"))),
            _csv_quote(cast("metadata")), _csv_quote(cast("before")),
            _csv_quote(cast("after")), sql.SQL("encode({}, 'hex')").format(c("leaf_hash")),
        ]  # fmt: skip
        return sql.SQL("concat_ws(',', {})").format(sql.SQL(", ").join(cells))
    pairs: list[tuple[str, sql.Composable]] = [
        ("id", c("id")), ("tenant_id", c("tenant_id")), ("seq", c("seq")),
        ("timestamp", _ts_text(c("timestamp"))), ("received_at", _ts_text(c("received_at"))),
        ("user_id", c("user_id")), ("actor_type", c("actor_type")),
        ("session_id", c("session_id")), ("action", c("action")),
        ("resource_type", c("resource_type")), ("resource_id", c("resource_id")),
        ("ip_address", _ip_text(c("ip_address"))), ("user_agent", c("user_agent")),
        ("before", c("before")), ("after", c("after")),
        ("changed_fields", c("changed_fields")), ("metadata", c("metadata")),
        ("severity", c("severity")), ("message", c("message")),
        ("request_id", c("request_id")), ("outcome", c("outcome")),
        ("leaf_hash", sql.SQL("encode({}, 'hex')").format(c("leaf_hash"))),
    ]  # fmt: skip
    args = sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(k), v) for k, v in pairs)
    return sql.SQL("json_build_object({})::text").format(args)


def line_projection(fmt: str) -> Projection:
    """One encoded export line per row (``fmt``: csv, json or ndjson), then the position."""

    def columns(alias: str) -> sql.Composable:
        return sql.SQL("{}, {}, {}").format(
            _line(alias, fmt), sql.Identifier(alias, "timestamp"), sql.Identifier(alias, "id")
        )

    return Projection(columns, 3, 1, 2)
