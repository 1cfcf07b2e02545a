"""Reading third-party weight files and fitting them into our architectures, with errors that say what is off."""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from kdbench.models.normalized import Normalized
from kdbench.util.errors import UserError

# Training scripts nest the weights under one of these (kuangliu: "net", mdistiller: "model", CRD: "model").
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net")
_DATAPARALLEL_PREFIX = "module."
_SHOW = 5  # keys listed per kind of mismatch; a wrong architecture misses hundreds


class CheckpointError(UserError, ValueError):
    pass


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The flat {name: tensor} state dict inside a .pt/.pth file, container and `module.` prefix removed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        # weights_only: a weights file must never be able to run code when we open it.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path}: holds objects other than tensors and plain containers, which we refuse "
            f"to unpickle (weights_only=True); re-save it as a plain state_dict ({_unpickler_reason(exc)})"
        ) from exc
    except Exception as exc:  # torch raises KeyError/EOFError/RuntimeError/... depending on how the bytes are wrong
        raise CheckpointError(
            f"checkpoint {path}: not a readable torch file ({type(exc).__name__}: {_first_line(exc)})"
        ) from exc
    return _flatten(obj, path)


def _flatten(obj, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"checkpoint {path}: expected a dict of tensors, found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"checkpoint {path}: expected a dict of tensors, but {len(bad)} entries are not "
            f"(first: {', '.join(map(repr, bad[:_SHOW]))}); looked inside keys {_CONTAINER_KEYS}"
        )
    if all(k.startswith(_DATAPARALLEL_PREFIX) for k in obj):
        obj = {k[len(_DATAPARALLEL_PREFIX) :]: v for k, v in obj.items()}
    return dict(obj)


def load_into(net: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Strict load of `state_dict` (read from `source`) into `net`, or a CheckpointError saying what differs.

    A `Normalized` wrapper receives the weights in its `.net`: public checkpoints hold bare networks.
    """
    target = net.net if isinstance(net, Normalized) else net
    arch = getattr(target, "arch_name", type(target).__name__)
    expected = target.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = [f"checkpoint {source} does not fit architecture '{arch}'"]
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                more = f", ... (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:_SHOW])}{more}")
        raise CheckpointError("; ".join(parts))
    try:
        target.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:  # e.g. dtype that cannot be copied; keys and shapes were already fine
        raise CheckpointError(f"checkpoint {source} into '{arch}': {_first_line(exc)}") from exc
    return net


def _unpickler_reason(exc: BaseException) -> str:
    """The blocked global torch names, never its advice (which suggests weights_only=False: the
    one thing a file that smuggles code must not get)."""
    text = str(exc)
    m = re.search(r"(?:unsupported )?GLOBAL ([\w.]+)", text)
    if m:
        return f"it asks for the global {m.group(1)}, which is not a tensor type"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "weights_only" not in ln]
    return next(
        (ln for ln in lines if "unpickler" in ln.lower() or "unsupported" in ln.lower()),
        "it holds objects that are not tensors",
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
