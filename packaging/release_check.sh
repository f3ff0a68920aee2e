#!/usr/bin/env bash
# Release check: build the frozen application from a clean copy of the checkout and run it headless, the
# way a user's machine would (no source tree, no PYTHONPATH):
#   1. copy the tracked (and new, not ignored) files into a fresh folder; build with PyInstaller there
#   2. dicom-viewer --version                  == the package version
#   3. dicom-viewer scan CT --json             finds the 134-slice series
#   4. dicom-viewer screenshot CT / J2K CT     == python -m viewer screenshot (pixel comparison); the J2K
#                                                 series is decoded by the spawned decoder processes
#   5. dicom-viewer infer CT --model organ-ct  == python -m viewer infer (same probabilities)
#   6. packaging/install.sh --user into a throw-away HOME, the installed command runs, --uninstall
#
#   bash packaging/release_check.sh [--keep DIR]      (the build stays in DIR when given)
# Needs the venv with the `freeze` extra (pip install -e '.[freeze]') and the real data (../shared/data
# or $VIEWER_TEST_DATA). Takes ~3-5 minutes on 2 cores, most of it PyInstaller: too long for every CI
# run, so it is a release step (README "Install"); tests/packaging/test_spec.py checks the spec's inputs.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
keep=""
[ "${1:-}" = "--keep" ] && keep="${2:?--keep needs a folder}"
data="${VIEWER_TEST_DATA:-$repo/../shared/data}"
ct="$data/ct/pancreas-ct-philips-134"
j2k="$data/ct/totalseg-ct-j2k-20"
[ -d "$ct" ] && [ -d "$j2k" ] || { echo "release_check: real data not found under $data" >&2; exit 1; }
"$PY" -c "import PyInstaller" 2>/dev/null || { echo "release_check: pip install -e '.[freeze]' first" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/release-check-XXXXXX")"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
step() { printf '[%4ss] %s\n' "$((SECONDS - start))" "$*"; }

step "clean copy of the checkout in $work/src"
mkdir -p "$work/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/src")

step "PyInstaller build"
(cd "$work/src" && PYTHONPATH="$work/src" "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
   --distpath "$work/dist" --workpath "$work/build" packaging/dicom-viewer.spec)
app="$work/dist/dicom-viewer/dicom-viewer"
step "built: $(du -sh "$work/dist/dicom-viewer" | cut -f1) in dist/dicom-viewer"

# Headless, in a folder outside any source tree, with its own index, settings and data.
export QT_QPA_PLATFORM=offscreen VIEWER_CACHE_DIR="$work/cache" VIEWER_CONFIG_DIR="$work/config" \
  VIEWER_DATA_DIR="$work/data"
unset PYTHONPATH
cd "$work"
fail() { tail -n 40 "$work/stderr.log" >&2 2>/dev/null; echo "release_check: FAILED: $*" >&2; exit 1; }
from_source() { (cd "$repo" && PYTHONPATH="$repo" "$PY" -m viewer "$@"); }

want="dicom-viewer $(cd "$repo" && "$PY" -c 'import viewer; print(viewer.__version__)')"
got="$("$app" --version)"
[ "$got" = "$want" ] || fail "--version says '$got', expected '$want'"
step "--version: $got"

"$app" scan "$ct" --json --no-index > scan.json
"$PY" - scan.json <<'EOF' || fail "scan --json"
import json, sys
doc = json.load(open(sys.argv[1]))
series = [s for p in doc["patients"] for st in p["studies"] for s in st["series"]]
assert any(s["files"] == 134 and s["modality"] == "CT" for s in series), series
EOF
step "scan --json: the 134-slice series"

for name in ct j2k; do
  src="$ct"; [ "$name" = j2k ] && src="$j2k"
  "$app" screenshot "$src" --preset lung --size 1000x700 --out "frozen-$name.png" >/dev/null 2>>stderr.log
  from_source screenshot "$src" --preset lung --size 1000x700 --out "$work/python-$name.png" >/dev/null 2>>"$work/stderr.log"
  "$PY" - "frozen-$name.png" "python-$name.png" <<'EOF' || fail "screenshot of $name differs"
import sys
from PySide6.QtGui import QImage
a, b = QImage(sys.argv[1]), QImage(sys.argv[2])
assert a.size() == b.size() and not a.isNull(), (a.size(), b.size())
differ = sum(a.pixel(x, y) != b.pixel(x, y) for y in range(0, a.height(), 2) for x in range(0, a.width(), 2))
share = differ / ((a.height() // 2) * (a.width() // 2))
print(f"  {sys.argv[1]}: {share:.4%} of sampled pixels differ from python -m viewer's")
assert share < 0.001
EOF
done
step "screenshot: frozen == python -m viewer (CT and J2K CT)"

"$app" infer "$ct" --model organ-ct --slices 60:64 --json --device cpu > infer-frozen.json 2>>stderr.log
from_source infer "$ct" --model organ-ct --slices 60:64 --json --device cpu > "$work/infer-python.json" 2>>"$work/stderr.log"
"$PY" - infer-frozen.json infer-python.json <<'EOF' || fail "infer differs"
import json, math, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["provider"] == "CPUExecutionProvider", a["provider"]
pa = [p for s in a["series"] for p in s["predictions"]]
pb = [p for s in b["series"] for p in s["predictions"]]
assert len(pa) == len(pb) == 4, (len(pa), len(pb))
for x, y in zip(pa, pb):
    assert x["slice"] == y["slice"] and x["label"] == y["label"], (x, y)
    assert all(math.isclose(x["probabilities"][k], y["probabilities"][k], abs_tol=1e-5) for k in y["probabilities"])
EOF
step "infer organ-ct: frozen == python -m viewer"

if "$app" batch infer "$ct" --model organ-ct --out "$work/batch" 2>batch.err; then fail "batch ran without Dask"; fi
grep -q "no batch support" batch.err || fail "batch: $(cat batch.err)"
step "batch: left out of the desktop build, and says so"

mkdir -p "$work/home"
HOME="$work/home" XDG_DATA_HOME="$work/home/.local/share" bash "$repo/packaging/install.sh" --user \
  "$work/dist/dicom-viewer" >/dev/null
[ "$("$work/home/.local/bin/dicom-viewer" --version)" = "$want" ] || fail "installed command"
HOME="$work/home" XDG_DATA_HOME="$work/home/.local/share" bash "$repo/packaging/install.sh" --user --uninstall >/dev/null
[ ! -e "$work/home/.local/bin/dicom-viewer" ] || fail "uninstall left the command"
step "install.sh --user / --uninstall"

if [ -n "$keep" ]; then
  mkdir -p "$keep" && rm -rf "$keep/dicom-viewer" && cp -a "$work/dist/dicom-viewer" "$keep/"
  step "build kept in $keep/dicom-viewer"
fi
step "release check passed"
