"""Where teachers come from: a recipe (trained like a baseline), a checkpoint, or RobustBench's zoo.

Every model kdbench handles takes inputs in [0, 1]; normalisation lives inside the wrapper.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING

from kdbench.util.errors import UserError
from kdbench.util.hashing import file_sha256

if TYPE_CHECKING:
    from torch import nn


class TeacherError(UserError, ValueError):
    pass


def resolve_checkpoint(path: str) -> Path:
    """A file path, or `pkg:PACKAGE/relative/path` for a file shipped inside an installed package
    (such as pyautoattack's example ResNet-18); a pkg: path may not lead outside its package."""
    if not path.startswith("pkg:"):
        return Path(path).expanduser()
    package, _, rel = path[4:].partition("/")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", package) or not rel:
        raise TeacherError(f"checkpoint '{path}': expected pkg:PACKAGE/path/inside/it")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TeacherError(f"checkpoint '{path}': package '{package}' is not installed (pip install {package})")
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise TeacherError(f"checkpoint '{path}': leads outside the package '{package}'")
    return target


def checkpoint_identity(spec) -> str:
    path = resolve_checkpoint(spec.checkpoint)
    if not path.is_file():
        raise TeacherError(f"checkpoint '{spec.checkpoint}': no such file ({path})")
    return file_sha256(path)


def build_architecture(
    arch: str, normalize: str, num_classes: int = 10, arch_args=None, feature_stages=None
) -> nn.Module:
    from kdbench.models import create_model, wrap

    return wrap(create_model(arch, num_classes, arch_args, feature_stages), normalize)


def load_checkpoint(file: str, arch: str, normalize: str, num_classes: int = 10, **build) -> nn.Module:
    """A state_dict file (weights only) in the bare architecture, wrapped, in eval mode."""
    from kdbench.models.checkpoint import load_into, load_state_dict_file

    path = resolve_checkpoint(file)
    model = build_architecture(arch, normalize, num_classes, **build)
    load_into(model.net, load_state_dict_file(path), source=str(path))
    return model.eval()


def load_checkpoint_teacher(spec, num_classes: int = 10) -> nn.Module:
    return load_checkpoint(spec.checkpoint, spec.arch, spec.normalize, num_classes, **spec.build_args)


def zoo_dataset(dataset: str) -> str:
    """RobustBench's name for the suite's dataset (its CIFAR-10 zoo for synthetic data)."""
    return dataset if dataset in ("cifar10", "cifar100") else "cifar10"


def load_robustbench_teacher(spec, model_dir: Path, dataset: str = "cifar10") -> nn.Module:
    from kdbench.models.zoo import load_robustbench

    return load_robustbench(
        spec.robustbench, dataset=zoo_dataset(dataset), threat_model=spec.threat_model, model_dir=model_dir
    ).eval()


UNFETCHED = "weights not fetched"


def robustbench_identity(spec, model_dir: Path, fetch: bool = True, dataset: str = "cifar10") -> str:
    """The hash of a zoo teacher's weights (downloaded first if need be): a name alone would let
    a re-uploaded or hand-replaced file reuse results computed with other weights. Without `fetch`
    (a dry run) and with nothing on disk yet, UNFETCHED."""
    from kdbench.models.zoo import expected_weight_paths
    from kdbench.util.hashing import weights_sha256

    paths = expected_weight_paths(spec.robustbench, zoo_dataset(dataset), spec.threat_model, model_dir=model_dir)
    if not fetch and (not paths or not all(p.is_file() for p in paths)):
        return UNFETCHED
    return weights_sha256(load_robustbench_teacher(spec, model_dir, dataset))
