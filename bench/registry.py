"""Name -> implementation maps filled by decorators, so YAML names reach code without if/else ladders."""

from __future__ import annotations

import ast
import difflib
import functools
import importlib
import os
import pkgutil
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
        return round(difflib.SequenceMatcher(None, name, c).ratio(), 6), len(os.path.commonprefix([name.lower(), c.lower()]))

    return f" (did you mean '{max(close, key=rank)}'?)"


class UnknownName(KeyError):
    def __init__(self, kind: str, name: str, choices):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        super().__init__(
            f"unknown {kind} '{name}'{did_you_mean(name, self.choices)}; "
            f"expected one of: {', '.join(self.choices)}"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._declared: dict[str, tuple[str, str]] = {}  # name -> (module, docstring), not yet imported

    def declare_from_sources(self, package: str, path: Iterable[str], decorator: str) -> None:
        """Learn the names that `@decorator("name")` registers in the package's modules by reading
        their source, without importing them (model families import torch, and `validate` should
        not wait for it); `get` imports a name's module on first use. Only literal names are seen:
        register with a decorator and a string (stacked on one class for variants, with their
        fixed arguments as keywords), never with a computed name."""
        for info in pkgutil.iter_modules(path):
            file = Path(next(iter(path))) / f"{info.name}.py"
            if not file.is_file():
                continue
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    continue
                for dec in node.decorator_list:
                    if (isinstance(dec, ast.Call) and isinstance(dec.func, ast.Name) and dec.func.id == decorator
                            and dec.args and isinstance(dec.args[0], ast.Constant) and isinstance(dec.args[0].value, str)):
                        doc = (ast.get_docstring(node) or "").strip().split("\n")[0]
                        fixed = ", ".join(f"{kw.arg}={ast.unparse(kw.value)}" for kw in dec.keywords)
                        self._declared[dec.args[0].value] = (f"{package}.{info.name}", f"{doc} ({fixed})" if fixed else doc)

    def _import_declared(self, names) -> None:
        for module in dict.fromkeys(self._declared[n][0] for n in names if n in self._declared and n not in self._items):
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
                raise ValueError(f"{self.kind} '{key}' registered twice")
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
        self._import_declared(self._declared)
        return iter(self._items.items())

    def doc(self, name: str) -> str:
        """The first line of what `name` registers, without importing it."""
        text = self._declared[name][1] if name in self._declared else getattr(self.get(name), "__doc__", None)
        return (text or "").strip().split("\n")[0]

    def check(self, name: str) -> str:
        """`name` if registered (imports nothing), else UnknownName with the choices."""
        if name not in self:
            raise UnknownName(self.kind, name, self.names())
        return name

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._declared
