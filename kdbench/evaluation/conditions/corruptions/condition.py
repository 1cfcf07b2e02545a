"""The `corruptions` evaluation condition: one suite entry, one condition per corruption name,
the severities as its levels. Images come generated (seeded per image) or from the released
CIFAR-10-C files; generated sets can be cached on disk, keyed by their content."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
from pydantic import Field, field_validator

from kdbench.evaluation.conditions import register_condition
from kdbench.evaluation.conditions.base import Condition, Params
from kdbench.evaluation.conditions.corruptions import (
    ALL,
    BENCHMARK,
    CORRUPTIONS,
    GENERATOR_VERSION,
    corrupt,
    resolve_names,
)
from kdbench.evaluation.conditions.corruptions.core import SEVERITIES, as_levels
from kdbench.util.atomic import atomic_path
from kdbench.util.lazy import lazy

torch = lazy("torch")


class CorruptionsParams(Params):
    names: Union[Literal["all", "benchmark"], list[str]] = Field(
        "benchmark", description="corruption names, or 'benchmark' (the 15) or 'all' (the 19)"
    )
    severities: list[int] = Field(default_factory=lambda: list(SEVERITIES), min_length=1, description="among 1..5")
    seed: Optional[int] = Field(None, description="corruption seed; default: evaluate.seed")
    source: Literal["generate", "files"] = Field(
        "generate",
        description="generate on the fly (with the parameters of the nearest of the reference's 32, 64 and 224 px "
        "sets), or read the released files: CIFAR-10-C, CIFAR-100-C (.npy), "
        "Tiny-ImageNet-C or ImageNet-C (folders)",
    )
    root: Optional[str] = Field(
        None,
        description="data root holding CIFAR-10-C/, CIFAR-100-C/, Tiny-ImageNet-C/ or ImageNet-C/ (source: files); "
        "default: the dataset's root",
    )
    cache: Optional[str] = Field(None, description="directory caching generated batches, keyed by their content")
    reference_model: Optional[str] = Field(None, description="model whose errors normalise CE and mCE")
    published_errors: Optional[dict[str, list[float]]] = Field(
        None,
        description="a published model's top-1 errors in [0, 1] per corruption at severities 1..5 (ImageNet-C's "
        "AlexNet table): ce_published and mce_published against them",
    )

    @field_validator("published_errors")
    @classmethod
    def _errors_table(cls, v):
        for name, errors in (v or {}).items():
            CORRUPTIONS.get(name)  # an unknown corruption says what was meant
            if len(errors) != len(SEVERITIES) or not all(0 < e <= 1 for e in errors):
                raise ValueError(
                    f"published_errors.{name}: expected 5 errors in (0, 1], one per severity 1..5 "
                    f"(fractions: 0.886, not 88.6); found {errors}"
                )
        return v

    @field_validator("names")
    @classmethod
    def _known(cls, v):
        try:
            return v if isinstance(v, str) else resolve_names(v)
        except KeyError as exc:  # UnknownName: says what was meant
            raise ValueError(str(exc)) from None

    @field_validator("severities")
    @classmethod
    def _levels(cls, v):
        bad = [s for s in v if s not in SEVERITIES]
        if bad:
            raise ValueError(f"severities are 1..5, got {bad}")
        if len(set(v)) != len(v):
            raise ValueError("severities repeat")
        return v


@register_condition("corruptions")
class Corruptions(Condition):
    """Hendrycks & Dietterich's corruptions: one condition per name, severities as levels."""

    group = "corruption"
    Params = CorruptionsParams

    def __init__(self, params: CorruptionsParams, seed: int = 0, corruption: str | None = None):
        super().__init__(params, params.seed if params.seed is not None else seed)
        self.name = corruption or resolve_names(params.names)[0]
        CORRUPTIONS.get(self.name)
        self._files = None
        # (test split, classes), set by the JobRunner: released folders are matched to it by file name
        self.clean = None

    @classmethod
    def build(cls, params: CorruptionsParams, seed: int) -> list["Corruptions"]:
        return [cls(params, seed, n) for n in resolve_names(params.names)]

    def levels(self) -> list:
        return list(self.params.severities)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, indices: torch.Tensor, level) -> torch.Tensor:
        if self.params.source == "files":
            out = self._from_files(y, indices, int(level))
        elif self.params.cache:
            out = self._cached(x, indices, int(level))
        else:
            out = corrupt(self.name, x, indices, int(level), self.seed)
        return out.to(x.device).float().div_(255)

    # ---------------------------------------------------------------------------- internals
    def _cached(self, x, indices, severity):
        clean = as_levels(x).to(torch.uint8).cpu().numpy()
        idx = np.asarray(indices.cpu() if hasattr(indices, "cpu") else indices, dtype=np.int64)
        key = cache_key(self.name, severity, self.seed, clean, idx)
        path = Path(self.params.cache).expanduser() / self.name / f"{key}.npy"
        if path.is_file():
            try:
                arr = np.load(path, allow_pickle=False)
                if arr.shape == clean.shape and arr.dtype == np.uint8:
                    return torch.from_numpy(arr)
            except (OSError, ValueError):
                pass  # unreadable: regenerate and overwrite
        out = corrupt(self.name, x, indices, severity, self.seed)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, out.cpu().numpy())
        return out

    def _from_released_folders(self, release: str, indices, severity: int):
        """Tiny-ImageNet-C, ImageNet-C: the clean test split's images as corrupted in the release's
        folders, found by file name (memory-mapped once decoded); rows by canonical index."""
        from kdbench.data import resolve_root
        from kdbench.data.imagefolder import Listing, Shape
        from kdbench.data.released_c import load_released

        test, classes = self.clean
        if test.names is None:
            raise ValueError(f"{self.dataset}: the test split has no file names to find its {release} copies by")
        if self._files is None:
            side = int(test.images.shape[-1])
            listing = Listing(Path("."), classes, [], list(test.names), test.labels.tolist(), [], [], Shape(side))
            row_of = {int(i): r for r, i in enumerate(test.indices.tolist())}
            self._files = (listing, row_of, {})
        listing, row_of, by_severity = self._files
        if severity not in by_severity:
            name = f"{self.dataset}-c-{self.name}-{severity}"
            root = resolve_root(self.params.root)
            by_severity[severity] = load_released(root, release, listing, self.name, severity, name).images
        rows = torch.tensor([row_of[int(i)] for i in indices.tolist()], dtype=torch.int64)
        return by_severity[severity][rows]

    def _from_files(self, y, indices, severity):
        from kdbench.data import DATASETS, cifar10c, resolve_root

        folders = getattr(DATASETS.get(self.dataset), "released_c", None)
        if folders is not None:
            return self._from_released_folders(folders, indices, severity)
        release = cifar10c.release_of(self.dataset)
        if self._files is None:
            root = resolve_root(self.params.root)
            cifar10c.ensure(root, [self.name], release=release)  # downloads the release when missing and online
            self._files = (
                cifar10c.load_corruption(root, self.name, release),
                cifar10c.load_labels(root, release=release),
            )
        images, labels = self._files
        idx = np.asarray(indices.cpu() if hasattr(indices, "cpu") else indices, dtype=np.int64)
        rows = cifar10c.rows(severity, idx)
        got = labels[rows].astype(np.int64)
        want = y.detach().cpu().numpy().astype(np.int64)
        if not np.array_equal(got, want):
            bad = int(np.flatnonzero(got != want)[0])
            raise ValueError(
                f"{release.folder} labels disagree with the test split at index {int(idx[bad])} "
                f"(file says {got[bad]}, dataset {want[bad]}): the released rows follow torchvision's "
                f"{release.base} test order; is the dataset the full, unshuffled {release.base} test split?"
            )
        return torch.from_numpy(np.ascontiguousarray(images[rows])).permute(0, 3, 1, 2)


def cache_key(name: str, severity: int, seed: int, clean: np.ndarray, indices: np.ndarray) -> str:
    """sha256 of everything that determines a generated batch: code version, corruption,
    severity, seed, the images' indices and their bytes."""
    h = hashlib.sha256(f"kdbench-corruption\x1f{GENERATOR_VERSION}\x1f{name}\x1f{severity}\x1f{seed}\x1f".encode())
    h.update(np.ascontiguousarray(indices, dtype="<i8").tobytes())
    h.update(np.ascontiguousarray(clean, dtype=np.uint8).tobytes())
    return h.hexdigest()


__all__ = ["ALL", "BENCHMARK", "Corruptions", "CorruptionsParams", "cache_key"]
