"""Orientation letters (L/R/A/P/H/F) from patient LPS directions, and the display transform.

Conventions: patient coordinates are DICOM LPS (x to the patient's Left, y to Posterior, z to Head);
a 2D slice is indexed (row, col) and drawn with rows going down the screen and columns to the right.
The letter on a side of the viewport names where the patient direction pointing to that side goes:
the right edge shows "L" when the screen's +x points to the patient's left (the radiological
convention for an axial CT as stored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Positive LPS axis -> letter, negative -> letter (DICOM PS3.3 C.7.6.1.1.1 patient orientation terms,
# with H/F for head/feet as OHIF, Weasis and Horos show them).
_POS = ("L", "P", "H")
_NEG = ("R", "A", "F")

# A component smaller than this (cosine ~ 8.6 degrees off the axis would give 0.15) is not named; so a
# slightly tilted direction stays one letter, and a clearly oblique one gets two or three ("LA").
OBLIQUE_THRESHOLD = 0.15


def direction_letters(vector: np.ndarray, threshold: float = OBLIQUE_THRESHOLD) -> str:
    """Letters naming an LPS direction, strongest component first ("L", "LA", "HPR").

    Parameters
    ----------
    vector
        A direction in patient LPS (any length; mm or unit).
    threshold
        Components whose share of the unit vector is below this are left out.

    Returns
    -------
    str
        Up to three letters, "" for a zero vector.
    """
    v = np.asarray(vector, dtype=np.float64)[:3]
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        return ""
    v = v / norm
    order = np.argsort(-np.abs(v), kind="stable")
    letters = []
    for axis in order:
        c = float(v[axis])
        if abs(c) < threshold:
            continue
        letters.append(_POS[axis] if c > 0 else _NEG[axis])
    return "".join(letters)


def opposite_letters(letters: str) -> str:
    """The letters of the opposite direction ("LA" -> "RP")."""
    swap = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}
    return "".join(swap[c] for c in letters)


@dataclass(frozen=True)
class DisplayTransform:
    """How a slice is turned on screen: optional flips, then ``rotation`` quarter turns clockwise.

    Flips apply to the slice as stored (``flip_h`` mirrors columns, ``flip_v`` rows); the rotation is
    applied after them, clockwise as seen on screen. ``apply`` returns numpy views (no copy).
    """

    flip_h: bool = False
    flip_v: bool = False
    rotation: int = 0  # quarter turns clockwise, 0..3

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The displayed array (rows down, cols right) of a slice (row, col[, rgb])."""
        out = image
        if self.flip_h:
            out = out[:, ::-1]
        if self.flip_v:
            out = out[::-1]
        # np.rot90 with k=-1 turns clockwise as seen with row 0 at the top.
        return np.rot90(out, k=-(self.rotation % 4), axes=(0, 1))

    def display_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        """(rows, cols) of the displayed array for a slice of ``shape``."""
        return (shape[1], shape[0]) if self.rotation % 2 else (shape[0], shape[1])

    def to_source(self, row: float, col: float, shape: tuple[int, int]) -> tuple[float, float]:
        """Continuous slice (row, col) under display (row, col); ``shape`` is the slice's (rows, cols).

        Coordinates are pixel-centre based: pixel n covers [n - 0.5, n + 0.5).
        """
        rows, cols = shape
        r, c = float(row), float(col)
        # Undo the rotation one clockwise quarter turn at a time.
        h, w = self.display_shape(shape)
        for _ in range(self.rotation % 4):
            # A clockwise turn maps source (r, c) of an (H, W) image to (c, H - 1 - r); the source of the
            # current (h, w) image has H = w rows.
            r, c = (w - 1) - c, r
            h, w = w, h
        if self.flip_v:
            r = (rows - 1) - r
        if self.flip_h:
            c = (cols - 1) - c
        return r, c

    def to_display(self, row: float, col: float, shape: tuple[int, int]) -> tuple[float, float]:
        """Display (row, col) of continuous slice (row, col); the inverse of ``to_source``."""
        rows, cols = shape
        r, c = float(row), float(col)
        if self.flip_h:
            c = (cols - 1) - c
        if self.flip_v:
            r = (rows - 1) - r
        h = rows
        w = cols
        for _ in range(self.rotation % 4):
            r, c = c, (h - 1) - r
            h, w = w, h
        return r, c

    def screen_axes(self, row_dir: np.ndarray, col_dir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Patient directions of screen-right and screen-down, given the slice's col/row directions.

        Parameters
        ----------
        row_dir
            LPS direction of increasing row index (down the stored slice).
        col_dir
            LPS direction of increasing column index (right along the stored slice).
        """
        right = np.asarray(col_dir, dtype=np.float64)
        down = np.asarray(row_dir, dtype=np.float64)
        if self.flip_h:
            right = -right
        if self.flip_v:
            down = -down
        for _ in range(self.rotation % 4):
            # Clockwise on screen: what pointed up now points right, what pointed right now points down.
            right, down = -down, right
        return right, down

    def rotated(self, quarter_turns: int) -> DisplayTransform:
        """This transform followed by ``quarter_turns`` more clockwise turns (negative: counter-clockwise)."""
        return DisplayTransform(self.flip_h, self.flip_v, (self.rotation + quarter_turns) % 4)

    def flipped_on_screen(self, horizontal: bool) -> DisplayTransform:
        """This transform followed by a mirror of the screen image (left-right if ``horizontal``).

        The result stays in the (flips, then rotation) normal form; of the eight such transforms the
        one that moves a probe image the same way is picked, which is exact and cheap (8 tiny arrays).
        """
        probe = np.arange(6).reshape(2, 3)
        target = self.apply(probe)
        target = target[:, ::-1] if horizontal else target[::-1]
        for fh in (False, True):
            for fv in (False, True):
                for rot in range(4):
                    cand = DisplayTransform(fh, fv, rot)
                    got = cand.apply(probe)
                    if got.shape == target.shape and np.array_equal(got, target):
                        return cand
        raise AssertionError("unreachable: the dihedral group is closed")
