"""Plugins: a user's own architectures, methods, conditions, datasets and metrics, registered with
kdbench's own decorators from outside the package.

Two ways in, and no other: a suite's `plugins:` list (Python files, relative to the suite file,
or importable module names), imported before the suite is validated; and the entry points of
installed packages in the group `kdbench.plugins`, loaded for every command. Importing a plugin
runs its code, as importing any Python module does.

A plugin file's folder is importable while it loads, so that helper modules beside it import;
the plugin's files are the file and every such module of the user's own (not installed, not
Python's). A job's hash covers what it uses of them (config/plugin_hash.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from kdbench.config.plugin_import import (
    PluginError,
    _forget_modules,
    _importable,
    _module_files,
    _module_name,
    _own_frames,
    _own_modules,
    import_source,
    importing,
)
from kdbench.registry import BUILT_IN

ENTRY_POINT_GROUP = "kdbench.plugins"


@dataclass
class Plugin:
    origin: str  # "plugin file /abs/x.py", "plugin module mypkg", "package dist (entry point name)"
    spec: str  # what the suite or entry point named: an absolute file path or a module name
    files: list[Path]  # its source, hashed: the file or package, and the user's own modules it imports
    modules: set[str] = field(default_factory=set)  # the module names it defines
    sha256: str = ""
    helpers: dict[str, Path] = field(default_factory=dict)  # own module imported while loading -> its file

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
        if plugin.helpers or plugin.is_file:
            return _file_plugin_sha(plugin.files[0], plugin.helpers) != plugin.sha256
        return _sha256(plugin.files) != plugin.sha256
    except OSError:  # gone: importing it again says so
        return True


def _file_plugin_sha(file: Path, helpers: dict[str, Path], data: bytes | None = None) -> str:
    """A file plugin's identity: its bytes and its helper modules' (by module name, never by folder)."""
    main = data if data is not None else file.read_bytes()
    return _shipped_sha(file.name, main, [(m, f.read_bytes()) for m, f in sorted(helpers.items())])


def _shipped_sha(name: str, source: bytes, helpers) -> str:
    """The same identity from the sources themselves (a worker has no files): helpers (module, bytes), sorted."""
    return _sha256_sources([(name, source), *((f"{m}.py", data) for m, data in helpers)])


def shippable(specs: list[str]) -> tuple[tuple[str, bytes | None, tuple[tuple[str, bytes], ...]], ...]:
    """What a Ray task carries to import the suite's plugins on any node: each file plugin's
    source with its helper modules' (module name, source), and module plugins by name (they must
    be installed there)."""
    out = []
    for s in specs:
        if not is_file_spec(s):
            out.append((s, None, ()))
            continue
        known = _LOADED.get(s)
        helpers = tuple((m, f.read_bytes()) for m, f in sorted(known.helpers.items())) if known else ()
        out.append((s, Path(s).read_bytes(), helpers))
    return tuple(out)


def load_shipped(items) -> None:
    """On a worker: import the plugins a task carries, unless already imported as they are. Helper
    modules are written under the temporary folder (named by their content) and imported from
    there, so the plugin's own folder need not exist on the node."""
    for spec, source, helpers in items:
        if source is None:
            load_plugins([spec], Path("/"))
            continue
        file = Path(spec)
        sha = _shipped_sha(file.name, source, helpers)
        known = _LOADED.get(spec)
        if known is not None and known.sha256 == sha:
            continue
        folder = Path(tempfile.gettempdir()) / "kdbench-plugins" / sha[:16]
        for module, data in helpers:
            path = folder / (module.replace(".", "/") + ".py")
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{sha[:8]}.tmp")
                tmp.write_bytes(data)
                tmp.replace(path)
        origin = f"plugin file {file}"
        name = _module_name(file)
        _forget_modules({m for m, _ in helpers})
        with _importable(folder if helpers else None):
            import_source(name, file, source, origin)
        _LOADED[spec] = Plugin(origin, spec, [file], {name, *(m for m, _ in helpers)}, sha)


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
    except OSError as exc:
        raise PluginError(f"{where}: plugin file '{raw}' cannot be read ({exc})") from None
    previous = _LOADED.get(path)
    if previous is not None:  # edited: its helpers import afresh too
        _forget_modules(set(previous.helpers))
    before = set(sys.modules)
    with _importable(file.parent):
        import_source(name, file, data, origin)
    helpers = _own_modules(set(sys.modules) - before - {name})
    files = [file, *helpers.values()]
    return Plugin(origin, path, files, {name, *helpers}, _file_plugin_sha(file, helpers, data), helpers)


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


def plugin_failure(exc: BaseException) -> str | None:
    """What a loaded plugin's code raised while a job ran, with the plugin's own frames; None when
    no frame of the traceback is a plugin's (kdbench's own error, to propagate as it is)."""
    frames = _own_frames(exc, [f for p in _LOADED.values() for f in p.files])
    if not frames:
        return None
    return "\n".join([f"plugin code raised {type(exc).__name__}: {exc}", *frames])


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
    """The hashes of what these (registry, name) pairs are made of when a plugin defines them
    (config/plugin_hash.py; the plugin's whole files where the source cannot be followed), sorted;
    empty for built-ins, so that built-in jobs keep their hashes."""
    from kdbench.config.plugin_hash import object_hash

    out = set()
    for registry, name in registered:
        if name is None or name not in registry or registry.origin(name) == BUILT_IN:
            continue
        plugin = plugin_of(registry.module(name))
        if plugin is not None:
            files = {str(f.resolve()) for f in plugin.files}
            own = {m for m in plugin.modules if _file_of(m) in files}
            out.add(object_hash(registry.get(name), own) or plugin.sha256)
    return sorted(out)


def _file_of(module: str) -> str | None:
    file = getattr(sys.modules.get(module), "__file__", None)
    return str(Path(file).resolve()) if file else None


def plugin_files() -> dict[str, str]:
    """Every loaded plugin's files (absolute path -> sha256 of its bytes): what a run compares with
    the job store's record to say which plugin file changed."""
    out = {}
    for plugin in _LOADED.values():
        for f in plugin.files:
            with contextlib.suppress(OSError):
                out[str(f.resolve())] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


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
