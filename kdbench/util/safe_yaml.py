"""YAML read with bounds: what a hostile or mistaken file can cost is capped before it is built.

`yaml.safe_load` already refuses to construct Python objects; this adds what it does not:
- a size cap (a suite is a page of text, not 50 MB),
- UTF-8 checked with the byte's position,
- nesting depth and alias use counted while the document is composed (the parser is iterative;
  the composer, which recurses, stops at MAX_DEPTH, long before Python's recursion limit),
- the expanded size bounded ("billion laughs": nine aliases of nine aliases ... are cheap to parse
  and exponential to walk),
- duplicate keys rejected with their lines (YAML would silently keep the last one).
"""

from __future__ import annotations

import yaml

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_ALIASES = 1000
MAX_VALUES = 100_000


class YamlProblem(ValueError):
    """What is wrong with the text, phrased for the user (the caller names the file)."""


class _Loader(yaml.SafeLoader):
    def __init__(self, stream):
        super().__init__(stream)
        self._depth = self._aliases = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlProblem(f"line {event.start_mark.line + 1}: more than {MAX_ALIASES} aliases (*name)")
            return super().compose_node(parent, index)
        if not isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlProblem(f"line {event.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    first: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = first.get(key)
        except TypeError:  # an unhashable key: the constructor below says so
            continue
        line = key_node.start_mark.line + 1
        if seen is not None:
            raise YamlProblem(
                f"line {line}: key '{key}' appears twice in one mapping (first on line {seen}); YAML would keep only "
                "the last"
            )
        first[key] = line
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _check_size(obj) -> None:
    """Count values as if every alias were expanded, stopping at MAX_VALUES."""
    count = 0
    stack = [obj]
    while stack:
        node = stack.pop()
        count += 1
        if count > MAX_VALUES:
            raise YamlProblem(
                f"expands to more than {MAX_VALUES:,} values (aliases of aliases?); a suite is far smaller"
            )
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _parse(text: str):
    try:
        obj = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise YamlProblem(f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    _check_size(obj)
    return obj


def loads(data: bytes | str, max_bytes: int = MAX_BYTES):
    """Parse YAML text (or UTF-8 bytes) within the bounds above; YamlProblem otherwise."""
    if isinstance(data, bytes):
        if len(data) > max_bytes:
            raise YamlProblem(f"{len(data):,} bytes; at most {max_bytes:,} are read")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlProblem(f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    elif len(data.encode("utf-8", "surrogatepass")) > max_bytes:
        raise YamlProblem(f"longer than {max_bytes:,} bytes")
    return _parse(data)


def read(path) -> object:
    """The YAML document in a file, reading at most MAX_BYTES + 1 bytes of it."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise YamlProblem(f"larger than {MAX_BYTES:,} bytes; a suite is a page of text")
    return loads(data)
