"""Importing a plugin: its source run as a module whose tracebacks name its file, its folder importable
while it loads, the user's own helper modules told from installed ones, and whatever it raises
turned into a PluginError that shows the plugin's own frames."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
import sysconfig
import traceback
from pathlib import Path

from kdbench.registry import DuplicateName, RegistrationError, registering_from
from kdbench.util.errors import UserError


class PluginError(UserError):
    """A plugin that cannot be found or imported, or that registers a name already taken."""


def _module_name(file: Path) -> str:
    # a stable, unique module name per file, so pickles (Ray) and tracebacks name it
    return f"kdbench_plugins.{_identifier(file.stem)}_{hashlib.sha256(str(file).encode()).hexdigest()[:8]}"


@contextlib.contextmanager
def _importable(folder: Path | None):
    """`folder` on the import path while a plugin loads (helpers beside it import, as beside a script)."""
    entry = str(folder) if folder is not None else None
    if entry is not None:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if entry is not None and entry in sys.path:
            sys.path.remove(entry)


def _installed_roots() -> list[Path]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots |= {p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages"))}
    roots.add(str(Path(__file__).resolve().parents[1]))  # kdbench itself
    return [Path(r).resolve() for r in roots]


def _own_modules(names: set[str]) -> dict[str, Path]:
    """Of the modules a plugin imported, the user's own: source files neither installed, nor
    Python's, nor kdbench's."""
    roots = _installed_roots()
    out = {}
    for name in sorted(names):
        file = getattr(sys.modules.get(name), "__file__", None)
        # a real source file only: some extension modules name a relative, made-up one (torch._classes)
        if not isinstance(file, str) or not file.endswith(".py") or not Path(file).is_absolute():
            continue
        path = Path(file).resolve()
        if path.is_file() and not any(path.is_relative_to(r) for r in roots):
            out[name] = path
    return out


def _forget_modules(names: set[str]) -> None:
    for name in names:
        sys.modules.pop(name, None)


def import_source(name: str, file: Path, source: bytes, origin: str):
    """Run a plugin's source as module `name` (its tracebacks name `file`), attributing what it
    registers to `origin`. Used for plugin files here and on workers, which get the source. The
    bytes compile as Python reads a file: a BOM, an encoding line and CRLF line ends as it does."""
    parent = name.rpartition(".")[0]
    if parent and parent not in sys.modules:
        sys.modules[parent] = importlib.util.module_from_spec(
            importlib.machinery.ModuleSpec(parent, None, is_package=True)
        )
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(file))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(file)
    sys.modules[name] = module
    try:
        with importing(origin, [file]):
            exec(compile(source, str(file), "exec"), module.__dict__)  # noqa: S102 - a plugin is code the user named
    except PluginError:
        sys.modules.pop(name, None)
        raise
    return module


@contextlib.contextmanager
def importing(origin: str, files: list[Path]):
    """Attribute what the block registers to `origin`, and turn whatever the plugin raises into a
    PluginError: a syntax error with its line, a name registered twice with both origins, anything
    else with the plugin's own frames."""
    with registering_from(origin):
        try:
            yield
        except SyntaxError as exc:
            text = (exc.text or "").strip()
            raise PluginError(
                f"{origin}, line {exc.lineno}: SyntaxError: {exc.msg}" + (f"\n    {text}" if text else "")
            ) from None
        except (DuplicateName, RegistrationError) as exc:
            raise PluginError(f"{origin}: {exc}") from None
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # noqa: BLE001 - the plugin's to fix
            # sys.exit(0) in a plugin must not end `validate` with success having checked nothing
            raise PluginError(_import_failure(origin, exc, files)) from None


def _module_files(name: str) -> list[Path]:
    """A module's source files: the file, or every .py file of a package."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    if spec is None or spec.origin is None:
        return []
    if spec.submodule_search_locations:
        root = Path(spec.origin).parent
        return sorted(f for f in root.rglob("*.py") if "__pycache__" not in f.parts)
    return [Path(spec.origin)]


def _import_failure(origin: str, exc: BaseException, files: list[Path]) -> str:
    """What went wrong while importing a plugin, with the plugin's own frames only (kdbench's and
    importlib's are noise to its author)."""
    frames = _own_frames(exc, files)
    return "\n".join([f"{origin} raised {type(exc).__name__} while being imported: {exc}", *frames])


def _own_frames(exc: BaseException, files: list[Path]) -> list[str]:
    """The traceback's frames in `files`, as Python prints them."""
    own = {str(f.resolve()) for f in files}
    return [
        f'  File "{f.filename}", line {f.lineno}, in {f.name}' + (f"\n    {f.line}" if f.line else "")
        for f in traceback.extract_tb(exc.__traceback__)
        if str(Path(f.filename).resolve()) in own
    ]


def _identifier(text: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return out if out and not out[0].isdigit() else f"p_{out}"
