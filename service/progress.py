"""Progress of a stage: a bar on a terminal, log lines in job logs."""

from __future__ import annotations

from collections.abc import Callable

Log = Callable[[str], None]


class Progress:
    """A progress bar on a terminal; in job logs (no terminal) a line every tenth of the way."""

    def __init__(self, total: int | None, what: str, log: Log, every: int | None = None) -> None:
        """``total``: the steps to come; None where unknown (a search that decides as it goes)."""
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=what, disable=None, leave=False, dynamic_ncols=True)
        self.total, self.what, self.log, self.done = total, what, log, 0
        self.every = every or max(1, (total or 0) // 10)

    def step(self, detail: str = "") -> None:
        self.done += 1
        self.bar.update(1)
        if detail:
            self.bar.set_postfix_str(detail, refresh=False)
        if self.bar.disable and (self.done % self.every == 0 or self.done == self.total):
            of = "" if self.total is None else f"/{self.total}"
            self.log(f"{self.what}: {self.done}{of} {detail}".rstrip())

    def close(self) -> None:
        self.bar.close()
