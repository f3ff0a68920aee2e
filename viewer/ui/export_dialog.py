"""File > Export Series…: where to, which lossless codec, de-identified or not."""

from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget)

#: (codec name of ``python -m viewer export``, label shown)
CODEC_CHOICES = [
    ("jpeg-ls", "JPEG-LS lossless (best ratio on CT)"),
    ("htj2k", "HTJ2K lossless (fast JPEG 2000)"),
    ("j2k", "JPEG 2000 lossless"),
    ("jpeg-lossless", "JPEG Lossless SV1 (widest support)"),
    ("rle", "RLE lossless (fastest, least compression)"),
]


class ExportDialog(QDialog):
    """Asks for the output folder, the codec and de-identification; :meth:`choice` reads them."""

    def __init__(self, parent: QWidget | None, series_text: str, start_folder: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Export Series")
        form = QFormLayout(self)
        form.addRow(QLabel(series_text))
        self.folder = QLineEdit(start_folder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder)
        row.addWidget(browse)
        form.addRow("Folder:", row)
        self.codec = QComboBox()
        for name, label in CODEC_CHOICES:
            self.codec.addItem(label, name)
        form.addRow("Codec:", self.codec)
        self.deidentify = QCheckBox("De-identify (PS3.15 Basic Profile: pseudonyms, new UIDs, files IMG00001…)")
        form.addRow(self.deidentify)
        form.addRow(QLabel("Every file is decoded again after writing and compared with the original."))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self._accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export into folder", self.folder.text())
        if path:
            self.folder.setText(path)

    def _accept(self) -> None:
        if self.folder.text().strip():
            self.accept()
        else:
            self.folder.setPlaceholderText("choose a folder")

    def choice(self) -> tuple[str, str, bool]:
        """(folder, codec name, de-identify)."""
        return self.folder.text().strip(), str(self.codec.currentData()), self.deidentify.isChecked()
