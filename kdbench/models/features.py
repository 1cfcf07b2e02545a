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
    (each (B, C_i, H_i, W_i)) and the pooled embedding the classifier reads (B, D); with
    `stem=True` also the stem's output (what the first stage reads; FSP reads it). With
    `preact=True` the stages are their pre-activations: the input of the ReLU each stage ends in
    (AB reads these). A student's carry gradients; a teacher's (`Teachers.features`,
    `Teachers.features_of`) do not."""

    logits: torch.Tensor
    stages: list[torch.Tensor]  # (B, C_i, H_i, W_i), shallow to deep
    embedding: torch.Tensor  # (B, D): the pooled features the classifier reads
    stem: torch.Tensor | None = None  # (B, C_0, H_0, W_0): the first stage's input (the image, with no stem)

    def tensors(self) -> list[torch.Tensor]:
        """logits, stages and embedding (what the teachers' feature cache holds; never the stem)."""
        return [self.logits, *self.stages, self.embedding]

    @classmethod
    def of(cls, tensors: list[torch.Tensor]) -> Features:
        """The inverse of `tensors()`."""
        return cls(tensors[0], list(tensors[1:-1]), tensors[-1])


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
    def __init__(self, model: nn.Module, preact: bool, stem: bool):
        from torchvision.models.feature_extraction import create_feature_extractor

        prefix = "net." if hasattr(model, "net") else ""
        stages = [prefix + s for s in stage_names(model)]
        graph = _Graph(model)
        stem_node = graph.input_of(stages[0]) if stem else None
        if preact:
            stages = [graph.preactivation(s) for s in stages]
        embedding = prefix + embedding_name(model)
        nodes = {s: f"stage{i}" for i, s in enumerate(stages)} | {embedding: "embedding", graph.last: "logits"}
        if stem_node is not None:
            nodes[stem_node] = "stem"
        self.stem, self.stem_is_input = stem, stem and stem_node is None
        self.n_stages = len(stages)
        self.graph = create_feature_extractor(model, return_nodes=nodes)

    def __call__(self, model: nn.Module, x: torch.Tensor) -> Features:
        self.graph.train(model.training)
        out = self.graph(x)
        stem = (x if self.stem_is_input else out["stem"]) if self.stem else None
        return Features(out["logits"], [out[f"stage{i}"] for i in range(self.n_stages)], out["embedding"], stem)


class _Graph:
    """A model's traced graph, with torchvision's node names, to find nodes around a stage."""

    def __init__(self, model: nn.Module):
        from torchvision.models.feature_extraction import NodePathTracer

        tracer = NodePathTracer()
        self.nodes = list(tracer.trace(model).nodes)
        self.name = tracer.node_to_qualname
        self.last = self.name[[n for n in self.nodes if n.op != "output"][-1]]  # the head
        self.model = type(getattr(model, "net", model)).__name__
        self.modules = dict(model.named_modules())

    def _inside(self, stage: str) -> list:
        return [n for n in self.nodes if self.name.get(n) == stage or self.name.get(n, "").startswith(stage + ".")]

    def input_of(self, stage: str) -> str | None:
        """The node the stage's first operation reads; None where that is the model's input."""
        first = self._inside(stage)[0]
        source = next(a for a in first.args if hasattr(a, "op"))
        return None if source.op == "placeholder" else self.name[source]

    def preactivation(self, stage: str) -> str:
        last = self._inside(stage)[-1]
        relu = (
            (last.op == "call_function" and getattr(last.target, "__name__", "") in ("relu", "relu_"))
            or (last.op == "call_method" and last.target in ("relu", "relu_"))
            or (last.op == "call_module" and isinstance(self._module(last), nn.ReLU))
        )
        if not relu or not hasattr(last.args[0], "op"):
            raise FeatureError(
                f"{self.model}: stage {stage!r} does not end in a ReLU, so it has no pre-activation "
                f"(its last operation is {self.name[last]!r}); give feature_stages that end in one"
            )
        return self.name[last.args[0]]

    def _module(self, node):
        return self.modules.get(str(node.target))


_EXTRACTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def features(model: nn.Module, x: torch.Tensor, preact: bool = False, stem: bool = False) -> Features:
    """The logits, stage outputs (or their pre-activations), embedding and, with `stem`, the stem's
    output of `model` on `x`, in one forward pass (traced once per model and kind)."""
    per_model = _EXTRACTORS.setdefault(model, {})
    kind = (preact, stem)
    if kind not in per_model:
        per_model[kind] = _Extractor(model, preact, stem)
    return per_model[kind](model, x)


def match_sizes(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two feature maps at one spatial size: the larger average-pooled to the smaller's (as
    mdistiller and RepDistiller pair stages of different resolutions)."""
    if a.shape[2] > b.shape[2]:
        a = torch.nn.functional.adaptive_avg_pool2d(a, b.shape[2:])
    elif a.shape[2] < b.shape[2]:
        b = torch.nn.functional.adaptive_avg_pool2d(b, a.shape[2:])
    return a, b


def feature_shapes(model: nn.Module, size: tuple[int, int] = (32, 32), stem: bool = False) -> Features:
    """The features of one blank image (eval mode, no gradients), for sizing a method's connectors."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return features(model, torch.zeros(2, 3, *size, device=device), stem=stem)
    finally:
        model.train(was_training)
