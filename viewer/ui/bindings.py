"""Mouse and keyboard bindings of the slice viewport, in one rebindable table.

Defaults follow OHIF, Weasis and Horos (docs/product.md):

==========================  =====================================================
input                       action
==========================  =====================================================
left drag                   the active tool (default: window/level; horizontal =
                            width, vertical = center; drag right widens, drag down
                            raises the center, so the image darkens)
middle drag, Shift+left     pan
right drag, Ctrl+left       zoom (drag up zooms in)
wheel, Up/Down              previous/next slice (wheel down = next)
PgUp/PgDown                 10 slices back/forward
Home/End                    first/last slice
1..9                        window presets of the modality (resources/window_presets.toml)
0                           the window stored in the file (else the modality default)
I, H, V, R                  invert, flip horizontal, flip vertical, reset view
. (or Ctrl+R), ,            rotate 90 degrees clockwise, counter-clockwise
W, D, A, Q, O               tools: window/level, distance, angle, rectangle ROI, ellipse ROI
Delete, Backspace           delete the selected measurement
Escape                      back to the window/level tool (cancels a drawing)
F                           display filter on/off: the original, or the last filter
                            chosen in the toolbar's Filter menu (at first the
                            denoiser ct-denoise when installed, else median 3x3);
                            with the brush on, F fills the region under the cursor
Shift+F                     split view: original left of a draggable divider,
                            filtered right (turns the filter on if it was off)
==========================  =====================================================

In the MPR view a plain left click, or Shift+left drag, moves the crosshair in all three planes.
Keys are ``QKeySequence`` strings ("Ctrl+R", "PgUp"); mouse chords are (button, modifiers) with
button "Left"/"Middle"/"Right" and modifiers "" or "+"-joined "Shift", "Ctrl", "Alt".
Rebind with ``Bindings.keys["X"] = "invert"`` or ``Bindings.default().with_keys({...})``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from PySide6.QtCore import QKeyCombination, Qt
from PySide6.QtGui import QKeySequence

# Key actions: "slice:+1", "preset:3", or one of the names below.
DEFAULT_KEYS: dict[str, str] = {
    "Up": "slice:-1",
    "Down": "slice:+1",
    "PgUp": "slice:-10",
    "PgDown": "slice:+10",
    "Home": "slice:first",
    "End": "slice:last",
    **{str(n): f"preset:{n}" for n in range(10)},
    "I": "invert",
    "H": "flip_h",
    "V": "flip_v",
    "R": "reset",
    ".": "rotate_cw",
    "Ctrl+R": "rotate_cw",
    ",": "rotate_ccw",
    "W": "tool:window",
    "D": "tool:distance",
    "A": "tool:angle",
    "Q": "tool:rect",
    "O": "tool:ellipse",
    "Del": "delete",
    "Backspace": "delete",
    "Esc": "cancel",
    "F": "filter:toggle",
    "Shift+F": "filter:split",
}

# Drag actions: "tool" (whatever the active tool is), "window", "pan", "zoom", "crosshair".
DEFAULT_MOUSE: dict[tuple[str, str], str] = {
    ("Left", ""): "tool",
    ("Middle", ""): "pan",
    ("Left", "Shift"): "pan",
    ("Right", ""): "zoom",
    ("Left", "Ctrl"): "zoom",
}

MPR_MOUSE: dict[tuple[str, str], str] = {**DEFAULT_MOUSE, ("Left", "Shift"): "crosshair"}

# Window/level drag: per screen pixel, width and center move by this fraction of the width at the
# start of the drag (at least MIN_WL_STEP units), so a 2000-HU bone window and an 80-HU brain window
# both take about 200 pixels to double.
WL_FRACTION_PER_PIXEL = 1.0 / 200.0
MIN_WL_STEP = 0.05
# Zoom drag: factor exp(-dy * ZOOM_PER_PIXEL), drag up zooms in.
ZOOM_PER_PIXEL = 0.01

_BUTTONS = {Qt.MouseButton.LeftButton: "Left", Qt.MouseButton.MiddleButton: "Middle", Qt.MouseButton.RightButton: "Right"}


def modifiers_text(mods: Qt.KeyboardModifier) -> str:
    """"Shift", "Ctrl", "Ctrl+Shift", ... (Meta is folded into Ctrl for macOS trackpads)."""
    parts = []
    if mods & Qt.KeyboardModifier.ControlModifier or mods & Qt.KeyboardModifier.MetaModifier:
        parts.append("Ctrl")
    if mods & Qt.KeyboardModifier.ShiftModifier:
        parts.append("Shift")
    if mods & Qt.KeyboardModifier.AltModifier:
        parts.append("Alt")
    return "+".join(parts)


def key_text(key: int, mods: Qt.KeyboardModifier) -> str:
    """The ``QKeySequence`` text of a key press ("Ctrl+R", "PgUp", "1"); keypad digits count as digits."""
    mods = mods & ~Qt.KeyboardModifier.KeypadModifier
    # Shifted punctuation and digits arrive already shifted; ignore Shift there so "." stays ".".
    if Qt.Key.Key_Space < key < Qt.Key.Key_A and key not in (Qt.Key.Key_Up, Qt.Key.Key_Down):
        mods = mods & ~Qt.KeyboardModifier.ShiftModifier
    combo = QKeyCombination(Qt.KeyboardModifier(mods), Qt.Key(key))
    return QKeySequence(combo).toString()


@dataclass
class Bindings:
    """The rebindable map of keys and mouse chords to viewport actions (see the module docstring)."""

    keys: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KEYS))
    mouse: dict[tuple[str, str], str] = field(default_factory=lambda: dict(DEFAULT_MOUSE))

    @classmethod
    def default(cls) -> Bindings:
        return cls()

    @classmethod
    def mpr(cls) -> Bindings:
        return cls(mouse=dict(MPR_MOUSE))

    def with_keys(self, keys: dict[str, str]) -> Bindings:
        """A copy with ``keys`` added or replaced."""
        return replace(self, keys={**self.keys, **keys}, mouse=dict(self.mouse))

    def key_action(self, key: int, mods: Qt.KeyboardModifier) -> str | None:
        return self.keys.get(key_text(key, mods))

    def drag_action(self, button: Qt.MouseButton, mods: Qt.KeyboardModifier) -> str | None:
        name = _BUTTONS.get(button)
        if name is None:
            return None
        return self.mouse.get((name, modifiers_text(mods)))
