"""Modules imported on first use, so that `kdbench validate`, `list` and `schema` read the suite
schema (pydantic models living beside the code they configure) without importing torch (seconds,
hundreds of MB). `torch = lazy("torch")` binds a stand-in whose first attribute access imports
the module; the stand-in then holds the module's attributes itself, so later lookups cost nothing
extra. Anything needed while a module is being defined (a base class) cannot be lazy."""

from __future__ import annotations

import importlib
import types


class LazyModule(types.ModuleType):
    def __getattr__(self, attr: str):
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


def lazy(name: str) -> types.ModuleType:
    return LazyModule(name)
