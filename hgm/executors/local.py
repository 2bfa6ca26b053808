"""The local executor: each job in a thread of the `hgm run` process (the default).

Jobs share the process: the agent archive, the central LLM gateway and the run directory are used
directly, so a one-machine run pays nothing for the seam. A thread cannot be killed: `cancel`
forgets the job (its late result is still delivered and dropped by the scheduler's dispatch check);
the sandbox's own timeouts bound how long such a thread keeps running. With `inline=True` a job
runs inside `submit` (one slot, no thread): simulations of thousands of runs use that.
"""

from __future__ import annotations

import queue
import threading
import traceback
from collections.abc import Callable

from hgm.errors import error_type_of
from hgm.executors import Delivery, JobKey


class LocalExecutor:
    name = "local"

    def __init__(self, run: Callable[[object], object], slots: int, *, inline: bool = False) -> None:
        if inline and slots != 1:
            raise ValueError("an inline executor has exactly one slot")
        self._run, self._slots, self._inline = run, slots, inline
        self._done: queue.SimpleQueue[Delivery] = queue.SimpleQueue()

    def slots(self) -> int:
        return self._slots

    def submit(self, key: JobKey, job: object) -> None:
        if self._inline:
            self._work(key, job)
        else:
            threading.Thread(target=self._work, args=(key, job), daemon=True,
                             name=f"hgm-job-{key.kind}-{key.row_id}").start()

    def _work(self, key: JobKey, job: object) -> None:
        try:
            delivery = Delivery(key, result=self._run(job))
        except BaseException as e:  # noqa: BLE001 - handed to the scheduler, which books or re-raises it
            delivery = Delivery(key, error=(error_type_of(e), traceback.format_exc()))
        self._done.put(delivery)

    def wait(self, timeout: float | None) -> list[Delivery]:
        try:
            out = [self._done.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def cancel(self, key: JobKey) -> None:
        """Nothing to do: a thread cannot be stopped; its result will be dropped."""

    def close(self) -> None:
        """Threads are daemons; work still running is abandoned with the process."""
