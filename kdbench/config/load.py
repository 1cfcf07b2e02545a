"""`load_suite(path, overrides)`: bounded YAML (kdbench.util.safe_yaml), overrides, validation, and
checkpoint paths resolved against the suite file; every problem raised at once as SuiteError."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import ValidationError

from kdbench.config.errors import SuiteError, describe_error
from kdbench.config.overrides import apply_overrides, parse_overrides
from kdbench.config.plugin_import import PluginError
from kdbench.config.plugins import load_entry_points, load_plugins, resolve_spec
from kdbench.config.schema import suite_model
from kdbench.config.suite import Suite
from kdbench.util.names import NAME
from kdbench.util.safe_yaml import YamlProblem
from kdbench.util.safe_yaml import read as yaml_read


def read_yaml(path: Path) -> dict:
    try:
        raw = yaml_read(path)
    except OSError as exc:
        raise SuiteError(path, [f"cannot read the file ({exc.strerror or exc})"]) from None
    except YamlProblem as exc:
        raise SuiteError(path, [str(exc)]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SuiteError(path, [f"(top level): expected a mapping of sections (found: {type(raw).__name__})"])
    return raw


def _name_from(path: Path) -> str:
    """A suite without `name:` is named after its file; characters a directory name should not
    have become '-'."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.") or "suite"
    return name if re.match(NAME, name) else f"suite-{name}"


def check_checkpoint(spec: str) -> str | None:
    """Why a checkpoint path cannot be read, or None: it must resolve (a pkg: path inside its
    installed package) to an existing file."""
    from kdbench.models.teachers import TeacherError, resolve_checkpoint

    try:
        path = resolve_checkpoint(spec)
    except TeacherError as exc:
        return str(exc).removeprefix("checkpoint ")
    if path.is_dir():
        return f"'{spec}': is a directory, expected a weights file"
    if not path.is_file():
        return f"'{spec}': no such file"
    return None


def relative_to_suite(file: str, base: Path) -> str:
    """A checkpoint path as written in a suite: relative to the suite's folder (a pkg: path and an
    absolute one as they are; a relative path that exists only from here, as it is)."""
    if file.startswith("pkg:") or Path(file).expanduser().is_absolute():
        return file
    candidate = base / file
    return str(candidate) if candidate.exists() or not Path(file).exists() else file


def load_suite_plugins(path: Path, raw: dict) -> None:
    """Import the installed packages' plugins and the suite's own (`plugins:`, files relative to
    the suite file), before anything is validated; their file paths become absolute in `raw`."""
    specs = raw.get("plugins", [])
    if not isinstance(specs, list) or not all(isinstance(s, str) and s.strip() for s in specs):
        raise SuiteError(path, [f"plugins: expected a list of .py file paths or module names (found: {specs!r:.80})"])
    if len(set(specs)) != len(specs):
        raise SuiteError(path, ["plugins: a plugin is listed twice"])
    try:
        load_entry_points()
        load_plugins(specs, path.parent)
    except PluginError as exc:
        raise SuiteError(path, [str(exc)]) from None
    if specs:
        raw["plugins"] = [resolve_spec(s, path.parent) for s in specs]


def load_suite(path, overrides: list[str] | None = None) -> Suite:
    path = Path(path)
    raw = read_yaml(path)
    raw.setdefault("name", _name_from(path))
    try:
        raw = apply_overrides(raw, parse_overrides(overrides or []))
    except (AttributeError, IndexError, TypeError):
        raise SuiteError(path, [f"--set {overrides}: a key path does not lead into a mapping"]) from None
    load_suite_plugins(path, raw)
    model = suite_model()
    try:
        suite = model.model_validate(raw)
    except ValidationError as exc:
        raise SuiteError(path, [describe_error(e, model) for e in exc.errors()]) from None
    base = path.parent
    problems = []
    for name, t in suite.teachers.items():  # checkpoint paths are relative to the suite file
        if t.checkpoint:
            t.checkpoint = relative_to_suite(t.checkpoint, base)
            why = check_checkpoint(t.checkpoint)
            if why:
                problems.append(f"teachers.{name}.checkpoint: {why}")
    for name, s in suite.students.items():
        for seed, file in (s.checkpoints or {}).items():
            s.checkpoints[seed] = relative_to_suite(file, base)
            why = check_checkpoint(s.checkpoints[seed])
            if why:
                problems.append(f"students.{name}.checkpoints.{seed}: {why}")
    if problems:
        raise SuiteError(path, problems)
    return suite


def json_schema() -> dict:
    schema = suite_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "kdbench suite"
    return schema
