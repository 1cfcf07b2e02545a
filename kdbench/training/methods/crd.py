from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from kdbench.training.methods import register_method
from kdbench.training.methods.base import CEWeightedParams, FeatureMethod
from kdbench.util.lazy import lazy
from kdbench.util.seeding import generator

torch = lazy("torch")
nn = lazy("torch.nn")
F = lazy("torch.nn.functional")
feats = lazy("kdbench.models.features")


class CRDParams(CEWeightedParams):
    name: Literal["crd"] = "crd"
    feat_weight: float = Field(0.8, ge=0, description="weight of the contrastive loss")
    feat_dim: int = Field(128, ge=1, le=65_536, description="width of the two embedding heads")
    nce_k: int = Field(16384, ge=1, le=1_048_576, description="negatives per example, drawn from the other classes")
    nce_t: float = Field(0.07, gt=0, description="temperature of the critic")
    momentum: float = Field(0.5, ge=0, lt=1, description="of the memory bank's update")


MEMORY_LIMIT = 128 * 2**30  # bytes: more than one H200's memory, far more than a CPU run can hold


def crd_memory(p: CRDParams, n_train: int, batch_size: int) -> dict[str, int]:
    """Bytes of float32 CRD holds: its two memory banks (N x feat_dim each) and one step's
    gathered negatives (batch x (nce_k + 1) x feat_dim, for each network)."""
    return {
        "memory banks": 2 * n_train * p.feat_dim * 4,
        "negatives per step": 2 * batch_size * (p.nce_k + 1) * p.feat_dim * 4,
    }


def crd_modules(s_dim: int, t_dim: int, p: CRDParams, labels):
    """The two embedding heads (trained) and the memory banks of the training set (not trained)."""
    m = nn.Module()
    n = len(labels)
    m.embed_s, m.embed_t = nn.Linear(s_dim, p.feat_dim), nn.Linear(t_dim, p.feat_dim)
    bound = 1.0 / math.sqrt(p.feat_dim / 3)  # the reference's uniform start of the banks
    m.register_buffer("memory_s", torch.rand(n, p.feat_dim).mul_(2 * bound).sub_(bound))
    m.register_buffer("memory_t", torch.rand(n, p.feat_dim).mul_(2 * bound).sub_(bound))
    # the normalising constants Z, fixed on the first batch (negative until then)
    m.register_buffer("z", torch.full((2,), -1.0))
    # the training set sorted by class, and each class's start and size in that order: buffers, so
    # that they follow the module to the device and the negatives are drawn there without a sync
    labels = labels.cpu()
    counts = torch.bincount(labels)
    if int((counts > 0).sum()) < 2:
        raise feats.FeatureError(
            "crd draws its negatives from the other classes: the training set needs images of two classes or more"
        )
    m.register_buffer("by_class", torch.argsort(labels, stable=True), persistent=False)
    m.register_buffer("class_start", torch.cumsum(counts, 0) - counts, persistent=False)
    m.register_buffer("class_count", counts, persistent=False)
    return m


@register_method("crd")
class CRD(FeatureMethod):
    """Contrastive representation distillation (Tian et al., 2020), as mdistiller and RepDistiller:
    ce_weight * CE + feat_weight * (L(h_s) + L(h_t)).

    Student and teacher embeddings go through linear heads to `feat_dim` and are L2-normalised.
    Each example's positive is its own entry in the other network's memory bank; its `nce_k`
    negatives are the entries of training images of other classes, drawn uniformly with
    replacement ("exact" mode). The critic is h = exp(<v, m> / nce_t) / Z, Z fixed on the first
    batch to the mean of exp(<v, m> / nce_t) times N. L is the NCE loss with noise 1/N:
    -(1/B) sum_b [log(h_pos / (h_pos + K/N)) + sum_k log((K/N) / (h_neg_k + K/N))]. After the
    step each example's bank entries move to momentum * m + (1 - momentum) * v, renormalised.
    The heads train with the student; the banks are not trained; all are dropped after training.
    """

    Params = CRDParams

    @classmethod
    def budget_problems(cls, params, n_train, batch_size):
        need = crd_memory(params, n_train or 0, batch_size)
        return [
            f"{what} would take {size / 2**30:.1f} GiB (feat_dim {params.feat_dim}, nce_k {params.nce_k}, "
            f"{n_train} training images, batch {batch_size}); the limit is {MEMORY_LIMIT / 2**30:.0f} GiB"
            for what, size in need.items()
            if size > MEMORY_LIMIT
        ]

    def setup(self, student, teachers, labels):
        s = feats.feature_shapes(student).embedding.shape[1]
        t = feats.feature_shapes(teachers.models[0]).embedding.shape[1]
        self.parts = crd_modules(s, t, self.params, labels)
        return self.parts

    def forward_train(self, student, teachers, batch):
        f_s = feats.features(student, batch.x)
        t = teachers.features_of(batch)[0].embedding
        m, p = self.parts, self.params
        v_s, v_t = F.normalize(m.embed_s(f_s.embedding), dim=1), F.normalize(m.embed_t(t), dim=1)
        idx = contrast_indices(m, batch.index, batch.y, p.nce_k, generator(batch.seed, "crd", batch.step))
        out_s = critic(m.memory_t[idx], v_s, p.nce_t)  # the student's embedding against the teacher's bank
        out_t = critic(m.memory_s[idx], v_t, p.nce_t)
        with torch.no_grad():
            n = len(m.memory_s)
            # Z from the first batch, as the reference sets it (a select, not an `if`: no device sync)
            m.z.copy_(torch.where(m.z < 0, torch.stack([out_s.mean(), out_t.mean()]) * n, m.z))
            update_memory(m.memory_s, batch.index, v_s, p.momentum)
            update_memory(m.memory_t, batch.index, v_t, p.momentum)
        loss = nce_loss(out_s / m.z[0], n) + nce_loss(out_t / m.z[1], n)
        return f_s.logits, {"ce": p.ce_weight * F.cross_entropy(f_s.logits, batch.y), "contrast": p.feat_weight * loss}


def contrast_indices(m, index, labels, k: int, gen):
    """(B, 1 + k): each example's own index, then k indices of other classes' images, uniform with
    replacement. The uniform draws come from `gen` on the CPU (the same on any device) and are
    mapped to indices on the device of `index`."""
    others = len(m.by_class) - m.class_count[labels]  # how many images are of another class
    r = (torch.rand(len(index), k, generator=gen).to(index.device) * others[:, None]).long()
    # skip over the example's own class block in the class-sorted order
    r = r + (r >= m.class_start[labels][:, None]) * m.class_count[labels][:, None]
    return torch.cat([index[:, None], m.by_class[r]], dim=1)


def critic(bank_rows, v, temperature: float):
    """exp(<m, v> / T) for the (B, 1 + K, D) bank rows and the (B, D) embeddings: (B, 1 + K)."""
    return torch.exp(torch.bmm(bank_rows.detach(), v[:, :, None]).squeeze(2) / temperature)


def nce_loss(h, n: int):
    """-(1/B) sum_b [log(h_b0 / (h_b0 + K/N)) + sum_k log((K/N) / (h_bk + K/N))], with the reference's eps."""
    eps = 1e-7
    noise = (h.shape[1] - 1) / n
    pos = torch.log(h[:, 0] / (h[:, 0] + noise + eps))
    neg = torch.log(noise / (h[:, 1:] + noise + eps))
    return -(pos.sum() + neg.sum()) / len(h)


def update_memory(bank, index, v, momentum: float) -> None:
    rows = bank[index] * momentum + v.detach() * (1 - momentum)
    bank[index] = F.normalize(rows, dim=1)
