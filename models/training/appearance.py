"""How real radiographs look at pneumonia-cxr's input, with and without the ``histogram_match`` step.

Runs the shipped manifest's preprocessing (everything before ``normalize``) on pydicom's real CRs, once
without the histogram step and once with it, and compares the grey levels with the training split's
(x/255). Stores ``appearance`` in ``models/pneumonia-cxr/metrics.json`` for the card. No torch.

    python models/training/appearance.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from viewer.ai import load_manifest  # noqa: E402
from viewer.ai.preprocess import run_ops  # noqa: E402
from viewer.ai.runner import context_of  # noqa: E402
from viewer.io import load_series  # noqa: E402

IMAGES = {"RG1_UNCR.dcm": "adult chest PA CR (pydicom RG1)", "RG3_UNCR.dcm": "extremity AP CR (pydicom RG3)"}


def main() -> int:
    from pydicom.data import get_testdata_file

    folder = REPO / "models" / "pneumonia-cxr"
    m = load_manifest(folder)
    ops = [op for op in m.preprocess if op.name != "normalize"]
    plain = [op for op in ops if op.name != "histogram_match"]
    with np.load(REPO.parent / "shared" / "data" / "labeled" / "pneumoniamnist.npz") as z:
        train = z["train_images"].astype(np.float64) / 255.0
    rows = [{"image": "PneumoniaMNIST train split (4708 films)", "mean_without": float(train.mean()),
             "mean_with": float(run_ops(ops[-1:], train.astype(np.float32)).mean()),
             "quantiles_with": [float(v) for v in np.quantile(run_ops(ops[-1:], train.astype(np.float32)), [0.1, 0.5, 0.9])]}]
    for name, what in IMAGES.items():
        vol = load_series(get_testdata_file(name))
        ctx = context_of(vol)
        without, with_ = run_ops(plain, vol.array, ctx), run_ops(ops, vol.array, ctx)
        rows.append({"image": what, "mean_without": float(without.mean()), "mean_with": float(with_.mean()),
                     "quantiles_with": [float(v) for v in np.quantile(with_, [0.1, 0.5, 0.9])]})
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["appearance"] = rows
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    for r in rows:
        print(f"{r['image']:<45} mean {r['mean_without']:.3f} -> {r['mean_with']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
