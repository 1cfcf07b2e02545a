"""What a training method is: it owns the training step's forward pass.

As in mdistiller, `forward_train(student, teachers, batch)` returns the student's logits that
training accuracy is counted on (the clean batch's, or the adversarial batch's for a method that
trains on adversarial examples only) and a dict of named, already weighted losses; the training
loop minimises their sum and logs each. A method that needs more than the student's clean logits
(an attack on the student, the teachers on other inputs, intermediate features) overrides
`forward_train`; the rest only say their loss, `losses(student logits, teacher logits (K, B, C) or
None, labels, progress)`, and the default forward pass feeds it. `progress` runs from 0 at the
first epoch to 1 at the last."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, Field

from kdbench.models.soft_targets import EnsembleMode, Temperature, teacher_log_probs, temperature_at
from kdbench.util.lazy import lazy
from kdbench.util.strict import STRICT

torch = lazy("torch")
F = lazy("torch.nn.functional")


class MethodParams(BaseModel):
    """A method's parameters, as a suite writes them: a pydantic model with a `name` literal (the
    registered name) and the method's own fields, unknown keys refused."""

    model_config = STRICT
    name: str


class DistillParams(MethodParams):
    """What the soft-target methods share: the hard-label weight and the temperature."""

    alpha: float = Field(
        0.1, ge=0, le=1, description="weight of the hard-label cross-entropy; 1 - alpha weighs the soft term"
    )
    temperature: Temperature = Field(4.0, description="T, or a schedule {schedule, start, end}")


@dataclass
class Batch:
    """One training step's data: float images in [0, 1] on the device (augmented when the recipe
    says so), labels, the images' positions in the training set, the epoch's progress, and the
    training seed and step, which seed the step's own random draws (an inner attack's start), so
    that twins draw the same ones; and the epoch, counted from 1 (DKD's warm-up is in epochs)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    progress: float
    seed: int = 0
    step: int = 0
    epoch: int = 1


class Teachers:
    """The teachers of a student: their modules (eval mode, on the device) and, for training
    without augmentation, their outputs on the training set computed once (K, N, C), and their
    features as the first epoch meets each example (a `FeatureCache`), where memory allows."""

    def __init__(self, models: Sequence = (), cached: torch.Tensor | None = None, feature_cache=None):
        self.models, self.cached, self.feature_cache = list(models), cached, feature_cache

    def __bool__(self) -> bool:
        return bool(self.models) or self.cached is not None

    def logits(self, batch: Batch) -> torch.Tensor:
        """(K, B, C) teacher logits on the batch's clean images: from the cache when there is one."""
        if self.cached is not None:
            return self.cached[:, batch.index.to(self.cached.device)].to(batch.x.device)
        with torch.no_grad():
            return torch.stack([t(batch.x) for t in self.models])

    def on(self, x: torch.Tensor) -> torch.Tensor:
        """(K, B, C) teacher logits on other inputs (an adversarial batch, say): never cached."""
        with torch.no_grad():
            return torch.stack([t(x) for t in self.models])

    def features(self, x: torch.Tensor) -> list:
        """Each teacher's `Features` on `x` (logits, stage outputs, embedding): never cached."""
        from kdbench.models.features import features

        with torch.no_grad():
            return [features(t, x) for t in self.models]

    def features_of(self, batch: Batch) -> list:
        """Each teacher's `Features` on the batch's images: from the cache when there is one."""
        if self.feature_cache is None:
            return self.features(batch.x)
        return self.feature_cache.get(batch.index, lambda: self.features(batch.x))


class FeatureCache:
    """Teachers' features on the un-augmented training set, kept as the first epoch meets each
    example, so later epochs do not run the teachers again. A teacher in eval mode gives each
    example the same outputs whatever batch it is in (checked in the tests), so cached features
    are the ones a fresh forward pass would give. Off, after the first batch, when the whole
    set's features would pass `budget` bytes; `say` then receives a line."""

    def __init__(self, n: int, budget: int, say=lambda line: None):
        self.n, self.budget, self.say = n, budget, say
        self.store: list | None = None  # per teacher: its Features' tensors, holding all N examples
        self.filled = None
        self.off = False

    def get(self, index: torch.Tensor, compute) -> list:
        from kdbench.models.features import Features

        if self.store is not None and bool(self.filled[index].all()):
            return [Features.of([t[index] for t in f]) for f in self.store]
        feats = compute()
        if self.off:
            return feats
        if self.store is None:
            tensors = [t for f in feats for t in f.tensors()]
            need = sum(t[0].numel() * t.element_size() for t in tensors) * self.n
            if need > self.budget:
                self.off = True
                self.say(
                    f"teacher features not cached: {need / 2**30:.1f} GiB for {self.n} examples, over the "
                    f"{self.budget / 2**30:.1f} GiB allowed; the teacher runs on every batch"
                )
                return feats
            self.store = [[t.new_empty((self.n, *t.shape[1:])) for t in f.tensors()] for f in feats]
            self.filled = torch.zeros(self.n, dtype=torch.bool, device=index.device)
        for f, into in zip(feats, self.store):
            for t, room in zip(f.tensors(), into):
                room[index] = t
        self.filled[index] = True
        return feats


class Method:
    """A training method: its `Params`, its role in comparisons and its twin, and the training
    step's forward pass (`forward_train`), or only its losses (`losses`) on the student's clean
    logits and the teachers'. Register a subclass with `@register_method("name")`."""

    name: ClassVar[str]
    needs_teacher: ClassVar[bool] = False
    # What a student trained this way is in a comparison: "distilled" (it learns from a teacher),
    # "baseline" (hard labels only: the twin), or "control" (no teacher, but not the twin either:
    # label smoothing asks how much of KD's effect soft targets without a teacher already give).
    role: ClassVar[str] = "control"
    # The method of the student this one is compared with by default (same architecture): the
    # hard-label baseline for clean-data methods, adversarial training for robust ones. A method
    # whose role is "baseline" is itself a twin and has none.
    twin: ClassVar[str] = "baseline"
    # A method that reads the teachers' intermediate features runs them on every batch (their
    # logits on the training set are not cached for it) and learns from exactly one teacher.
    uses_features: ClassVar[bool] = False
    # A method whose inner attack also differentiates through the teachers (AdaAD): the estimate
    # prices their gradient passes.
    attacks_teacher: ClassVar[bool] = False
    Params: ClassVar[type[MethodParams]]

    def __init__(self, params: MethodParams, ensemble: EnsembleMode = "mean_probs"):
        self.params = params
        self.ensemble = ensemble

    @classmethod
    def budget_problems(cls, params: MethodParams, n_train: int | None, batch_size: int) -> list[str]:
        """What training with these parameters would need that no machine has (memory known in
        advance from the data's size and the batch), said when the suite is validated."""
        return []

    def setup(self, student, teachers: Teachers, labels: torch.Tensor):
        """What the method trains beside the student (connectors, embeddings), as one module, or
        None. Called once before training with the student (on its device), its teachers and the
        training labels (N,); its parameters join the student's in the optimiser, with the
        recipe's learning rate and weight decay, and it is dropped when training ends."""
        return None

    def pretrain_epochs(self) -> int:
        """Epochs of a stage before training (`training.loop.pretrain`): AB, FSP and FT train part
        of the student, or a module of their own, on their feature loss first. 0: none. The
        parameters that set it are the method's, so a job's hash covers the stage."""
        return int(getattr(self.params, "init_epochs", 0))

    def pretrain_lr(self) -> float | None:
        """The pre-training stage's constant learning rate; None: the recipe's `lr`."""
        return getattr(self.params, "init_lr", None)

    def pretrain_setup(self, student):
        """The module whose parameters the pre-training stage trains (after `setup`); it may
        hold the student, is in training mode during the stage and in eval mode after it."""
        raise NotImplementedError

    def pretrain_losses(self, student, teachers: Teachers, batch: Batch) -> dict[str, torch.Tensor]:
        """The named losses of one pre-training step."""
        raise NotImplementedError

    def forward_train(self, student, teachers: Teachers, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The student's logits on `batch.x` and the named, weighted losses of this step."""
        logits = student(batch.x)
        t_logits = teachers.logits(batch) if self.needs_teacher else None
        return logits, self.losses(logits, t_logits, batch.y, batch.progress)

    def losses(self, student_logits, teacher_logits, labels, progress: float) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class CEWeightedParams(MethodParams):
    """Methods written, as mdistiller writes them, as a weighted hard-label cross-entropy plus their own terms."""

    ce_weight: float = Field(1.0, ge=0, description="weight of the hard-label cross-entropy")


class PretrainParams(CEWeightedParams):
    """What the methods with a pre-training stage share (RepDistiller's `init`: 30 epochs)."""

    init_epochs: int = Field(
        30, ge=0, le=10_000, description="epochs of the pre-training stage, before the student's training (30)"
    )
    init_lr: float | None = Field(
        None, gt=0, description="the pre-training stage's constant learning rate; null: the recipe's lr"
    )


class TeacherMethod(Method):
    """A method that learns from teachers: a distilled student, held against its baseline twin."""

    needs_teacher = True
    role = "distilled"


class FeatureMethod(TeacherMethod):
    """A method that learns from one teacher's intermediate features (`kdbench.models.features`).

    Stages are paired from the deepest: when the two networks have different numbers of stages,
    the student's last stage meets the teacher's last, and so on back."""

    uses_features = True


class SoftTargetMethod(TeacherMethod):
    """alpha * CE(z_s, y) + (1 - alpha) * T^2 * soft(z_s, p_t^T, T): the frame kd and kd_mse share.

    T^2 keeps the soft term's gradients on the scale of the hard term's as T grows (Hinton et al.).
    """

    soft_name: ClassVar[str]

    def soft(self, student_logits: torch.Tensor, teacher_log_p: torch.Tensor, t: float) -> torch.Tensor:
        raise NotImplementedError

    def losses(self, student_logits, teacher_logits, labels, progress):
        a = self.params.alpha
        t = temperature_at(self.params.temperature, progress)
        soft = self.soft(student_logits, teacher_log_probs(teacher_logits, t, self.ensemble), t)
        return {"ce": a * F.cross_entropy(student_logits, labels), self.soft_name: (1 - a) * t * t * soft}


class RobustDistillMethod(TeacherMethod):
    """What ard and rslad share: a teacher, and adversarial training (pgd_at) as the twin they are
    held against, at the same architecture, recipe, seed and attack budget."""

    twin = "pgd_at"


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor, reduction: str = "batchmean") -> torch.Tensor:
    """KL(p || q) = sum_c p_c (log p_c - log q_c) from log-probabilities (B, C), averaged over the
    batch; reduction "mean" also divides by the number of classes C, as nn.KLDivLoss() does by
    default (and as the ARD and RSLAD authors' code does)."""
    kl = F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    return kl / log_q.shape[1] if reduction == "mean" else kl
