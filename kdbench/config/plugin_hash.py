"""What a job's hash covers of a plugin: the source of the objects it uses, not the whole file.

For a registered object (a network factory, a method class, a condition, a dataset loader) the
hash covers, by their text:
- the object's own definition (decorators included);
- every definition of the user's own modules it names, transitively (a helper function, a base
  class, a function in a helper module imported by name);
- the top-level statements of every module involved that are not definitions (imports, constants,
  module-level code), since any of them can change what the definitions do;
- the whole of every own helper module those top-level statements import.

So editing a loss reruns that method's jobs and leaves a network defined beside it alone, while
editing a constant or an import of the file reruns everything the file defines. Two things fall
back to the whole files of the plugin: an object the source cannot be found for (made by a
factory at import time, defined in a function) and names reached only dynamically (`getattr`,
`globals()`), which no reading of the source can follow; the docs say so.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass(frozen=True)
class _Source:
    label: str  # the file's name: folders stay out of hashes
    defs: dict[str, str]  # top-level definition -> its text, decorators included
    names: dict[str, frozenset[str]]  # top-level definition -> the names it reads
    rest: str  # the other top-level statements
    rest_names: frozenset[str]


@functools.lru_cache(maxsize=256)
def _parse(path: str, stamp: tuple[int, int]) -> _Source | None:
    try:
        data = Path(path).read_bytes()
        tree = ast.parse(data)
    except (OSError, SyntaxError, ValueError):
        return None
    text = data.decode("utf-8-sig", errors="replace").splitlines()
    defs, names, rest, rest_names = {}, {}, [], set()
    for node in tree.body:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        segment = "\n".join(text[first - 1 : node.end_lineno])
        read = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
        if isinstance(node, _DEFS):
            defs[node.name] = segment
            names[node.name] = read
        else:
            rest.append(segment)
            rest_names |= read | {a.asname or a.name.split(".")[0] for a in getattr(node, "names", [])}
    return _Source(Path(path).name, defs, names, "\n".join(rest), frozenset(rest_names))


def _source(module: str) -> _Source | None:
    file = getattr(sys.modules.get(module), "__file__", None)
    if not file:
        return None
    try:
        stat = Path(file).stat()
    except OSError:
        return None
    return _parse(str(file), (stat.st_mtime_ns, stat.st_size))


def _unwrap(obj):
    while True:
        inner = getattr(obj, "func", None) or getattr(obj, "__wrapped__", None)
        if inner is None:
            return obj
        obj = inner


def object_hash(obj, own: set[str]) -> str | None:
    """The hash of what `obj` is made of within the modules named in `own` (a plugin's modules),
    or None when its source cannot be followed (the caller then hashes the plugin's files)."""
    target = _unwrap(obj)
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
    top = qualname.split(".")[0]
    if module not in own or "<" in qualname:
        return None
    parts: dict[str, str] = {}
    whole: set[str] = set()
    todo, seen = [(module, top)], set()
    while todo:
        mod, name = todo.pop()
        if (mod, name) in seen:
            continue
        seen.add((mod, name))
        source = _source(mod)
        if source is None or name not in source.defs:
            return None
        parts[f"{source.label}:{name}"] = source.defs[name]
        if f"{source.label}:" not in parts:
            parts[f"{source.label}:"] = source.rest
            whole |= _own_modules_named(mod, source.rest_names, own)
        for ref in source.names[name]:
            if ref in source.defs:
                todo.append((mod, ref))
                continue
            value = _unwrap(vars(sys.modules[mod]).get(ref))
            if getattr(value, "__module__", None) in own and hasattr(value, "__qualname__"):
                if "<" in value.__qualname__:
                    return None
                todo.append((value.__module__, value.__qualname__.split(".")[0]))
            elif getattr(value, "__name__", None) in own and isinstance(value, type(sys)):
                whole.add(value.__name__)
    h = hashlib.sha256()
    for key in sorted(parts):
        h.update(key.encode() + b"\0" + parts[key].encode() + b"\0")
    for mod in sorted(_closure(whole, own)):
        h.update(f"{Path(sys.modules[mod].__file__).name}\0".encode() + Path(sys.modules[mod].__file__).read_bytes())
    return h.hexdigest()


def _own_modules_named(module: str, names, own: set[str]) -> set[str]:
    """The own modules that a module's top-level statements bind (import x; from x import y)."""
    out = set()
    namespace = vars(sys.modules[module])
    for name in names:
        value = namespace.get(name)
        if isinstance(value, type(sys)) and value.__name__ in own:
            out.add(value.__name__)
        else:
            origin = getattr(_unwrap(value), "__module__", None)
            if origin in own and origin != module:
                out.add(origin)
    return out


def _closure(modules: set[str], own: set[str]) -> set[str]:
    """Whole helper modules and the own modules they import in turn."""
    out, todo = set(), list(modules)
    while todo:
        mod = todo.pop()
        if mod in out or mod not in sys.modules:
            continue
        out.add(mod)
        source = _source(mod)
        if source is not None:
            todo.extend(_own_modules_named(mod, source.rest_names | set(source.defs), own))
    return out
