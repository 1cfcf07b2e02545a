"""`--set key.path=value`: YAML values placed on dotted paths of the raw suite before validation."""

from __future__ import annotations

import re
from typing import Any

from kdbench.config.errors import SuiteError, quote_value
from kdbench.util.safe_yaml import YamlProblem
from kdbench.util.safe_yaml import loads as yaml_loads


def parse_overrides(pairs: list[str]) -> list[tuple[list[str], Any]]:
    out = []
    for item in pairs or []:
        if "=" not in item:
            raise SuiteError("--set", [f"'{item}': expected key.path=value"])
        key, value = item.split("=", 1)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
            raise SuiteError("--set", [f"'{key}': expected a dotted key path such as train.epochs"])
        try:
            out.append((key.split("."), yaml_loads(value, max_bytes=64 * 1024) if value else None))
        except YamlProblem as exc:
            raise SuiteError(
                "--set",
                [
                    f"{key}: the value {quote_value(value)} is {exc}"
                    if "YAML" in str(exc)
                    else f"{key}: the value is {exc}"
                ],
            ) from None
    return out


def apply_overrides(raw: dict, overrides) -> dict:
    for path, value in overrides:
        node = raw
        for part in path[:-1]:
            if isinstance(node, list) and part.isdigit():
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
        if isinstance(node, list) and path[-1].isdigit():
            node[int(path[-1])] = value
        else:
            node[path[-1]] = value
    return raw
