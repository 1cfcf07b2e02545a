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
# the pooling before a head, whose output is no stage (timm's SelectAdaptivePool2d included)
GLOBAL_POOLS = ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "SelectAdaptivePool2d")


class FeatureError(UserError, ValueError):
    """A model that cannot give the features a method asks for."""


@dataclass
class Features:
    """What `features(model, x)` returns: the logits (B, classes), the stage outputs shallow to deep
    (each (B, C_i, H_i, W_i)) and the pooled embedding the classifier reads (B, D). A student's
    carry gradients; a teacher's (`Teachers.features`, `Teachers.features_of`) do not."""

    logits: torch.Tensor
    stages: list[torch.Tensor]  # (B, C_i, H_i, W_i), shallow to deep
    embedding: torch.Tensor  # (B, D): the pooled features the classifier reads


def stage_names(model: nn.Module) -> tuple[str, ...]:
    """The stage modules of a wrapped (or bare) network: those its family or the suite names
    (`feature_stages`), else the last layer at each resolution (`infer_features`)."""
    net = getattr(model, "net", model)
    stages = getattr(net, "feature_stages", None)
    if not stages:
        stages, net.feature_embedding = infer_features(net)
        net.feature_stages = stages
    return tuple(stages)


def embedding_name(model: nn.Module) -> str:
    net = getattr(model, "net", model)
    stage_names(model)
    return getattr(net, "feature_embedding", EMBEDDING)


def infer_features(net: nn.Module, size: tuple[int, int] = (32, 32)) -> tuple[tuple[str, ...], str]:
    """For a network that names no stages (torchvision's, timm's, a plugin's): the last node at
    each spatial resolution before its head, shallow to deep, and the node its last linear layer
    reads (the embedding). Found by tracing it once on a blank batch."""
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    nodes = get_graph_node_names(net)[1]
    modules = dict(net.named_modules())
    heads = [i for i, n in enumerate(nodes) if isinstance(modules.get(n), nn.Linear)]
    if not heads or heads[-1] == 0:
        raise FeatureError(f"{type(net).__name__}: no linear head found, so no embedding for feature-based methods")
    embedding = nodes[heads[-1] - 1]
    before = [n for n in nodes[: heads[-1]] if n != nodes[0]]  # not the input
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = create_feature_extractor(net, return_nodes=before)(torch.zeros(2, 3, *size, device=_device(net)))
    finally:
        net.train(was_training)
    last_at: dict[tuple[int, int], str] = {}
    for name in before:
        value = out[name]
        if not isinstance(value, torch.Tensor) or value.dim() != 4 or type(modules.get(name)).__name__ in GLOBAL_POOLS:
            continue
        last_at[tuple(value.shape[-2:])] = name  # later nodes at the same resolution replace earlier ones
    stages = tuple(dict.fromkeys(last_at.values()))
    if not stages:
        raise FeatureError(f"{type(net).__name__}: no 4-D feature maps before its head; give feature_stages")
    return stages, embedding


def _device(net: nn.Module) -> torch.device:
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class _Extractor:
    def __init__(self, model: nn.Module):
        from torchvision.models.feature_extraction import (
            create_feature_extractor,
            get_graph_node_names,
        )

        prefix = "net." if hasattr(model, "net") else ""
        stages = [prefix + s for s in stage_names(model)]
        logits = get_graph_node_names(model)[1][-1]  # the graph's last node: the head
        embedding = prefix + embedding_name(model)
        nodes = {s: f"stage{i}" for i, s in enumerate(stages)} | {embedding: "embedding", logits: "logits"}
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
