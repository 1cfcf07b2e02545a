"""Architectures, found by the names the suite uses (`resnet20`, `wrn_40_2`, ...), and their input wrapper.

Every kdbench model takes images in [0,1]; normalisation is a `Normalized` wrapper around the bare
network so public checkpoints (which hold only the bare network) load into `wrapper.net` untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdbench.registry import Registry

if TYPE_CHECKING:
    from torch import nn

MODELS: Registry = Registry("architecture")
register_model = MODELS.register
# The family modules (and torch) are imported when an architecture is first built, not before.
MODELS.declare_from_sources(__name__, __path__, "register_model")


def create_model(name: str, num_classes: int = 10, arch_args: dict | None = None, feature_stages=None) -> nn.Module:
    """The bare, randomly initialised architecture `name` (no normalisation: see `wrap`): a
    registered one, or `torchvision:NAME` / `timm:NAME` (kdbench.models.external), built with
    `arch_args`. `feature_stages` names the modules whose outputs feature-based methods read,
    where the family does not (else they are inferred from the resolutions)."""
    from torch import nn

    from kdbench.models.external import create_external, is_external

    if is_external(name):
        net = create_external(name, num_classes, arch_args or {})
    else:
        factory = MODELS.get(name)
        net = factory(num_classes=num_classes, **(arch_args or {}))
        if not isinstance(net, nn.Module):
            from kdbench.util.contracts import located
            from kdbench.util.errors import CodeFailed

            raise CodeFailed(
                f"architecture '{name}' ({located(factory)}): its factory returned {type(net).__name__}, "
                "expected a torch.nn.Module"
            )
    if feature_stages:
        net.feature_stages = tuple(feature_stages)
    # Kept on the instance so checkpoint errors can say which architecture was tried.
    net.arch_name = name
    return net


def __getattr__(name: str):
    # the wrapper imports torch: loaded when first asked for
    if name in ("NORMALIZATIONS", "Normalized", "wrap"):
        from kdbench.models import normalized

        return getattr(normalized, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MODELS", "register_model", "create_model", "Normalized", "NORMALIZATIONS", "wrap"]
