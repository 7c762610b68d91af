"""Sweep launchers: run a list of :class:`~copernicus_bench.runner.RunSpec` jobs locally or on Ray.

* ``local``: one job after another in this process; each outcome is reported on stderr as it finishes. A
  model whose weights are missing fails fast (its other jobs are reported failed without being tried).
* ``ray``: one Ray task per (model, task, seed) job on the cluster at ``ray_address`` (default: a local Ray
  instance started here, no dashboard, a small object store, no worker logs on the driver), with
  ``num_gpus=1`` per task when the cluster has GPUs, otherwise CPU. Workers write result files themselves
  into the shared results folder (the runner writes atomically, and skips finished results: status
  ``skipped``). Paths in the specs are made absolute on the driver, so on a multi-machine cluster they must
  name a shared file system (as ``--cache-dir`` does). A failed job is reported and the others go on.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import CbenchError

if TYPE_CHECKING:
    from .runner import RunOutcome, RunSpec

LAUNCHERS = ("local", "ray")
RAY_CONNECT_TIMEOUT_S = 10.0
RAY_OBJECT_STORE_BYTES = 128 * 1024**2
RAY_INSTALL_HINT = 'pip install "copernicus-bench[ray]"'

RunFn = Callable[["RunSpec"], "RunOutcome"]


def launch(specs: Sequence[RunSpec], launcher: str = "local", ray_address: str | None = None,
           progress: bool = True, run_fn: RunFn | None = None) -> list[RunOutcome]:
    """Run every spec; outcomes come back in the order of ``specs``.

    ``run_fn`` replaces :func:`copernicus_bench.runner.run_one` (tests; it must never raise for a job
    failure, like ``run_one``; an exception is nevertheless turned into a ``failed`` outcome).
    """
    if launcher not in LAUNCHERS:
        raise CbenchError(f"--launcher {launcher!r} is unknown; use one of {', '.join(LAUNCHERS)}")
    specs = list(specs)
    if launcher == "local":  # in-process: the runner's own progress bars are shown
        return _launch_local(specs, progress, run_fn or (lambda spec: _default_run_fn(spec, progress)))
    return _launch_ray(specs, ray_address, progress, run_fn)


# ----------------------------------------------------------------------------- shared helpers
def _default_run_fn(spec: RunSpec, progress: bool = False) -> RunOutcome:
    from .runner import run_one

    return run_one(spec, progress=progress)


def _call(run_fn: RunFn, spec: RunSpec) -> RunOutcome:
    """Run one job; an unexpected exception becomes a one-line ``failed`` outcome."""
    try:
        return run_fn(spec)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one job must not stop a sweep
        return _failed(spec, f"{type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _failed(spec: RunSpec, message: str, kind: str = "internal") -> RunOutcome:
    from .runner import RunOutcome

    return RunOutcome(spec, "failed", None, message, None, error_kind=kind)


def report(outcome: RunOutcome, index: int, total: int) -> None:
    """One stderr line per finished job."""
    s = outcome.spec
    job = f"[{index}/{total}] {s.model} {s.task} seed {s.seed}"
    if outcome.status == "done":
        metric = f"{outcome.metric:.3f}" if outcome.metric is not None else "?"
        line = f"{job}: done, {metric} → {outcome.path}"
    elif outcome.status == "skipped":
        line = f"{job}: skipped ({outcome.message})"
    elif outcome.status == "not-applicable":
        line = f"{job}: not applicable ({outcome.message})"
    else:
        line = f"{job}: FAILED: {outcome.message}"
    print(line, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- local
def _launch_local(specs: list[RunSpec], progress: bool, run_fn: RunFn | None) -> list[RunOutcome]:
    run_fn = run_fn or _default_run_fn
    outcomes: list[RunOutcome] = []
    dead: dict[str, str] = {}  # model -> weights error: its other jobs would fail the same way
    for i, spec in enumerate(specs, 1):
        if spec.model in dead:
            outcome = _failed(spec, dead[spec.model], kind="weights")
        else:
            outcome = _call(run_fn, spec)
            if outcome.status == "failed" and getattr(outcome, "error_kind", None) == "weights":
                dead[spec.model] = outcome.message
        outcomes.append(outcome)
        if progress:
            report(outcome, i, len(specs))
    return outcomes


# ----------------------------------------------------------------------------- ray
def _absolute(spec: RunSpec) -> RunSpec:
    """Paths as the driver sees them (Ray workers do not run in the driver's working directory)."""
    changes: dict[str, Any] = {"out_dir": os.path.abspath(spec.out_dir)}
    for name in ("data_root", "weights_dir", "cache_dir"):
        value = getattr(spec, name)
        if value is not None:
            changes[name] = os.path.abspath(value)
    return dataclasses.replace(spec, **changes)


def _check_reachable(address: str, timeout: float) -> None:
    """Fail in ``timeout`` seconds with one sentence when nothing listens at ``host:port``."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return  # let Ray interpret it (e.g. "auto")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise CbenchError(f"Ray is not reachable at --ray-address {address} ({exc.strerror or exc}); start the "
                          "cluster ('ray start --head') or omit --ray-address to start a local Ray") from None


def _ray_env() -> dict[str, str]:
    """Our environment variables travel with the tasks (folders, debug switch)."""
    return {k: v for k, v in os.environ.items() if k.startswith("CBENCH_")}


def _init_ray(ray: Any, address: str | None) -> bool:
    """Connect to (or start) Ray; True when this call started it (so it is shut down afterwards)."""
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": _ray_env()} if _ray_env() else None
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                                  runtime_env=runtime_env, configure_logging=True)
    if address:
        _check_reachable(address, RAY_CONNECT_TIMEOUT_S)
    else:
        kwargs["object_store_memory"] = RAY_OBJECT_STORE_BYTES
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, TimeoutError, OSError, RuntimeError, ValueError) as exc:
        where = f"at --ray-address {address}" if address else "locally"
        raise CbenchError(f"could not start or reach Ray {where}: {type(exc).__name__}: {_first_line(exc)}") from None
    return True


def _launch_ray(specs: list[RunSpec], address: str | None, progress: bool, run_fn: RunFn | None) -> list[RunOutcome]:
    try:
        import ray
    except ImportError:
        raise CbenchError(f"the Ray launcher needs Ray, which is not installed; {RAY_INSTALL_HINT}") from None
    if not specs:
        return []
    started = _init_ray(ray, address)
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        options: dict[str, Any] = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": 1}
        options["max_retries"] = 0  # a job failure is a result (reported), not something to retry
        fn = run_fn or _default_run_fn
        remote = ray.remote(_ray_job).options(**options)
        pending = {remote.remote(fn, _absolute(s)): i for i, s in enumerate(specs)}
        if progress:
            where = address or "a local Ray instance"
            print(f"cbench: {len(specs)} job(s) on {where} ({'1 GPU' if gpus >= 1 else '1 CPU'} each)",
                  file=sys.stderr, flush=True)
        outcomes: list[RunOutcome | None] = [None] * len(specs)
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - worker crash, OOM kill, unpicklable result
                    outcome = _failed(specs[i], f"Ray task failed: {_ray_error(exc)}")
                else:
                    outcome = dataclasses.replace(outcome, spec=specs[i])
                outcomes[i] = outcome
                done += 1
                if progress:
                    report(outcome, done, len(specs))
        return [o for o in outcomes if o is not None]
    finally:
        if started:
            ray.shutdown()


def _ray_error(exc: BaseException) -> str:
    """One line for a Ray task error: its cause, not Ray's multi-line traceback banner."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and cause is not exc:
        exc = cause
    lines = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).splitlines() if ln.strip()]
    meaningful = [ln for ln in lines if not ln.startswith(("ray::", "File ", "Traceback"))]
    return f"{type(exc).__name__}: {meaningful[-1] if meaningful else ''}".rstrip(": ")


def _ray_job(run_fn: RunFn, spec: RunSpec) -> RunOutcome:
    """What each Ray task runs (in a worker process)."""
    t0 = time.perf_counter()
    outcome = _call(run_fn, spec)
    extra = dict(getattr(outcome, "extra", {}) or {})
    extra.setdefault("worker_pid", os.getpid())
    extra.setdefault("wall_s", round(time.perf_counter() - t0, 3))
    return dataclasses.replace(outcome, extra=extra)
