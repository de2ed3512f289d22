"""Generate a fleet's configs from an inventory CSV and a common template TOML.

Theory of operation: the admin keeps one row per phone (mac, extension, display_name,
password, then optional ``section.key`` columns) and one template of the keys every phone
shares. Each row becomes ``<mac>.toml``; the template becomes ``deskphone.toml``. A phone
reads the common file with its own file merged over it, key by key, so every merged pair is
checked with the phone's own schema (``config.schema.validate``) before anything is written.
Every problem is collected, each naming its file and line, and a single problem means
nothing is written: a half-provisioned fleet is worse than none.
"""

from __future__ import annotations

import argparse
import csv
import grp
import io
import math
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TextIO

from deskphone.config.load import _syntax_problem
from deskphone.config.schema import SCHEMA, ConfigError, Key, validate
from deskphone.config.store import atomic_write
from deskphone.provision.merge import MAX_FILE_BYTES, merge_documents, parse_remote

COMMON_NAME: Final = "deskphone.toml"

FIXED_COLUMNS: Final[Mapping[str, str]] = {
    "extension": "account.user",
    "display_name": "account.display_name",
    "password": "account.password",
}
"""The inventory's own columns and the schema keys they fill (besides mac)."""

REQUIRED_COLUMNS: Final = ("mac", "extension", "display_name", "password")
NONEMPTY_COLUMNS: Final = ("mac", "extension", "password")

_KEYS: Final[Mapping[str, Key]] = {
    f"{section.name}.{key.name}": key for section in SCHEMA for key in section.keys
}
_ORDER: Final[Mapping[str, int]] = {dotted: i for i, dotted in enumerate(_KEYS)}


@dataclass(frozen=True, slots=True)
class FleetProblem:
    """One thing wrong with the inventory or template, shown as ``file:line: key: message``."""

    source: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class PhoneRow:
    """One inventory row, checked: its MAC, the CSV line, and its own keys by section."""

    mac: str
    line: int
    document: Mapping[str, Mapping[str, object]]


# --------------------------------------------------------------------------------------
# MAC addresses

_HEX: Final = "[0-9A-Fa-f]"
_MAC_FORMS: Final = (
    re.compile(f"{_HEX}{{12}}"),
    re.compile(f"{_HEX}{{2}}(?P<sep>[:-])(?:{_HEX}{{2}}(?P=sep)){{4}}{_HEX}{{2}}"),
    re.compile(rf"{_HEX}{{4}}\.{_HEX}{{4}}\.{_HEX}{{4}}"),
)


def normalise_mac(text: str) -> str:
    """"AA-BB-CC-DD-EE-FF", "aa:bb:..", "aabb.ccdd.eeff" or bare hex -> "aabbccddeeff"."""
    if any(form.fullmatch(text) for form in _MAC_FORMS):
        return re.sub("[:.-]", "", text).lower()
    raise ValueError(f'expected 12 hex digits such as "aa:bb:cc:dd:ee:ff", got {_show(text)}')


def _show(text: str) -> str:
    return emit_string(text)


# --------------------------------------------------------------------------------------
# TOML writing: the standard library reads TOML but cannot write it.

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n",
                   "\f": "\\f", "\r": "\\r"}


def emit_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped (TOML 1.0)."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"lone surrogate U+{code:04X} cannot be written as UTF-8")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def emit_key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else emit_string(name)


def emit_value(value: object) -> str:
    """A TOML value for the types the schema uses: str, int, bool, arrays, inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return emit_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(emit_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(f"{emit_key(k)} = {emit_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def emit_document(document: Mapping[str, Mapping[str, object]], header: str = "") -> str:
    """Sections of scalar keys as ``[section]`` tables, in the given order."""
    lines = [f"# {line}" for line in header.splitlines()]
    for section, table in document.items():
        if not table:
            continue
        if lines:
            lines.append("")
        lines.append(f"[{emit_key(section)}]")
        lines.extend(f"{emit_key(k)} = {emit_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Reading the inputs


def _cell_value(key: Key, cell: str) -> object:
    """A CSV cell as the value the schema checks: strings verbatim, others parsed as TOML.

    A cell that does not parse stays a string, so the schema reports the wrong type exactly
    as it would in a TOML file ("expected an integer, got "abc"").
    """
    if key.value_type is str:
        return cell
    try:
        parsed = tomllib.loads(f"v = {cell}")
    except tomllib.TOMLDecodeError:
        return cell
    return parsed["v"] if list(parsed) == ["v"] else cell  # "5\nx = 1" sets more than v


def _column_problem(column: str) -> str | None:
    """Why a ``section.key`` column is not a schema key, using the schema's did-you-mean."""
    if column in _KEYS:
        return None
    section, dot, name = column.partition(".")
    document: dict[str, object] = {section: {name: None}} if dot else {column: None}
    for problem in validate(document)[1]:
        if problem.message.startswith("unknown"):
            return f"{column}: {problem.message}"
    return f"{column}: unknown key"


def read_template(text: str, source: str, per_phone: Iterable[str]) -> tuple[
        dict[str, object] | None, list[FleetProblem]]:
    """Parse and check the common template; keys the inventory fills may be missing.

    None for a template that does not parse: rows are then checked only among themselves.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problem = _syntax_problem(exc, text)
        return None, [FleetProblem(source, problem.line, problem.message)]
    supplied = set(per_phone)
    problems = [
        FleetProblem(source, p.line, str(p) if p.line is None else p.message)
        for p in validate(document)[1]
        if not (p.key in supplied and p.message == "missing (required)")
    ]
    if not problems:
        try:  # the phone's own rule for a fetched file: one that sets nothing is refused
            parse_remote(COMMON_NAME, text.encode("utf-8"), max_bytes=MAX_FILE_BYTES)
        except ConfigError as exc:
            problems += [FleetProblem(source, p.line, f"{p.message}: a phone refuses such a "
                                      f"{COMMON_NAME}") for p in exc.problems]
    return document, problems


def read_inventory(text: str, source: str) -> tuple[
        list[str], list[tuple[int, dict[str, str]]], list[FleetProblem]]:
    """Split the CSV into (key columns, [(line, {column: cell})], header problems).

    Key columns are the fixed ones plus every valid ``section.key`` column; when a required
    column is missing no rows are returned, since every row would repeat the same problem.
    """
    reader = csv.reader(io.StringIO(text))
    problems: list[FleetProblem] = []
    header = [cell.strip() for cell in next(reader, [])]
    seen: set[str] = set()
    columns: list[str] = []
    for column in header:
        if column in seen:
            problems.append(FleetProblem(source, 1, f"column {_show(column)} appears twice"))
            continue
        seen.add(column)
        if column in REQUIRED_COLUMNS:
            continue
        fixed = next((c for c, k in FIXED_COLUMNS.items() if k == column), None)
        if fixed is not None:
            problems.append(FleetProblem(
                source, 1, f"column {_show(column)}: use the {fixed} column instead"))
            continue
        message = _column_problem(column)
        if message is None:
            columns.append(column)
        else:
            problems.append(FleetProblem(source, 1, message))
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        names = ", ".join(_show(c) for c in missing)
        plural = "s" if len(missing) > 1 else ""
        problems.append(FleetProblem(source, 1, f"missing required column{plural} {names}"))
        return columns, [], problems
    rows: list[tuple[int, dict[str, str]]] = []
    line = reader.line_num + 1
    for record in reader:
        start, line = line, reader.line_num + 1
        if not record or not "".join(record).strip() or record[0].lstrip().startswith("#"):
            continue  # blank lines and comments
        if len(record) > len(header):
            problems.append(FleetProblem(
                source, start, f"{len(record)} fields, but the header has {len(header)}"))
            continue
        cells = dict(zip(header, record, strict=False))
        rows.append((start, {
            column: cell if column == "password" or _KEYS.get(column, _PLAIN).secret
            else cell.strip()
            for column, cell in cells.items()
        }))
    return columns, rows, problems


_PLAIN: Final = Key("_", str, "")


# --------------------------------------------------------------------------------------
# Checking the fleet


def check_fleet(
    template: Mapping[str, object] | None,
    template_problems: Sequence[FleetProblem],
    columns: Sequence[str],
    rows: Iterable[tuple[int, Mapping[str, str]]],
    source: str,
    progress: TextIO | None = None,
    total: int = 0,
) -> tuple[list[PhoneRow], list[FleetProblem]]:
    """Check every row alone, against the others (unique MAC and extension) and merged."""
    phones: list[PhoneRow] = []
    problems: list[FleetProblem] = []
    known = {p.message for p in template_problems}
    macs: dict[str, int] = {}
    extensions: dict[str, int] = {}
    for count, (line, cells) in enumerate(rows, 1):
        if progress is not None and (count % 50 == 0 or count == total):
            progress.write(f"\rchecked {count}/{total} phones")
            progress.flush()
        found: list[str] = []
        for column in NONEMPTY_COLUMNS:
            if not cells.get(column, "").strip():
                found.append(f"{column}: empty (required)")
        mac = cells.get("mac", "")
        try:
            mac = normalise_mac(mac) if mac else ""
        except ValueError as exc:
            found.append(f"mac: {exc}")
            mac = ""
        if mac in macs:
            found.append(f"mac: {mac} is already on line {macs[mac]}")
        elif mac:
            macs[mac] = line
        extension = cells.get("extension", "")
        if extension in extensions:
            found.append(f"extension: {_show(extension)} is already on line "
                         f"{extensions[extension]}")
        elif extension:
            extensions[extension] = line
        empty = {FIXED_COLUMNS[c] for c in FIXED_COLUMNS
                 if c in NONEMPTY_COLUMNS and not cells.get(c, "").strip()}
        own: dict[str, object] = {}
        for column in (*FIXED_COLUMNS, *columns):
            cell = cells.get(column, "")
            if cell.strip() != "":  # an empty cell: the common value (or the default)
                dotted = FIXED_COLUMNS.get(column, column)
                own[dotted] = _cell_value(_KEYS[dotted], cell)
        document: dict[str, dict[str, object]] = {}
        for dotted in sorted(own, key=_ORDER.__getitem__):
            section, _, name = dotted.partition(".")
            document.setdefault(section, {})[name] = own[dotted]
        merged = [] if template is None else validate(merge_documents(template, document))[1]
        for problem in merged:
            text = str(problem)
            if text not in known and problem.key not in empty:
                found.append(text)
        problems.extend(FleetProblem(source, line, message) for message in found)
        if not found:
            phones.append(PhoneRow(mac, line, document))
    if progress is not None and total:
        progress.write("\n")
    return phones, problems


def holds_secret(document: Mapping[str, object]) -> bool:
    """Whether a file sets any secret key (a password, the console token): it must be 0600."""
    return any(
        _KEYS.get(f"{section}.{name}", _PLAIN).secret
        for section, table in document.items() if isinstance(table, Mapping)
        for name in table
    )


# --------------------------------------------------------------------------------------
# The whole run


@dataclass(frozen=True, slots=True)
class FleetResult:
    phones: tuple[PhoneRow, ...]
    problems: tuple[FleetProblem, ...]


def _read_text(path: str) -> tuple[str | None, FleetProblem | None]:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        return None, FleetProblem(path, None, f"cannot read: {exc.strerror or exc}")
    try:
        return data.decode("utf-8-sig"), None  # a BOM, as spreadsheets write it
    except UnicodeDecodeError as exc:
        return None, FleetProblem(path, data.count(b"\n", 0, exc.start) + 1, "not UTF-8 text")


def generate(inventory: str, template: str, out: str | None,
             progress: TextIO | None = None, group: int | None = None) -> FleetResult:
    """Check the fleet; if nothing is wrong and ``out`` is given, write every file there
    (files holding a secret 0600, or 0640 in ``group`` — the web server's — if given)."""
    inventory_text, inventory_problem = _read_text(inventory)
    template_text, template_problem = _read_text(template)
    problems = [p for p in (template_problem, inventory_problem) if p is not None]
    if inventory_text is None or template_text is None:
        return FleetResult((), tuple(problems))
    columns, rows, header_problems = read_inventory(inventory_text, inventory)
    per_phone = [*FIXED_COLUMNS.values(), *columns]
    document, found = read_template(template_text, template, per_phone)
    problems += found + header_problems
    phones, row_problems = check_fleet(document, found, columns, rows, inventory,
                                       progress, len(rows))
    problems += row_problems
    if problems or out is None:
        return FleetResult(tuple(phones), tuple(problems))
    try:
        _write(out, os.path.basename(inventory), phones, template_text, document, group)
    except OSError as exc:
        where = exc.filename if isinstance(exc.filename, str) else out
        return FleetResult(tuple(phones), (FleetProblem(
            where, None, f"cannot write: {exc.strerror or exc}"),))
    return FleetResult(tuple(phones), ())


def _write(out: str, name: str, phones: Iterable[PhoneRow], template_text: str,
           document: Mapping[str, object] | None, group: int | None = None) -> None:
    os.makedirs(out, exist_ok=True)
    secret = 0o600 if group is None else 0o640

    def mode(doc: Mapping[str, object] | None) -> int:
        return secret if doc is not None and holds_secret(doc) else 0o644

    for phone in phones:
        text = emit_document(phone.document, f"{phone.mac}: from {name} line {phone.line} "
                             "by deskphone.provision.fleet\nedit the inventory, not this file")
        atomic_write(os.path.join(out, f"{phone.mac}.toml"), text.encode(),
                     mode=mode(phone.document), gid=group)
    # the template as the admin wrote it, comments and all: it has just been checked
    atomic_write(os.path.join(out, COMMON_NAME), template_text.encode(), mode=mode(document),
                 gid=group)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deskphone.provision.fleet",
        description="Write one <mac>.toml per phone and the common deskphone.toml, each "
        "checked with the phone's own config schema. Nothing is written if anything is wrong.",
    )
    parser.add_argument("--inventory", required=True, metavar="CSV",
                        help="columns mac, extension, display_name, password, then optional "
                        "section.key columns (e.g. audio.tones); an empty cell: the common value")
    parser.add_argument("--template", required=True, metavar="TOML",
                        help="the keys every phone shares, e.g. [account] domain, registrar")
    parser.add_argument("--out", metavar="DIR", help="where to write the files (needed "
                        "unless --check)")
    parser.add_argument("--check", action="store_true", help="check only; write nothing")
    parser.add_argument("--group", metavar="GROUP", help="give the files to this group and "
                        "make those holding passwords 0640, not 0600, so the web server "
                        "(e.g. www-data) can read them")
    args = parser.parse_args(argv)
    if not args.check and not args.out:
        parser.error("--out DIR is needed (or --check)")
    gid = None
    if args.group:
        try:
            gid = grp.getgrnam(args.group).gr_gid
        except KeyError:
            parser.error(f"--group {args.group}: no such group")
    progress = sys.stderr if sys.stderr.isatty() else None
    result = generate(args.inventory, args.template, None if args.check else args.out,
                      progress, gid)
    for problem in result.problems:
        print(problem, file=sys.stderr)
    if result.problems:
        count = len(result.problems)
        print(f"{count} problem{'s' if count > 1 else ''}; nothing written", file=sys.stderr)
        return 2
    count = len(result.phones)
    if args.check:
        print(f"{count} phone{'s' if count != 1 else ''} checked: no problems")
    else:
        print(f"wrote {count} phone config{'s' if count != 1 else ''} and {COMMON_NAME} "
              f"to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
