"""Architectures from the libraries users already have: `torchvision:NAME` and `timm:NAME`, built
by the library's own factory with the dataset's number of classes and the suite's `arch_args`.

Weights come only from local files (`checkpoint:`, `checkpoints:`): a network is always built
without pretrained weights, and arguments that would fetch some are refused when the suite is
validated, so that nothing waits on a network at run time."""

from __future__ import annotations

from typing import Any

from kdbench.registry import did_you_mean

LIBRARIES = ("torchvision", "timm")
# arguments of torchvision's and timm's factories that load (or download) weights
FETCHING = ("weights", "weights_backbone", "pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path")


def is_external(arch: str) -> bool:
    return isinstance(arch, str) and arch.partition(":")[0] in LIBRARIES and ":" in arch


def _names(library: str) -> list[str]:
    if library == "torchvision":
        import torchvision.models

        return torchvision.models.list_models()
    try:
        import timm
    except ImportError:
        raise ValueError("timm is not installed (pip install timm)") from None
    return timm.list_models()


def check_external(arch: str, arch_args: dict[str, Any]) -> None:
    """ValueError unless the library has the architecture and the arguments fetch nothing."""
    library, _, name = arch.partition(":")
    names = _names(library)
    if name not in names:
        raise ValueError(f"unknown {library} architecture '{name}'{did_you_mean(name, names)}")
    fetching = sorted(set(arch_args) & set(FETCHING))
    if fetching:
        raise ValueError(
            f"arch_args: {', '.join(fetching)} would load pretrained weights; kdbench loads weights only from local "
            "files: drop it and give the file as checkpoint (a teacher) or checkpoints (a student)"
        )


def create_external(arch: str, num_classes: int, arch_args: dict[str, Any]):
    library, _, name = arch.partition(":")
    if library == "torchvision":
        import torchvision.models

        return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **arch_args)
    import timm

    return timm.create_model(name, pretrained=False, num_classes=num_classes, **arch_args)
