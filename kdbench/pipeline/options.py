"""How to run a suite, as one validated object: the CLI (`kdbench run`) and the Python API
(`kdbench.run`) both build it, so a bad value is the same clear error (exit 2) in both."""

from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kdbench.util.errors import UserError


class RunOptionsError(UserError, ValueError):
    """A run option out of its range (exit 2)."""


class RunOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    data_root: Any = None  # a path, or None: the suite's dataset.root
    out: Any = "results"
    cache_dir: Any = None  # the job store; default out/_cache
    device: str = "auto"
    force: bool = False
    dry_run: bool = False
    deterministic: bool = True
    executor: Literal["local", "ray"] = "local"
    ray_options: Any = None  # executors.ray_config.RayOptions
    eval_group: int | None = Field(None, ge=1, description="evaluation jobs scored together")
    jobs: int = Field(1, ge=1, description="jobs at once (local executor)")
    threads: int | None = Field(None, ge=1, description="torch threads per job")
    track: tuple[str, ...] = ()  # experiment trackers: kdbench.tracking.BACKENDS
    log: Callable[[str], None] = print

    @field_validator("jobs", "threads", "eval_group", mode="before")
    @classmethod
    def _whole(cls, value):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("expected a whole number")
        return value

    @model_validator(mode="after")
    def _jobs_are_local(self):
        if self.jobs > 1 and self.executor == "ray":
            raise ValueError("jobs > 1 runs with the local executor only; on Ray, resources per job pack the jobs")
        return self

    @classmethod
    def of(cls, **values) -> RunOptions:
        """The options, or a RunOptionsError naming each bad one and what it expects."""
        try:
            return cls(**values)
        except ValidationError as exc:
            said = "; ".join(
                f"{e['loc'][0]}={values.get(e['loc'][0])!r}: {_expected(e)}" if e["loc"] else _expected(e)
                for e in exc.errors()
            )
            raise RunOptionsError(said) from None


def _expected(error: dict) -> str:
    if (
        error["type"] in ("greater_than_equal", "int_type", "value_error")
        and error["loc"]
        and error["loc"][0]
        in (
            "jobs",
            "threads",
            "eval_group",
        )
    ):
        return f"expected a whole number of {'jobs' if error['loc'][0] != 'threads' else 'threads'}, 1 or more"
    return error["msg"].removeprefix("Value error, ")
