"""The suite's `dataset:` section."""

from __future__ import annotations

from typing import Optional, Union

from pydantic import Field, field_validator, model_validator

from kdbench.config.fields import Seed, Strict, datasets, registered_in


class DatasetSpec(Strict):
    name: str = Field("cifar10", description="cifar10, cifar100, tinyimagenet, imagenet, imagefolder or synthetic")
    root: Optional[str] = Field(None, description="overrides --data-root / $KDBENCH_DATA_ROOT / the user cache")
    download: bool = Field(False, description="let torchvision download CIFAR-10 (CIFAR-100) when absent")
    train_subset: Optional[int] = Field(None, ge=1, description="seeded, class-stratified subset of train")
    test_subset: Optional[int] = Field(None, ge=1, description="seeded, class-stratified subset of test")
    subset_seed: Seed = 0
    params: dict[str, Union[int, float, str]] = Field(
        default_factory=dict, description="dataset parameters (synthetic: n_train, n_test, seed, noise)"
    )

    _name = field_validator("name")(registered_in(datasets))

    @model_validator(mode="after")
    def _dataset_params(self):
        from kdbench.data import DataError, check_params

        try:
            check_params(self.name, self.params, self.train_subset, self.test_subset)
        except DataError as exc:
            raise ValueError(str(exc)) from None
        return self
