"""SuiteError and the rendering of pydantic's errors as `FILE: key.path: what was expected (found: ...)`."""

from __future__ import annotations

import re
import reprlib
import types
import typing
from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel

from kdbench.config.suite import Suite
from kdbench.registry import did_you_mean
from kdbench.training.methods import METHODS
from kdbench.util.errors import UserError


class SuiteError(UserError, ValueError):
    """A suite that does not validate: `.problems` holds one line per problem, `.path` the file."""

    def __init__(self, path, problems: list[str]):
        self.path, self.problems = str(path), problems
        super().__init__("\n".join(f"{self.path}: {p}" for p in problems))


def _loc(loc) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 60, 60


def quote_value(value) -> str:
    """A short quote of a bad value; reprlib never builds the whole repr of a huge or aliased one."""
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fields_at(model: type[BaseModel], loc) -> Optional[list[str]]:
    """The keys allowed where `loc` points (for 'did you mean' on unknown keys). `loc` is pydantic's,
    so a tagged union's member appears as its tag."""
    tp: Any = model
    for part in loc:
        members = _union_models(tp)
        if members and isinstance(part, str) and part in members:  # the tag picks the member
            tp = members[part]
            continue
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if part not in tp.model_fields:
                return None
            tp = tp.model_fields[part].annotation
        elif typing.get_origin(tp) in (dict, list):
            tp = typing.get_args(tp)[-1]
        else:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return None


def _union_models(tp) -> dict:
    """{tag: model} for a union of models told apart by a `name` literal, else {}."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) not in (Union, types.UnionType):
        return {}
    out = {}
    for a in typing.get_args(tp):
        if isinstance(a, type) and issubclass(a, BaseModel) and "name" in a.model_fields:
            out[a.model_fields["name"].default] = a
    return out


def _unwrap(tp):
    """Strip Annotated and Optional down to the one type inside (the first, for real unions)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(models) == 1:
                tp = models[0]
            elif len(args) == 1:
                tp = args[0]
            else:
                return tp
        else:
            return tp


def describe_error(err: dict, model: type[BaseModel] = Suite) -> str:
    raw_loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    loc: list = []
    for part in err["loc"]:
        # pydantic puts a union member's tag in the location; users never wrote it
        if isinstance(part, str) and (
            part.startswith("function-") or (loc and loc[-1] == "method" and part in METHODS)
        ):
            continue
        loc.append(part)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(model, raw_loc[:-1]) or []
        key = loc[-1]
        return f"{_loc(loc)}: unknown key '{key}'{did_you_mean(key, allowed)}; expected one of: {', '.join(allowed)}"
    if kind == "missing":
        return f"{_loc(loc)}: required key is missing"
    if kind == "union_tag_invalid":
        tag, expected = err["ctx"]["tag"], err["ctx"]["expected_tags"]
        names = [t.strip(" '") for t in expected.split(",")]
        return f"{_loc(loc)}: unknown method '{tag}'{did_you_mean(tag, names)}; expected one of: {', '.join(names)}"
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "value_error" and "found" not in msg and "input" in err and not isinstance(err["input"], dict):
        msg += f" (found: {quote_value(err['input'])})"
    elif kind != "value_error" and "input" in err:
        msg = re.sub(
            r"^Input should (be|have)", lambda m: "expected" if m.group(1) == "be" else "expected to have", msg
        )
        msg = f"{msg} (found: {quote_value(err['input'])})"
    return f"{_loc(loc)}: {msg}"
