"""Plugins: a user's own architectures, methods, conditions, datasets and metrics, registered with
kdbench's own decorators from outside the package.

Two ways in, and no other: a suite's `plugins:` list (Python files, relative to the suite file,
or importable module names), imported before the suite is validated; and the entry points of
installed packages in the group `kdbench.plugins`, loaded for every command. Importing a plugin
runs its code, as importing any Python module does.

Each loaded plugin is remembered with a hash of its source files: a job that uses a name a plugin
registered has that hash in its own, so editing the plugin reruns exactly those jobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from kdbench.registry import BUILT_IN, DuplicateName, registering_from
from kdbench.util.errors import UserError

ENTRY_POINT_GROUP = "kdbench.plugins"


class PluginError(UserError):
    """A plugin that cannot be found or imported, or that registers a name already taken."""


@dataclass
class Plugin:
    origin: str  # "plugin file /abs/x.py", "plugin module mypkg", "package dist (entry point name)"
    spec: str  # what the suite or entry point named: an absolute file path or a module name
    files: list[Path]  # its source, hashed
    modules: set[str] = field(default_factory=set)  # the module names it defines
    sha256: str = ""

    @property
    def is_file(self) -> bool:
        return is_file_spec(self.spec)


_LOADED: dict[str, Plugin] = {}  # spec -> plugin, once per process
_ENTRY_POINTS_LOADED = False


def is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def resolve_spec(spec: str, base: Path) -> str:
    """A file spec as an absolute path (relative to the suite's folder), a module name as it is."""
    if not is_file_spec(spec):
        return spec
    path = Path(spec).expanduser()
    return str((path if path.is_absolute() else base / path).resolve())


def load_plugins(specs: list[str], base: Path, where: str = "plugins") -> list[Plugin]:
    """Import each plugin `specs` names (files relative to `base`), once per process; PluginError
    naming the plugin, and for an error inside it the file, line and the user's own frames."""
    out = []
    for i, raw in enumerate(specs):
        spec = resolve_spec(raw, base)
        known = _LOADED.get(spec)
        if known is None or (known.is_file and _edited(known)):
            _LOADED[spec] = (
                _load_file(spec, raw, f"{where}.{i}") if is_file_spec(raw) else _load_module(spec, f"{where}.{i}")
            )
        out.append(_LOADED[spec])
    return out


def load_entry_points() -> list[Plugin]:
    """The installed packages' plugins (entry point group `kdbench.plugins`), once per process."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return [p for p in _LOADED.values() if p.origin.startswith("package ")]
    _ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    out = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "?"
        origin = f"package {dist} (entry point {ep.name})"
        module = ep.value.split(":")[0].strip()
        before = set(sys.modules)
        with importing(origin, _module_files(module)):
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type(sys)):
                obj()  # `module:function`: the function registers
        plugin = Plugin(origin, module, _module_files(module), {m for m in set(sys.modules) - before} | {module})
        plugin.sha256 = _sha256(plugin.files)
        _LOADED[module] = plugin
        out.append(plugin)
    return out


def _edited(plugin: Plugin) -> bool:
    try:
        return _sha256(plugin.files) != plugin.sha256
    except OSError:  # gone: importing it again says so
        return True


def shippable(specs: list[str]) -> tuple[tuple[str, bytes | None], ...]:
    """What a Ray task carries to import the suite's plugins on any node: each file plugin's
    source, and module plugins by name (they must be installed there)."""
    return tuple((s, Path(s).read_bytes() if is_file_spec(s) else None) for s in specs)


def load_shipped(items: tuple[tuple[str, bytes | None], ...]) -> None:
    """On a Ray worker: import the plugins a task carries, unless already imported as they are."""
    for spec, source in items:
        if source is None:
            load_plugins([spec], Path("/"))
            continue
        file = Path(spec)
        sha = _sha256_sources([(file.name, source)])
        known = _LOADED.get(spec)
        if known is not None and known.sha256 == sha:
            continue
        origin = f"plugin file {file}"
        name = _module_name(file)
        import_source(name, file, source.decode("utf-8"), origin)
        _LOADED[spec] = Plugin(origin, spec, [file], {name}, sha)


def _module_name(file: Path) -> str:
    # a stable, unique module name per file, so pickles (Ray) and tracebacks name it
    return f"kdbench_plugins.{_identifier(file.stem)}_{hashlib.sha256(str(file).encode()).hexdigest()[:8]}"


def _load_file(path: str, raw: str, where: str) -> Plugin:
    file = Path(path)
    if not file.is_file():
        raise PluginError(
            f"{where}: plugin file '{raw}' not found ({file}{' is a directory' if file.is_dir() else ''})"
        )
    origin = f"plugin file {file}"
    name = _module_name(file)
    try:
        data = file.read_bytes()
        source = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginError(f"{where}: plugin file '{raw}' cannot be read ({exc})") from None
    import_source(name, file, source, origin)
    return Plugin(origin, path, [file], {name}, _sha256_sources([(file.name, data)]))


def import_source(name: str, file: Path, source: str, origin: str):
    """Run a plugin's source as module `name` (its tracebacks name `file`), attributing what it
    registers to `origin`. Used for plugin files here and on Ray workers, which get the source."""
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
        del sys.modules[name]
        raise
    return module


def _load_module(name: str, where: str) -> Plugin:
    origin = f"plugin module {name}"
    before = set(sys.modules)
    if importlib.util.find_spec(name.split(".")[0]) is None:
        raise PluginError(f"{where}: plugin module '{name}' is not importable (not installed, and not a .py file path)")
    with importing(origin, _module_files(name)):
        importlib.import_module(name)
    plugin = Plugin(origin, name, _module_files(name), (set(sys.modules) - before) | {name})
    plugin.sha256 = _sha256(plugin.files)
    return plugin


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
        except DuplicateName as exc:
            raise PluginError(f"{origin}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - whatever a plugin raises is the plugin's to fix
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
    own = {str(f.resolve()) for f in files}
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if str(Path(f.filename).resolve()) in own]
    lines = [f"{origin} raised {type(exc).__name__} while being imported: {exc}"]
    for f in frames:
        lines.append(f'  File "{f.filename}", line {f.lineno}, in {f.name}' + (f"\n    {f.line}" if f.line else ""))
    return "\n".join(lines)


def _identifier(text: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return out if out and not out[0].isdigit() else f"p_{out}"


def _sha256(files: list[Path]) -> str:
    return _sha256_sources([(f.name, f.read_bytes()) for f in files])


def _sha256_sources(sources: list[tuple[str, bytes]]) -> str:
    """A plugin's identity: its files' names and bytes (never their folder: paths stay out of hashes)."""
    h = hashlib.sha256()
    for name, data in sources:
        h.update(name.encode() + b"\0" + data + b"\0")
    return h.hexdigest()


def plugin_of(module: str) -> Plugin | None:
    """The loaded plugin that defines `module`, if any."""
    for plugin in _LOADED.values():
        if module in plugin.modules:
            return plugin
    return None


def plugin_hashes(*registered) -> list[str]:
    """The source hashes of the plugins that define these (registry, name) pairs, sorted; empty
    for built-ins, so that built-in jobs keep their hashes."""
    out = set()
    for registry, name in registered:
        if name is None or name not in registry or registry.origin(name) == BUILT_IN:
            continue
        plugin = plugin_of(registry.module(name))
        if plugin is not None:
            out.add(plugin.sha256)
    return sorted(out)


def unload_all() -> None:
    """Forget every plugin and what it registered, so that the next suite loads its own afresh."""
    from kdbench.data import DATASETS
    from kdbench.evaluation.conditions import CONDITIONS
    from kdbench.evaluation.model_metrics import MODEL_METRICS
    from kdbench.models import MODELS
    from kdbench.training.methods import METHODS

    global _ENTRY_POINTS_LOADED
    for plugin in _LOADED.values():
        for registry in (MODELS, METHODS, CONDITIONS, DATASETS, MODEL_METRICS):
            registry.forget(plugin.origin)
        for module in plugin.modules:
            sys.modules.pop(module, None)
    _LOADED.clear()
    _ENTRY_POINTS_LOADED = False
