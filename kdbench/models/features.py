"""Intermediate features of the registered architectures, for feature-based distillation.

Each family names its stages in a class attribute, `feature_stages`: the modules whose outputs end
its resolution stages, shallow to deep (for the CIFAR ResNets layer1..3, as mdistiller's `feats`
without the stem). Every family ends in a `flatten` node, the pooled vector the head reads
(mdistiller's `pooled_feat`). torchvision's `create_feature_extractor` (torch.fx) reads these from
the wrapped model without hooks; the extractor shares the model's parameters and buffers, and
follows the model's train/eval mode at each call.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from kdbench.util.errors import UserError

EMBEDDING = "flatten"


class FeatureError(UserError, ValueError):
    """A model that cannot give the features a method asks for."""


@dataclass
class Features:
    logits: torch.Tensor
    stages: list[torch.Tensor]  # (B, C_i, H_i, W_i), shallow to deep
    embedding: torch.Tensor  # (B, D): the pooled features the classifier reads


def stage_names(model: nn.Module) -> tuple[str, ...]:
    """The stage modules of a wrapped (or bare) registered architecture."""
    net = getattr(model, "net", model)
    stages = getattr(type(net), "feature_stages", None)
    if not stages:
        raise FeatureError(
            f"{type(net).__name__} names no feature stages (feature_stages); feature-based methods "
            f"need a registered kdbench architecture, not a RobustBench zoo model"
        )
    return tuple(stages)


class _Extractor:
    def __init__(self, model: nn.Module):
        from torchvision.models.feature_extraction import (
            create_feature_extractor,
            get_graph_node_names,
        )

        prefix = "net." if hasattr(model, "net") else ""
        stages = [prefix + s for s in stage_names(model)]
        logits = get_graph_node_names(model)[1][-1]  # the graph's last node: the head
        nodes = {s: f"stage{i}" for i, s in enumerate(stages)} | {prefix + EMBEDDING: "embedding", logits: "logits"}
        self.n_stages = len(stages)
        self.graph = create_feature_extractor(model, return_nodes=nodes)

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Features:
        self.graph.train(model.training)
        out = self.graph(x)
        return Features(out["logits"], [out[f"stage{i}"] for i in range(self.n_stages)], out["embedding"])


_EXTRACTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def features(model: nn.Module, x: torch.Tensor) -> Features:
    """The logits, stage outputs and embedding of `model` on `x`, in one forward pass (traced once per model)."""
    if model not in _EXTRACTORS:
        _EXTRACTORS[model] = _Extractor(model)
    return _EXTRACTORS[model](model, x)


def feature_shapes(model: nn.Module, size: tuple[int, int] = (32, 32)) -> Features:
    """The features of one blank image (eval mode, no gradients), for sizing a method's connectors."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return features(model, torch.zeros(2, 3, *size, device=device))
    finally:
        model.train(was_training)
