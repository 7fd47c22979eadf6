"""Independent runs as tasks: in this process or on Ray, one bar, a retry, a resumable record."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import pickle
import re
import socket
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from pvae.files import atomic_write
from pvae.validation import check_bool, check_nonnegative_float

__all__ = [
    "HOST_PORT",
    "RAY_EXTRA",
    "Task",
    "TaskFailure",
    "TasksFailed",
    "check_ray_options",
    "fingerprint",
    "ray_session",
    "run_tasks",
]

logger = logging.getLogger(__name__)

#: What ``pip`` installs for ``--ray`` (the message of a missing Ray names it).
RAY_EXTRA = 'pip install "pvae-pyro[ray]"'


@dataclass(frozen=True)
class Task:
    """One independent run: ``fn(**shared, **kwargs)``, where ``shared`` are the large inputs
    every task of a grid reads (the data), sent to Ray's object store once.

    :ivar name: how the bar and the failure report name it (``"vae, depth 4, seed 0"``).
    :ivar fn: a module-level function (Ray pickles it by reference where it is importable).
    :ivar kwargs: its keyword arguments besides the shared ones.
    :ivar settings: the plain values that set this task apart from the others of its grid (a
        depth, a seed): the failure report shows them.
    :ivar context: the plain values the whole grid shares (its budget, the data's
        fingerprint). A resumed grid reuses a finished task only where its name, settings
        and context are all equal.
    :ivar cost: a guess of its run time relative to the others (default 1): Ray is given the
        costly tasks first, so that a long one is not left running alone at the end.
    """

    name: str
    fn: Callable
    kwargs: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)
    cost: float = 1.0

    def record_name(self) -> str:
        """The file of its finished result in a record folder: its name and a hash of its
        settings and context, so that a run with others never reads it."""
        text = json.dumps([self.settings, self.context], sort_keys=True, default=repr)
        digest = hashlib.sha256(f"{self.name}\n{text}".encode()).hexdigest()[:16]
        slug = "".join(c if c.isalnum() else "-" for c in self.name).strip("-")
        return f"{slug}-{digest}.pkl"


@dataclass(frozen=True)
class TaskFailure:
    """A task that raised on every try: its name, settings, the error's type and message and
    the traceback where it was raised (in the Ray worker, for a Ray task)."""

    name: str
    settings: dict
    error: str
    traceback: str
    tries: int

    def __str__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.settings.items())
        return f"{self.name} ({settings}) failed {self.tries} times: {self.error}"


class TasksFailed(RuntimeError):
    """Some tasks of a grid failed; the others finished. ``results`` maps every finished
    task's name to its result (also kept in the record folder, if one was given, where a
    resumed run reuses them), ``failures`` lists the :class:`TaskFailure`\\ s."""

    def __init__(self, failures: list[TaskFailure], results: dict, total: int, record):
        self.failures, self.results, self.total, self.record = failures, results, total, record
        kept = f", kept in {record} (resume reuses them)" if record is not None else ""
        lines = [
            f"{len(failures)} of {total} tasks failed; {len(results)} finished{kept}:",
            *(f"- {failure}" for failure in failures),
        ]
        super().__init__("\n".join(lines))


def check_ray_options(ray, cpus_per_task, gpus_per_task) -> None:
    """Check ``ray`` (``None``: this process; ``True``: Ray at its default address, a local
    Ray if none runs; a string: that address, ``"auto"``, ``"ray://HOST:PORT"``, ...) and the
    resources of each task, naming the argument."""
    if ray is not None and ray is not True and not (isinstance(ray, str) and ray):
        raise ValueError(
            f"ray must be None (this process), True (a local or the default Ray) or an "
            f"address such as 'auto' or 'ray://HOST:10001', got {ray!r}"
        )
    if isinstance(cpus_per_task, bool) or not isinstance(cpus_per_task, int | float):
        raise ValueError(f"cpus_per_task must be a number > 0, got {cpus_per_task!r}")
    if not cpus_per_task > 0:
        raise ValueError(f"cpus_per_task must be > 0, got {cpus_per_task!r}")
    check_nonnegative_float(gpus_per_task, "gpus_per_task")
    if gpus_per_task > 1 and gpus_per_task != int(gpus_per_task):
        raise ValueError(
            f"gpus_per_task above 1 must be a whole number of GPUs (a fraction shares one), "
            f"got {gpus_per_task!r}"
        )
    if ray is None and gpus_per_task:
        raise ValueError(
            f"gpus_per_task={gpus_per_task!r} sets a Ray task's resources, but ray=None runs "
            f"the tasks in this process: pass ray=True (or an address)"
        )


class ray_session:
    """Ray for the duration of a ``with`` block, which it gives as the ``ray`` module:
    ``address=None`` gives ``None`` and starts nothing (the work runs in this process);
    otherwise the running Ray if ``ray.init`` was already called in this process (a notebook, a
    test; left running), else ``ray.init(address)`` and a shutdown at the end. ``address=True``
    is Ray's default: the cluster at ``RAY_ADDRESS``, else the latest one started on this
    machine (``ray start``), else a new local Ray on this machine's CPUs; ``"local"`` always
    starts a new local one; ``"auto"`` refuses to start one."""

    def __init__(self, address):
        self._none = address is None  # no Ray at all, unlike True (Ray's default address)
        self.address = None if address is True else address
        self._started = False

    def __enter__(self):
        if self._none:
            return None
        try:
            import ray
        except ImportError as error:
            raise ImportError(
                f"Ray is not installed; the ray extra installs it: {RAY_EXTRA}"
            ) from error
        if not ray.is_initialized():
            _check_reachable(self.address)
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
            except (ConnectionError, RuntimeError, TimeoutError) as error:
                where = "Ray's default address" if self.address is None else repr(self.address)
                raise ConnectionError(
                    f"Ray could not start or connect at {where} (ray=, --ray): {_error_line(error)}"
                ) from error
            self._started = True
        return ray

    def __exit__(self, *exc):
        if self._started:
            import ray

            ray.shutdown()
        return False


#: A cluster's GCS address, ``HOST:PORT`` (``ray://`` before it: Ray Client's).
HOST_PORT = r"([\w.-]+):(\d+)"

#: Seconds to wait for a cluster's ``HOST:PORT`` to accept a connection before ``ray.init``,
#: which would otherwise retry for minutes without a word.
CONNECT_TIMEOUT = 10.0


def _check_reachable(address) -> None:
    """Refuse a ``HOST:PORT`` address (a cluster's GCS) that accepts no TCP connection within
    :data:`CONNECT_TIMEOUT` seconds, naming it; other addresses are left to ``ray.init``."""
    match = None if not isinstance(address, str) else re.fullmatch(HOST_PORT, address)
    if match is None:
        return
    host, port = match.group(1), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as error:
        raise ConnectionError(
            f"no Ray cluster answers at {address!r} (ray=, --ray) within "
            f"{CONNECT_TIMEOUT:g} s: {error}"
        ) from error


def _call(fn: Callable, shared: dict, kwargs: dict, default_dtype=None, threads=None):
    import torch

    # A Ray worker starts with torch's float32 default; a network built under another would
    # draw other initial weights from the same seed.
    if default_dtype is not None:
        torch.set_default_dtype(default_dtype)
    if threads is not None:  # the task's CPUs, whatever OMP_NUM_THREADS the worker inherited
        torch.set_num_threads(threads)
    return fn(**shared, **kwargs)


def _error_line(error: BaseException) -> str:
    """An error as one line: its type and the first line of its message."""
    return f"{type(error).__name__}: {error}".strip().splitlines()[0]


def _failed(task: Task, error: BaseException, tries: int, retries: int, failures: list) -> bool:
    """Log a failed try of ``task`` (its ``tries``-th); ``True`` if it gets another, else its
    :class:`TaskFailure` joins ``failures``."""
    cause = getattr(error, "cause", None)  # a RayTaskError wraps the worker's exception
    shown = cause if isinstance(cause, BaseException) else error
    text = _error_line(shown)
    logger.warning("task %s failed (try %d): %s", task.name, tries, text)
    if tries <= retries:
        return True
    trace = "".join(traceback.format_exception(error))
    failures.append(TaskFailure(task.name, task.settings, text, trace, tries))
    return False


def fingerprint(x) -> list:
    """A tensor's shape, dtype and sum: what a resumed run checks its data by."""
    return [list(x.shape), str(x.dtype), float(x.double().sum())]


def run_tasks(
    tasks: Sequence[Task],
    *,
    shared: dict | None = None,
    ray=None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 0,
    retries: int = 1,
    record=None,
    resume: bool = False,
    progress: bool = True,
    desc: str = "tasks",
) -> list:
    """Run every task and return their results in the order of ``tasks``.

    With ``ray=None`` the tasks run one after another in this process. Otherwise each is a
    Ray task in a process of its own (``max_calls=1``: a worker serves one task and exits, so
    Pyro's global parameter store and torch's RNG never carry over from one task to the next),
    with ``cpus_per_task`` CPUs (torch then uses that many threads) and ``gpus_per_task`` GPUs
    (a fraction shares one). Ray is imported only here, only then.

    A task that raises (or whose worker dies) is run again, up to ``retries`` more times. One
    that fails every try is reported with its settings once the others are done: the
    finished results are not lost. Where ``record`` names a folder, every finished result is
    written there as it arrives (whole or not at all), and with ``resume=True`` a task whose
    record holds the same name, settings and context is not run again; without ``resume`` the
    folder's earlier records are removed first.

    :param tasks: the :class:`Task`\\ s; names must differ.
    :param dict shared: keyword arguments every task gets (sent to Ray's object store once).
    :param ray: ``None`` (default: this process), ``True`` (Ray's default: ``RAY_ADDRESS``, a
        running local cluster, or a new local Ray) or a Ray address (``"local"``, ``"auto"``,
        ``"ray://HOST:10001"``); see :class:`ray_session`.
    :param cpus_per_task: Ray's ``num_cpus`` per task (default 1).
    :param gpus_per_task: Ray's ``num_gpus`` per task (default 0).
    :param int retries: tries after the first of a task that failed (default 1).
    :param record: folder of finished results, or ``None`` (default: none kept).
    :param bool resume: reuse the finished results in ``record`` (default ``False``).
    :param bool progress: one tqdm bar over the tasks, its postfix the last task done,
        retrying or failed, and the counts submitted, retried and failed (default ``True``).
    :param str desc: the bar's label.
    :raises TasksFailed: if a task failed every try, after the others finished.
    """
    tasks = list(tasks)
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"tasks must have different names, got {names!r}")
    check_ray_options(ray, cpus_per_task, gpus_per_task)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}")
    check_bool(resume, "resume")
    check_bool(progress, "progress")
    if resume and record is None:
        raise ValueError("resume=True needs a record folder to resume from, got record=None")
    shared = dict(shared or {})
    folder = None if record is None else Path(record)
    results: dict[str, object] = {}
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        results = _read_record(folder, tasks) if resume else {}
        if not resume:
            for stale in folder.glob("*.pkl"):
                stale.unlink()
        if results:
            logger.info("%d of %d tasks finished before; not run again", len(results), len(tasks))
        if resume:
            ours = {task.record_name() for task in tasks}
            others = [path for path in folder.glob("*.pkl") if path.name not in ours]
            if others:  # another grid's runs, or these runs with another budget, data, device
                logger.info(
                    "%d records in %s are of other tasks or settings; not reused",
                    len(others),
                    folder,
                )
    todo = [task for task in tasks if task.name not in results]
    failures: list[TaskFailure] = []

    def finished(task: Task, result) -> None:
        results[task.name] = result
        if folder is not None:
            with atomic_write(folder / task.record_name()) as handle:
                saved = {"name": task.name, "settings": task.settings, "context": task.context}
                pickle.dump({**saved, "result": result}, handle)

    with (
        tqdm(
            total=len(tasks), initial=len(results), disable=not progress, desc=desc, unit="task"
        ) as bar,
        ray_session(ray) as module,
    ):
        if module is None:
            _run_here(todo, shared, retries, finished, failures, bar)
        else:
            _run_on_ray(
                module,
                todo,
                shared,
                retries,
                cpus_per_task,
                gpus_per_task,
                finished,
                failures,
                bar,
            )
    if failures:
        raise TasksFailed(failures, results, len(tasks), folder)
    return [results[name] for name in names]


def _read_record(folder: Path, tasks: list[Task]) -> dict:
    """The finished results in ``folder`` of these tasks. A record that cannot be read (cut
    short, overwritten) or holds another task's result is warned about and its task run
    again, which then overwrites it."""
    found = {}
    for task in tasks:
        path = folder / task.record_name()
        if not path.exists():
            continue
        try:
            with path.open("rb") as handle:
                saved = pickle.load(handle)
            if not isinstance(saved, dict) or "result" not in saved:
                raise ValueError(f"it holds a {type(saved).__name__}, not a task's record")
        except Exception as error:
            logger.warning(
                "task record %s cannot be read (%s); task %s is run again",
                path,
                _error_line(error),
                task.name,
            )
            continue
        same = (saved.get(key) for key in ("name", "settings", "context"))
        if list(same) == [task.name, task.settings, task.context]:
            found[task.name] = saved["result"]
    return found


def _status(bar, last: str, running: int, retried: int, failed: int) -> None:
    parts = [last] if last else []
    if running:
        parts.append(f"{running} submitted")
    if retried:
        parts.append(f"{retried} retried")
    if failed:
        parts.append(f"{failed} failed")
    bar.set_postfix_str(" | ".join(parts), refresh=True)


def _run_here(todo, shared, retries, finished, failures, bar) -> None:
    retried = 0
    for task in todo:
        for attempt in range(retries + 1):
            _status(bar, f"{task.name}: running", 0, retried, len(failures))
            try:
                result = _call(task.fn, shared, task.kwargs)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as error:
                if _failed(task, error, attempt + 1, retries, failures):
                    retried += 1
                    continue
                _status(bar, f"{task.name}: failed", 0, retried, len(failures))
            else:
                finished(task, result)
                bar.update()
                _status(bar, f"{task.name}: done", 0, retried, len(failures))
            break


def _check_feasible(ray, cpus: float, gpus: float) -> None:
    """Refuse resources per task that no node of the cluster has: Ray would keep such tasks
    waiting for ever, its warning hidden (``log_to_driver=False``). On an autoscaling cluster,
    start a node of that kind first."""
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if not nodes or any(
        node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus for node in nodes
    ):
        return
    have = "; ".join(
        f"{node.get('CPU', 0):g} CPUs and {node.get('GPU', 0):g} GPUs" for node in nodes
    )
    raise ValueError(
        f"no node of this Ray cluster can run a task with cpus_per_task={cpus!r} and "
        f"gpus_per_task={gpus!r} (--cpus-per-task, --gpus-per-task): its nodes have {have}"
    )


def _run_on_ray(ray, todo, shared, retries, cpus, gpus, finished, failures, bar) -> None:
    import torch

    if todo:
        _check_feasible(ray, cpus, gpus)
    remote = ray.remote(max_calls=1)(_call).options(
        num_cpus=cpus, num_gpus=gpus, max_retries=0, retry_exceptions=False
    )
    shared_ref = ray.put(shared)
    dtype = torch.get_default_dtype()
    threads = max(1, math.floor(cpus))
    pending = {}  # object ref → (task, tries so far)

    def submit(task: Task, tries: int) -> None:
        pending[remote.remote(task.fn, shared_ref, task.kwargs, dtype, threads)] = (task, tries)

    for task in sorted(todo, key=lambda task: -task.cost):  # stable: ties keep their order
        submit(task, 0)
    retried, last = 0, ""
    try:
        while pending:
            _status(bar, last, len(pending), retried, len(failures))
            ready, _ = ray.wait(list(pending), num_returns=1)
            task, tries = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as error:  # a RayTaskError, or a worker that died
                if _failed(task, error, tries + 1, retries, failures):
                    retried += 1
                    submit(task, tries + 1)
                    last = f"{task.name}: retrying"
                else:
                    last = f"{task.name}: failed"
            else:
                finished(task, result)
                bar.update()
                last = f"{task.name}: done"
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    _status(bar, last, 0, retried, len(failures))
