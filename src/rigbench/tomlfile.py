"""Reading a TOML file the user wrote (a build file, a simulated rig) and turning pydantic's
validation errors into one line: `<file>: <key path>: <what is wrong>`."""

from __future__ import annotations

import difflib
import json
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from rigbench.userfile import MAX_TOML_BYTES, NotReadable, read_bytes_limited

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")

# Makes the caller's error: (where in the file or None for the file as a whole, what).
Fail = Callable[[str | None, str], Exception]


@dataclass(frozen=True, slots=True)
class FileSchema:
    """What a kind of file looks like, for error messages."""

    root: type[BaseModel]
    kind: str  # "build file", "rig file"
    array_tables: frozenset[str]  # written [[name]]
    tables: frozenset[str]  # written [name]
    # whether a failed custom check ("value_error") also shows the value it rejected
    show_checked_value: bool = True


def key_path(loc: tuple[int | str, ...]) -> str:
    """pydantic's location as the TOML key a user would look for: gpu[2].pcie.width."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            continue
        else:
            name = part if _BARE_KEY_RE.match(part) else json.dumps(part)
            out += f".{name}" if out else name
    return out or "(top level)"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _keys_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the table holding `loc[-1]` accepts."""
    model = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _model_of(field.annotation) if field is not None else None
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _shown(value: Any) -> str | None:
    """An input value as TOML would write it, or a word for tables, arrays and dates."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        text = json.dumps(value)
        return text if len(text) <= 40 else text[:37] + '..."'
    if isinstance(value, datetime | date | time):
        return "a date/time"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return None


_BOUNDS = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be {ge} or more",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be {le} or less",
    "finite_number": "must be a finite number",
}


def describe(err: Any, schema: FileSchema) -> str:
    """What is wrong, in words, for one pydantic error."""
    kind: str = err["type"]
    loc: tuple[int | str, ...] = tuple(err["loc"])
    value = err.get("input")
    if kind == "missing":
        if loc == ("rig",):
            return f'is required: a {schema.kind} starts with [rig] and name = "..."'
        return "is required"
    if kind == "extra_forbidden":
        allowed = _keys_at(schema.root, loc)
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        if hint:
            return f"unknown key; did you mean {hint[0]}?"
        return "unknown key" + (f" (expected one of: {', '.join(allowed)})" if allowed else "")
    ctx = err.get("ctx") or {}
    if kind in ("value_error", "assertion_error"):
        message = str(ctx["error"])
        if not schema.show_checked_value:
            return message
    elif kind in _BOUNDS:
        message = _BOUNDS[kind].format(**{k: f"{v:g}" for k, v in ctx.items()})
    elif kind == "literal_error":
        expected = str(ctx["expected"]).replace("'", '"').replace(" or ", ", ")
        message = f"must be one of {expected}"
    elif kind in ("int_type", "int_from_float", "int_parsing"):
        message = "must be a whole number"
    elif kind in ("float_type", "float_parsing"):
        message = "must be a number"
    elif kind in ("bool_type", "bool_parsing"):
        message = "must be true or false"
    elif kind == "string_type":
        message = "must be a string"
    elif kind in ("list_type", "tuple_type"):
        if len(loc) == 1 and loc[0] in schema.array_tables:
            return f"must be an array of tables (write [[{loc[0]}]], not [{loc[0]}])"
        message = "must be an array"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        if len(loc) == 1 and loc[0] in schema.tables:
            return f"must be a table (write [{loc[0]}], not [[{loc[0]}]])"
        message = "must be a table"
    else:  # a pydantic wording we did not expect: keep it, lower-cased
        msg = str(err["msg"])
        message = msg[:1].lower() + msg[1:]
    shown = _shown(value)
    # Checks on a whole table or array already say what is wrong with it.
    whole = kind in ("value_error", "assertion_error") and shown in ("a table", "an array")
    if shown is not None and not whole:
        message += f" (got {shown})"
    return message


def validation_failure(exc: ValidationError, schema: FileSchema, fail: Fail) -> Exception:
    """The first problem, naming how many more there are."""
    errors = exc.errors()
    first = errors[0]
    message = describe(first, schema)
    if len(errors) > 1:
        more = len(errors) - 1
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return fail(key_path(tuple(first["loc"])), message)


def read_toml(path: Path, fail: Fail) -> dict[str, Any]:
    """The file's tables; every way it cannot be read becomes `fail(where, what)`."""
    try:
        raw = read_bytes_limited(path, MAX_TOML_BYTES)
    except FileNotFoundError:
        raise fail(None, "no such file") from None
    except NotReadable as exc:
        raise fail(None, str(exc)) from None
    except OSError as exc:
        raise fail(None, f"cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise fail(None, "not UTF-8 text, so not TOML") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", message)
        where = f"line {m[1]}, column {m[2]}" if m else None
        what = message[: m.start()].strip() if m else message
        if what.lower() in ("", "end of document"):
            what = "unexpected end of file"
        raise fail(where, f"not valid TOML: {what[:1].lower() + what[1:]}") from None
