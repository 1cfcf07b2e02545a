"""Name -> implementation maps filled by decorators, so YAML names reach code without if/else ladders."""

from __future__ import annotations

import difflib
import os
from typing import Callable, Generic, Iterator, TypeVar

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

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            key = name or getattr(obj, "name", None) or obj.__name__
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} '{key}' registered twice")
            self._items[key] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownName(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items
