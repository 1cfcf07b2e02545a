"""RobustBench's model zoo behind one adapter: the rest of kdbench never imports robustbench itself."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

from torch import nn

from kdbench.models import Normalized
from kdbench.registry import did_you_mean
from kdbench.util.errors import UserError


class ZooError(UserError, ValueError):
    pass


@functools.lru_cache(maxsize=None)
def _robustbench() -> SimpleNamespace:
    # robustbench 1.1.1's __init__ only re-exports load_cifar10, load_model and benchmark, yet running it
    # imports eval.py (`from autoattack import AutoAttack`: the installed pyautoattack has another API) and
    # loaders.py (`import pkg_resources`: gone with setuptools 81). So we put the package object in
    # sys.modules WITHOUT executing its __init__ and import utils/model_zoo normally; neither needs those
    # two dependencies. This is less fragile than stand-in `autoattack`/`pkg_resources` modules, which
    # must mimic every name robustbench takes from them, stay bound inside robustbench afterwards and can
    # fool other code probing for the real ones: here nothing fake exists, and if robustbench ever moves
    # load_model the import below fails loudly. A robustbench already imported (a fixed release) is reused.
    if "robustbench" not in sys.modules:
        spec = importlib.util.find_spec("robustbench")
        if spec is None or spec.submodule_search_locations is None:
            raise ZooError("robustbench is not installed (pip install robustbench)")
        sys.modules["robustbench"] = importlib.util.module_from_spec(spec)
    try:
        utils = importlib.import_module("robustbench.utils")
        zoo = importlib.import_module("robustbench.model_zoo")
        enums = importlib.import_module("robustbench.model_zoo.enums")
    except ImportError as exc:
        raise ZooError(f"robustbench is installed but its model zoo does not import: {exc}") from exc
    # `from robustbench import load_model` then works too; benchmark() stays absent on purpose.
    sys.modules["robustbench"].load_model = utils.load_model
    return SimpleNamespace(
        utils=utils, models=zoo.model_dicts, Dataset=enums.BenchmarkDataset, ThreatModel=enums.ThreatModel
    )


def _resolve(rb: SimpleNamespace, dataset: str, threat_model: str):
    try:
        ds = rb.Dataset(dataset)
    except ValueError:
        raise ZooError(
            f"unknown RobustBench dataset '{dataset}'{did_you_mean(dataset, [d.value for d in rb.Dataset])}; "
            f"expected one of: {', '.join(d.value for d in rb.Dataset)}"
        ) from None
    try:
        tm = rb.ThreatModel(threat_model)
    except ValueError:
        choices = [t.value for t in rb.ThreatModel]
        raise ZooError(
            f"unknown RobustBench threat model '{threat_model}'{did_you_mean(threat_model, choices)}; "
            f"expected one of: {', '.join(choices)}"
        ) from None
    if tm not in rb.models[ds]:
        raise ZooError(f"RobustBench has no {tm.value} models for {ds.value}")
    return ds, tm


def list_robustbench(dataset: str = "cifar10", threat_model: str = "Linf") -> list[str]:
    """RobustBench model names for a dataset and threat model, in the zoo's own order."""
    rb = _robustbench()
    ds, tm = _resolve(rb, dataset, threat_model)
    return list(rb.models[ds][tm])


def expected_weight_paths(
    name: str, dataset: str = "cifar10", threat_model: str = "Linf", *, model_dir: str | Path
) -> list[Path]:
    """Where robustbench looks for `name`'s weights (and downloads them to); empty when timm fetches them."""
    rb = _robustbench()
    ds, tm = _resolve(rb, dataset, threat_model)
    entry = _entry(rb, name, ds, tm)
    if _timm_name(rb, name, ds, tm) is not None:
        return []
    # Mirrors robustbench.utils.load_model: corruptions_3d models share the corruptions folder.
    folder = Path(model_dir) / ds.value / tm.value.replace("_3d", "")
    base = folder / f"{name}.pt"
    ids = entry["gdrive_id"]
    if isinstance(ids, list):  # ensembles: one file per member, named after the single-model path
        return [Path(f"{base}_m{i}.pt") for i in range(len(ids))]
    return [base]


def load_robustbench(
    name: str, dataset: str = "cifar10", threat_model: str = "Linf", *, model_dir: str | Path
) -> nn.Module:
    """RobustBench model `name` in eval mode, taking [0,1] inputs like every kdbench model.

    Weights already under `model_dir` are used as they are; otherwise robustbench downloads them there.
    """
    rb = _robustbench()
    ds, tm = _resolve(rb, dataset, threat_model)
    entry = _entry(rb, name, ds, tm)
    timm_name = _timm_name(rb, name, ds, tm)
    if timm_name is None and entry.get("gdrive_id") is None:
        raise ZooError(f"RobustBench model '{name}' ({ds.value}/{tm.value}) publishes no weights to download")
    paths = expected_weight_paths(name, ds.value, tm.value, model_dir=model_dir)
    try:
        net = rb.utils.load_model(name, model_dir=str(model_dir), dataset=ds.value, threat_model=tm.value)
    except Exception as exc:
        raise _load_error(name, ds.value, tm.value, model_dir, timm_name, paths, exc) from exc
    # RobustBench models take [0,1] and normalise inside themselves, hence the identity wrapper.
    wrapped = Normalized(net.eval(), None).eval()
    wrapped.arch_name = f"robustbench:{name}"
    return wrapped


def _entry(rb: SimpleNamespace, name: str, ds, tm) -> dict:
    models = rb.models[ds][tm]
    if name not in models:
        raise ZooError(
            f"unknown RobustBench model '{name}' for {ds.value}/{tm.value}{did_you_mean(name, models)}; "
            f"{len(models)} are listed by kdbench.models.zoo.list_robustbench('{ds.value}', '{tm.value}')"
        )
    return models[name]


def _timm_name(rb: SimpleNamespace, name: str, ds, tm) -> str | None:
    # load_model hands these to timm (which downloads to its own cache) before looking at model_dir.
    candidate = f"{name.lower().replace('-', '_')}_{ds.value.lower()}_{tm.value.lower()}"
    return candidate if rb.utils.timm.is_model(candidate) else None


def _timm_source(timm_name: str) -> str:
    import timm.models
    import torch.hub

    cfg = timm.models.get_pretrained_cfg(timm_name)
    if cfg is not None and cfg.hf_hub_id:
        return f"the Hugging Face hub ({cfg.hf_hub_id}, cached under $HF_HOME)"
    if cfg is not None and cfg.url:
        return f"{cfg.url} (cached in {Path(torch.hub.get_dir()) / 'checkpoints'})"
    return "its pretrained source"


def _load_error(name, dataset, threat_model, model_dir, timm_name, paths, exc) -> ZooError:
    what = f"RobustBench model '{name}' ({dataset}/{threat_model})"
    cause = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    if timm_name is not None:
        return ZooError(
            f"{what} is fetched by timm ('{timm_name}') from {_timm_source(timm_name)}, which failed "
            f"(offline or unreachable); model_dir is not used for it. Cause: {cause}"
        )
    missing = [p for p in paths if not p.is_file()]
    if missing:
        return ZooError(
            f"{what}: weights are not in model_dir={model_dir} and could not be downloaded (offline or "
            f"unreachable). Place the checkpoint at: {', '.join(map(str, missing))}. Cause: {cause}"
        )
    return ZooError(
        f"{what}: the weights at {', '.join(map(str, paths))} do not load ({cause}); "
        f"delete the file to download it again, or replace it"
    )
