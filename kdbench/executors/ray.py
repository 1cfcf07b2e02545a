"""The Ray executor: each job (or group of evaluation jobs) is a Ray task whose arguments are its
parent jobs' tasks, so Ray runs it when they have finished, on any node with the resources asked.

Tasks rebuild what they need from a small `WorkerContext` (the suite, the data root, the job
store, the device): each worker process loads the data and the plan once and keeps them for its
next tasks. A task runs its jobs with `store.run_group`, as the local executor does, into the
same content-addressed store, which must be on storage every node sees at the same path: outputs
appear whole or not at all, so a worker lost mid-job leaves nothing behind and Ray reruns the
task (`max_retries`); when two tasks finish the same job, the first rename wins and the other
copy is discarded. Each attempt appends a line (pid, host) to `<store>/attempts/<run>/<hash>`:
the driver shows the running jobs and their nodes from these, and the manifest records the
attempts; the driver removes its run's folder at the end.

Ray is imported only here, and only when `--executor ray` is asked for.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from kdbench.executors.base import Job, WorkerContext, job_groups
from kdbench.executors.ray_config import RayError, RayOptions
from kdbench.executors.store import Store, plan_todo
from kdbench.util.atomic import remove_stale_parts
from kdbench.util.progress import elapsed


# ------------------------------------------------------------------------------------------ worker side
def run_task(ctx: WorkerContext, kind: str, hashes: Sequence[str], force: bool, *parents) -> list[str]:
    """The body of every Ray task: run the jobs `hashes` (all of `kind`) unless already done. `parents`
    are the parent tasks' results, passed only so that Ray orders the tasks."""
    import ray

    ctx.attempts_dir.mkdir(parents=True, exist_ok=True)
    attempt = 1
    for h in hashes:
        with open(ctx.attempts_dir / h, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {socket.gethostname()}\n")
        attempt = max(attempt, len(_attempt_lines(ctx.attempts_dir, h)))
    reserved = {k: round(v, 6) for k, v in sorted(ray.get_runtime_context().get_assigned_resources().items())}
    return ctx.run_jobs(kind, hashes, force, resources=reserved, attempt=attempt)


def _check_shared(ray, paths: dict[str, Path]) -> None:
    """Fail early when a node cannot see a path the tasks need (a probe file written here)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probes = {}
    for what, path in paths.items():
        probe = path / f".kdbench-probe-{uuid.uuid4().hex}"
        try:
            probe.write_text("kdbench")
        except OSError:
            continue  # a read-only data root: the tasks' own errors will name it
        probes[what] = probe

    def sees(files):
        return [Path(f).is_file() for f in files], socket.gethostname()

    remote = ray.remote(num_cpus=0)(sees)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        checks = [
            remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                [str(p) for p in probes.values()]
            )
            for n in nodes
        ]
        for node, (seen, host) in zip(nodes, ray.get(checks, timeout=120)):
            for (what, probe), ok in zip(probes.items(), seen):
                if not ok:
                    raise RayError(
                        f"node {host} ({node.get('NodeManagerAddress')}) cannot see the {what} {probe.parent}: tasks "
                        "read and "
                        "write it there, so it must be on storage every node mounts at the same path (NFS, a parallel "
                        "file "
                        "system); pass --cache-dir and --data-root on such storage"
                    )
    finally:
        for probe in probes.values():
            probe.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ driver side
class RayExecutor:
    """Runs a plan's jobs as Ray tasks; `run` returns the same records as the local executor."""

    def __init__(self, store: Store, context: WorkerContext, options: RayOptions, log: Callable[[str], None] = print):
        self.store, self.context, self.options, self.log = store, context, options, log

    def _runtime_env(self) -> dict | None:
        """Portable mode's environment, set in every worker before it imports torch."""
        env = self.context.environment
        return None if env is None else {"env_vars": env}

    def run(self, jobs, *, force=False):
        try:
            import ray
        except ImportError:
            raise RayError('--executor ray needs Ray: pip install -e ".[ray]"') from None
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(
                    address=self.options.address,
                    include_dashboard=False,
                    log_to_driver=True,
                    runtime_env=self._runtime_env(),
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RayError(f"cannot reach the Ray cluster at {self.options.address}: {exc}") from None
        try:
            self.store.root.mkdir(parents=True, exist_ok=True)
            paths = {"job store": self.store.root}
            if self.context.data_root and Path(self.context.data_root).is_dir():
                paths["data root"] = Path(self.context.data_root)
            _check_shared(ray, paths)
            # Ctrl-C, or a job that failed, must stop what is still queued or running. A driver that
            # connected here ends its Ray job below, and Ray stops that job's tasks and workers with it;
            # ray.cancel on a task that is finishing at that moment can abort the driver inside Ray
            # (2.60: "Tried to complete task that was not pending", ray-project/ray#54846), so it is
            # kept for a caller whose Ray session outlives this run
            return self._run(ray, jobs, force, cancel_on_error=not started_here)
        finally:
            shutil.rmtree(self.context.attempts_dir, ignore_errors=True)
            if started_here:
                ray.shutdown()

    def _run(self, ray, jobs, force, cancel_on_error: bool):
        todo, records = plan_todo(self.store, jobs, force, self.log, self.context.threads)
        opts = self.options
        task = ray.remote(run_task)
        refs: dict[str, object] = {}  # job hash -> the ref of the task that makes it
        group_of: dict[object, list[Job]] = {}
        for group in job_groups(todo, opts.eval_group):
            parents = list({id(r): r for j in group for d in j.deps if (r := refs.get(d.hash)) is not None}.values())
            kind = group[0].kind
            ref = task.options(
                **opts.resources(kind),
                max_retries=opts.max_retries,
                name=group[0].id if len(group) == 1 else f"{group[0].id} +{len(group) - 1}",
            ).remote(self.context, kind, [j.hash for j in group], force, *parents)
            for j in group:
                refs[j.hash] = ref
            group_of[ref] = group
        outstanding, total, began, last = list(group_of), len(todo), time.perf_counter(), 0.0
        self.log(
            f"ray: {total} job(s) in {len(outstanding)} task(s) on {len([n for n in ray.nodes() if n.get('Alive')])} "
            "node(s)"
        )
        try:
            while outstanding:
                ready, outstanding = ray.wait(outstanding, num_returns=1, timeout=2.0)
                for ref in ready:
                    try:
                        ray.get(ref)
                    # the job's own error, raised as the local executor raises it
                    except ray.exceptions.RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        raise (cause if isinstance(cause, Exception) else exc.as_instanceof_cause()) from None
                    except ray.exceptions.RayError as exc:  # lost more often than max_retries allows
                        raise RayError(
                            f"{', '.join(j.id for j in group_of[ref])}: {type(exc).__name__}: {exc}"
                        ) from None
                    for j in group_of[ref]:
                        records[j.hash] = self.store.record(j, cached=False)
                if ready or time.perf_counter() - last > 30:
                    last = time.perf_counter()
                    self.log(self._status(group_of, outstanding, total, began))
        except BaseException:
            if cancel_on_error:
                for ref in outstanding:
                    ray.cancel(ref, force=True)
            raise
        # what the attempts of workers lost on this host left half-built (their retries finished elsewhere)
        lost = remove_stale_parts(self.store.root / "jobs")
        if lost:
            self.log(f"removed {len(lost)} unfinished job folder(s) of lost workers")
        return [records[j.hash] for j in jobs]

    def _status(self, group_of, outstanding, total, began) -> str:
        running, pending = [], 0
        for ref in outstanding:
            for j in group_of[ref]:
                if self.store.done(j):
                    continue
                lines = _attempt_lines(self.context.attempts_dir, j.hash)
                if lines:
                    running.append(f"{j.id} on {lines[-1].split(' ', 1)[-1]}")
                else:
                    pending += 1
        done = total - len(running) - pending
        shown = ", ".join(running[:4]) + (f", +{len(running) - 4}" if len(running) > 4 else "")
        return (
            f"[{done}/{total}] done, {len(running)} running{': ' + shown if running else ''}, {pending} pending "
            f"(elapsed {elapsed(time.perf_counter() - began)})"
        )


def _attempt_lines(folder: Path, job_hash: str) -> list[str]:
    try:
        return (folder / job_hash).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
