"""Undo and redo: a plain command stack (the model of Qt's QUndoStack, without Qt).

A command knows how to apply itself (``redo``) and how to take itself back (``undo``); both write through
to the store, so what is on screen and what is saved never differ, even right after an undo.
"""

from __future__ import annotations

from typing import Protocol


class Command(Protocol):
    """One undoable change. ``text`` is what an Edit menu shows ("Undo: label 'normal'")."""

    text: str

    def redo(self) -> None: ...

    def undo(self) -> None: ...


class UndoStack:
    """Linear history: pushing after an undo drops the redo branch (as every editor does).

    Parameters
    ----------
    limit
        Oldest commands beyond this many are forgotten (they stay saved; they just cannot be undone).
    """

    def __init__(self, limit: int = 500) -> None:
        self.limit = limit
        self._done: list[Command] = []
        self._undone: list[Command] = []

    def push(self, command: Command) -> None:
        """Apply ``command`` and record it."""
        command.redo()
        self._done.append(command)
        self._undone.clear()
        if len(self._done) > self.limit:
            del self._done[0]

    def undo(self) -> Command | None:
        """Take back the last command; None when there is nothing to undo."""
        if not self._done:
            return None
        command = self._done.pop()
        command.undo()
        self._undone.append(command)
        return command

    def redo(self) -> Command | None:
        """Apply again the last undone command; None when there is nothing to redo."""
        if not self._undone:
            return None
        command = self._undone.pop()
        command.redo()
        self._done.append(command)
        return command

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    @property
    def undo_text(self) -> str:
        return self._done[-1].text if self._done else ""

    @property
    def redo_text(self) -> str:
        return self._undone[-1].text if self._undone else ""

    def clear(self) -> None:
        self._done.clear()
        self._undone.clear()
