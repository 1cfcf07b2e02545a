"""Name -> implementation maps filled by decorators, so YAML names reach code without if/else ladders."""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


def did_you_mean(name: str, choices) -> str:
    """A ' (did you mean 'x'?)' hint, or '' when nothing is close."""
    name = str(name)
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=3, cutoff=0.6)
    if not close:
        return ""

    # difflib breaks ties towards the larger name ('resnet2O' -> 'resnet32'); prefer the longer shared prefix
    def rank(c):
        return round(difflib.SequenceMatcher(None, name, c).ratio(), 6), len(
            os.path.commonprefix([name.lower(), c.lower()])
        )

    return f" (did you mean '{max(close, key=rank)}'?)"


class UnknownName(KeyError):
    def __init__(self, kind: str, name: str, choices):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(
            f"unknown {kind} '{name}'{did_you_mean(name, self.choices)}; expected one of: {', '.join(self.choices)}"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry(Generic[T]):
    """Names the suite uses -> what they name, filled by a decorator (`@register_method("kd")`).

    Every registry (architectures, methods, conditions, datasets, model metrics, export formats)
    works the same way: its package declares its built-in modules with `declare_from_sources`,
    which reads their source for the decorator without importing them, and a module is imported
    when one of its names is first used; anything else that calls the decorator registers too.
    Registering a name twice is an error naming both."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._declared: dict[str, tuple[str, str]] = {}  # name -> (module, docstring), not yet imported

    def declare_from_sources(
        self, package: str, path: Iterable[str], decorator: str, first: Iterable[str] = ()
    ) -> None:
        """Learn the names that `@decorator("name")` registers in the package's modules (and its
        subpackages') by reading their source, without importing them (model families import
        torch, and `validate` should not wait for it). Modules named in `first` come first, in that
        order (`kdbench list` and the schema show names in declaration order), the rest
        alphabetically. Only literal names are seen: register with a decorator and a string
        (stacked on one object for variants, with their fixed arguments as keywords), never with a
        computed name."""
        root = Path(next(iter(path)))
        files = sorted(f for f in root.rglob("*.py") if "__pycache__" not in f.parts)
        modules = {
            ".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__").removesuffix("__init__"): f
            for f in files
        }
        rank = {m: i for i, m in enumerate(first)}
        for module in sorted(modules, key=lambda m: (rank.get(m, len(rank)), m)):
            qualified = f"{package}.{module}" if module else package
            for name, doc in _decorated(modules[module], decorator):
                self._declared.setdefault(name, (qualified, doc))

    def _import_declared(self, names) -> None:
        for module in dict.fromkeys(
            self._declared[n][0] for n in names if n in self._declared and n not in self._items
        ):
            importlib.import_module(module)

    def register(self, name: str | None = None, **fixed) -> Callable[[T], T]:
        """Register `obj` under `name`; with keyword arguments, `obj` with those arguments fixed
        (one class, several named variants: stack the decorators)."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__
            entry = obj
            if fixed:
                entry = functools.partial(obj, **fixed)
                entry.__doc__ = obj.__doc__
            if key in self._items and obj not in (self._items[key], getattr(self._items[key], "func", None)):
                raise ValueError(
                    f"{self.kind} '{key}' registered twice: by {_origin(self._items[key])} and by {_origin(obj)}"
                )
            self._items[key] = entry
            return obj

        return deco

    def get(self, name: str) -> T:
        self._import_declared([name])
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        return list(dict.fromkeys([*self._declared, *self._items]))

    def items(self) -> Iterator[tuple[str, T]]:
        """Every entry, importing what is declared; in declaration order, then the others as registered."""
        self._import_declared(self._declared)
        order = dict.fromkeys([*(n for n in self._declared if n in self._items), *self._items])
        return iter([(n, self._items[n]) for n in order])

    def doc(self, name: str) -> str:
        """The summary of what `name` registers (its docstring's first paragraph), without importing it."""
        if name in self._declared:
            return self._declared[name][1]
        return summary(getattr(self.get(name), "__doc__", None))

    def check(self, name: str) -> str:
        """`name` if registered (imports nothing), else UnknownName with the choices."""
        if name not in self:
            raise UnknownName(self.kind, name, self.names())
        return name

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._declared


def summary(doc: str | None) -> str:
    """A docstring's first paragraph on one line: what `kdbench list` and the reference show."""
    first = (doc or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in first.splitlines())


def _decorated(file: Path, decorator: str) -> Iterator[tuple[str, str]]:
    """(name, first docstring line with any fixed arguments) for each `@decorator("name", ...)` in a file."""
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            continue
        for dec in node.decorator_list:
            if (
                isinstance(dec, ast.Call)
                and isinstance(dec.func, ast.Name)
                and dec.func.id == decorator
                and dec.args
                and isinstance(dec.args[0], ast.Constant)
                and isinstance(dec.args[0].value, str)
            ):
                doc = summary(ast.get_docstring(node))
                fixed = ", ".join(f"{kw.arg}={ast.unparse(kw.value)}" for kw in dec.keywords)
                yield dec.args[0].value, f"{doc} ({fixed})" if fixed else doc


def _origin(obj) -> str:
    obj = getattr(obj, "func", obj)
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"
