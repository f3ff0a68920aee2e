"""Series arriving from a PACS: which files of each are stored so far, of how many, and how it ended.

The PACS dock writes these records as its retrieve reports stored instances; whoever shows the series
(the main window, opening it in a viewport) observes them. A viewport showing an arriving series grows
with it (:meth:`viewer.state.workspace.ViewportModel.grow`) and is refined in place by the whole volume
when the record is done.
"""

from __future__ import annotations

from viewer.state.observable import Observable


class Arrival(Observable):
    """One series being retrieved into the local store. Change notifications: "files", "done".

    Attributes
    ----------
    series_uid, title
        The series and how a viewport titles it ("CT  Abdomen").
    files
        Paths stored so far, in arrival order (instances already stored before the retrieve included).
    total
        Instances the series has (-1 while unknown).
    done
        The retrieve ended (complete, failed or cancelled); ``complete`` and ``error`` say how.
    """

    def __init__(self, series_uid: str, title: str, total: int = -1) -> None:
        super().__init__()
        self.series_uid = series_uid
        self.title = title
        self.files: list[str] = []
        self._known: set[str] = set()
        self.total = int(total)
        self.done = False
        self.complete = False
        self.error: str | None = None

    def stored(self, paths: list[str], total: int = -1) -> None:
        """More instances are on disk (paths already listed are ignored)."""
        new = [p for p in paths if p not in self._known]
        if total > 0:
            self.total = int(total)
        if new:
            self.files += new
            self._known.update(new)
            self.notify("files")

    def finish(self, files: list[str], *, complete: bool, error: str | None = None) -> None:
        """The retrieve ended with ``files`` stored in all."""
        self.stored(files)
        self.done, self.complete, self.error = True, bool(complete), error
        self.notify("done")


class Arrivals(Observable):
    """The series being retrieved, by Series Instance UID. Change notification: "arrivals"."""

    def __init__(self) -> None:
        super().__init__()
        self.by_uid: dict[str, Arrival] = {}

    def start(self, series_uid: str, title: str, total: int = -1) -> Arrival:
        """A new record for ``series_uid`` (replacing one of an earlier retrieve of it)."""
        arrival = self.by_uid[series_uid] = Arrival(series_uid, title, total)
        self.notify("arrivals")
        return arrival

    def get(self, series_uid: str) -> Arrival | None:
        return self.by_uid.get(series_uid)
