"""Ray plumbing: start or join a cluster, one actor per pool slot, actor deaths as :class:`WorkerLost`.

``import ray`` happens here only, lazily, with an install hint. Each actor wraps an *item runner* built by
a module-level factory (``factory(**kwargs)``, run inside the actor) whose ``run(index, seed)`` returns
plain data: bytes and JSON-safe dicts. A factory error is kept and raised by the first call, so a bad
config is one error line on the driver instead of an endless restart loop.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from vlatwin.errors import VlatwinError
from vlatwin.scale.scheduler import WorkerLost

#: Environment every Ray worker gets: one BLAS/OpenMP thread per actor (actors are the parallelism),
#: and the driver's Warp kernel cache when it has one (kernels compile once per node, not per actor).
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}
LOCAL = "local"


def require_ray():
    from vlatwin._deps import require

    return require("ray", extra="ray")


def worker_env() -> dict[str, str]:
    env = dict(THREAD_ENV)
    if os.environ.get("WARP_CACHE_PATH"):
        env["WARP_CACHE_PATH"] = os.environ["WARP_CACHE_PATH"]
    return env


def worker_setup() -> None:
    """Runs first in every Ray worker process (``worker_process_setup_hook``) and in the driver."""
    _hide_broken_pyarrow()


def _hide_broken_pyarrow() -> None:
    """Ray's serializer imports pyarrow when it is installed and only tolerates its absence: a pyarrow that
    is installed but cannot load (built for NumPy 2 next to NumPy 1.x) would fail every transfer. Such a
    pyarrow is unusable anyway; make it absent for this process."""
    import sys

    if "pyarrow" in sys.modules:
        return
    try:
        import pyarrow  # noqa: F401
    except ModuleNotFoundError:
        pass
    except ImportError:
        sys.modules["pyarrow"] = None  # `import pyarrow` now raises ModuleNotFoundError


def init_ray(address: str | None, workers: int):
    """Join the cluster at ``address`` (``ray://HOST:10001``, ``HOST:6379``, ``auto``) or start a local one with
    ``workers`` CPUs (``address`` None or ``"local"``). Returns (ray, whether this call started it)."""
    import logging

    ray = require_ray()
    worker_setup()
    if ray.is_initialized():
        return ray, False
    common = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "runtime_env": {"env_vars": worker_env(), "worker_process_setup_hook": f"{__name__}.worker_setup"},
    }
    try:
        if address in (None, "", LOCAL):
            ray.init(num_cpus=workers, object_store_memory=512 * 1024**2, **common)
        else:
            ray.init(address=address, **common)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise VlatwinError(f"--ray {address or LOCAL}: cannot start or join a Ray cluster ({exc})") from None
    return ray, True


class ItemActor:
    """Runs items of one job inside a Ray worker process (wrapped with ``ray.remote`` by :class:`RayPool`)."""

    def __init__(self, factory, kwargs: dict, fault: dict | None = None):
        self._fault = fault
        self._error: BaseException | None = None
        self._runner = None
        try:
            self._runner = factory(**kwargs)
        except Exception as exc:  # noqa: BLE001 - any set-up error is raised by the first call, on the driver
            self._error = exc

    def _check(self):
        if self._error is not None:
            raise self._error
        return self._runner

    def ready(self) -> Any:
        """What the runner tells the driver once (e.g. label tables), or None."""
        info = getattr(self._check(), "info", None)
        return info() if info is not None else None

    def call(self, name: str, *args) -> Any:
        return getattr(self._check(), name)(*args)

    def run(self, index: int, seed: int) -> Any:
        runner = self._check()
        fault = self._fault
        if fault is not None and fault.get("index") == index:
            marker = Path(fault["once"])
            if not marker.exists():  # test hook: die like a killed process, once
                marker.write_text(str(os.getpid()))
                os._exit(1)
        return runner.run(index, seed)

    def close(self) -> None:
        close = getattr(self._runner, "close", None)
        if close is not None:
            close()


class RayPool:
    """Pool slots backed by Ray actors, for :func:`vlatwin.scale.scheduler.run_ordered`."""

    def __init__(self, factory, kwargs: dict, seed: int, *, num_cpus: float = 1, fault: dict | None = None):
        self.ray = require_ray()
        self._cls = self.ray.remote(ItemActor).options(num_cpus=num_cpus, max_restarts=0, max_task_retries=0)
        self.factory, self.seed, self.fault = factory, int(seed), fault
        self.kwargs_ref = self.ray.put(kwargs)
        self.actors: dict[int, Any] = {}

    def ready_all(self) -> list:
        """Wait until every started actor is set up; their :meth:`ItemActor.ready` values, by slot (an error raises)."""
        slots = sorted(self.actors)
        return [self.get(ref) for ref in [self.actors[s].ready.remote() for s in slots]]

    def update_kwargs(self, **changes) -> None:
        """Arguments of actors started from now on (restarts), e.g. writers known after the first actor."""
        kwargs = dict(self.ray.get(self.kwargs_ref), **changes)
        self.kwargs_ref = self.ray.put(kwargs)

    def start(self, slot: int) -> None:
        old = self.actors.pop(slot, None)
        if old is not None:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(old, no_restart=True)
        self.actors[slot] = self._cls.remote(self.factory, self.kwargs_ref, self.fault)

    def submit(self, slot: int, index: int):
        return self.actors[slot].run.remote(index, self.seed)

    def wait(self, handles: list, timeout: float) -> list:
        ready, rest = self.ray.wait(handles, num_returns=1, timeout=timeout, fetch_local=False)
        if ready and rest:
            more, _ = self.ray.wait(rest, num_returns=len(rest), timeout=0, fetch_local=False)
            ready = ready + more
        return ready

    def get(self, ref):
        """``ray.get`` with Ray's wrappers removed: a dead actor is :class:`WorkerLost`, an item's error is itself."""
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayActorError as exc:
            raise WorkerLost(str(exc).splitlines()[0] if str(exc) else "worker died") from None
        except exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None
            raise

    result = get

    def close(self) -> None:
        for actor in self.actors.values():
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(actor, no_restart=True)
        self.actors = {}


def shutdown(ray, owned: bool) -> None:
    if owned:
        ray.shutdown()
