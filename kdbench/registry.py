"""Name -> implementation maps filled by decorators, so YAML names reach code without if/else ladders."""

from __future__ import annotations

import ast
import contextlib
import contextvars
import difflib
import functools
import importlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from kdbench.util.names import MAX_NAME, NAME

T = TypeVar("T")

BUILT_IN = "kdbench"
# Who is registering right now: a plugin file or package being imported (see config/plugins.py);
# None while kdbench's own modules register.
_ORIGIN: contextvars.ContextVar[str | None] = contextvars.ContextVar("kdbench_registering", default=None)


@contextlib.contextmanager
def registering_from(origin: str):
    """Everything registered inside this block is attributed to `origin` ("plugin file x.py")."""
    token = _ORIGIN.set(origin)
    try:
        yield
    finally:
        _ORIGIN.reset(token)


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


class DuplicateName(ValueError):
    """A name registered twice by different code: the message names both."""


class RegistrationError(ValueError):
    """What a registry's own check refuses at registration (a method's parameters model whose
    `name` literal is another name): the message names both."""


class Registry(Generic[T]):
    """Names the suite uses -> what they name, filled by a decorator (`@register_method("kd")`).

    Every registry (architectures, methods, conditions, datasets, model metrics, export formats)
    works the same way: its package declares its built-in modules with `declare_from_sources`,
    which reads their source for the decorator without importing them, and a module is imported
    when one of its names is first used; anything else that calls the decorator registers too.
    Registering a name twice is an error naming both."""

    def __init__(self, kind: str, check: Callable[[str, T], None] | None = None):
        self.kind = kind
        self._check = check  # raises RegistrationError for an entry this registry cannot use
        self._items: dict[str, T] = {}
        self._declared: dict[str, tuple[str, str]] = {}  # name -> (module, docstring), not yet imported
        self._origins: dict[str, str] = {}  # name -> BUILT_IN, or the plugin that registered it
        self._modules: dict[str, str] = {}  # name -> the module that defines it
        self.generation = 0  # bumped by every registration, so that schemas built from it know to rebuild

    def declare_from_sources(
        self, package: str, path: Iterable[str], decorator: str, first: Iterable[str] = (), keywords: bool = True
    ) -> None:
        """Learn the names that `@decorator("name")` registers in the package's modules (and its
        subpackages') by reading their source, without importing them (model families import
        torch, and `validate` should not wait for it). Modules named in `first` come first, in that
        order (`kdbench list` and the schema show names in declaration order), the rest
        alphabetically. Only literal names are seen: register with a decorator and a string
        (stacked on one object for variants, with their fixed arguments as keywords), never with a
        computed name. With `keywords`, a name's summary ends with the decorator's keyword
        arguments (a variant's fixed arguments: `(depth=20)`)."""
        root = Path(next(iter(path)))
        files = sorted(f for f in root.rglob("*.py") if "__pycache__" not in f.parts)
        modules = {
            ".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__").removesuffix("__init__"): f
            for f in files
        }
        rank = {m: i for i, m in enumerate(first)}
        for module in sorted(modules, key=lambda m: (rank.get(m, len(rank)), m)):
            qualified = f"{package}.{module}" if module else package
            for name, doc in _decorated(modules[module], decorator, keywords):
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
            if not isinstance(key, str) or not re.match(NAME, key) or len(key) > MAX_NAME:
                raise RegistrationError(
                    f"{self.kind} name {key!r}: expected up to {MAX_NAME} letters, digits, '_', '.' or '-', "
                    "starting with a letter or digit (it names files and reaches reports)"
                )
            entry = obj
            if fixed:
                entry = functools.partial(obj, **fixed)
                entry.__doc__ = obj.__doc__
            module = module_of(obj)
            origin = _ORIGIN.get() or (BUILT_IN if module.split(".")[0] == BUILT_IN else module)
            if key in self._items:
                if obj in (self._items[key], getattr(self._items[key], "func", None)):
                    return obj
                if origin != BUILT_IN and self._origins.get(key) == origin:
                    # the same plugin imported again after an edit: its new definition wins
                    self._items[key], self._modules[key] = entry, module
                    self.generation += 1
                    return obj
                raise DuplicateName(
                    f"{self.kind} '{key}' registered twice: by {self._describe(key)} and by {origin} ({module})"
                )
            if key in self._declared and self._declared[key][0] != module:
                raise DuplicateName(
                    f"{self.kind} '{key}' registered twice: by {BUILT_IN} ({self._declared[key][0]}) "
                    f"and by {origin} ({module})"
                )
            if self._check is not None:
                self._check(key, obj)
            if isinstance(obj, type) and "name" not in vars(obj):
                # a class knows the name it was registered under (methods, conditions), its own and
                # not its base class's (kd_mse subclasses kd); the decorator is the one place it is written
                obj.name = key
            self._items[key] = entry
            self._origins[key], self._modules[key] = origin, module
            self.generation += 1
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

    def forget(self, origin: str) -> None:
        """Drop what `origin` registered (a plugin unloaded: tests, notebooks that switch suites)."""
        for name in [n for n, o in self._origins.items() if o == origin]:
            del self._items[name], self._origins[name], self._modules[name]
            self.generation += 1

    def origin(self, name: str) -> str:
        """Who registered `name`: BUILT_IN, or the plugin ("plugin file x.py", "package p")."""
        if name in self._origins:
            return self._origins[name]
        self.check(name)
        return BUILT_IN

    def module(self, name: str) -> str:
        """The module that defines `name` (imports nothing)."""
        if name in self._modules:
            return self._modules[name]
        self.check(name)
        return self._declared[name][0]

    def _describe(self, name: str) -> str:
        return f"{self.origin(name)} ({self.module(name)})"

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


def _decorated(file: Path, decorator: str, keywords: bool = True) -> Iterator[tuple[str, str]]:
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
                yield dec.args[0].value, f"{doc} ({fixed})" if fixed and keywords else doc


def module_of(obj) -> str:
    """The module that defines a registered object: a partial's function, or what an object that
    wraps a function names as `__wrapped__` (functools' convention)."""
    inner = getattr(obj, "func", None) or getattr(obj, "__wrapped__", None) or obj
    return getattr(inner, "__module__", None) or type(inner).__module__
