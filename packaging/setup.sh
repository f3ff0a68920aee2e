#!/usr/bin/env bash
# Sets up everything the viewer needs on a fresh Debian machine: system libraries (apt) and a virtual
# environment in .venv with the package installed editable. Idempotent; re-running is cheap.
#   bash packaging/setup.sh          # runtime
#   bash packaging/setup.sh --test   # runtime + test tools
#   bash packaging/setup.sh --train  # runtime + PyTorch (CPU) for training the shipped models
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
for arg in "$@"; do
  case "$arg" in
    --test) extras="${extras:+$extras,}test" ;;
    --train) extras="${extras:+$extras,}train" ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

# Qt's xcb platform and fonts (offscreen rendering needs fontconfig/EGL too), Xvfb for real windows.
apt_pkgs="libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0
  libxcb-xinerama0 libxcb-randr0 libxcb-xfixes0 xvfb xauth fonts-dejavu-core"
# dciodvfy (dicom3tools) independently validates the DICOM SEG/SR the tests export.
case "$extras" in *test*) apt_pkgs="$apt_pkgs dicom3tools" ;; esac
# packaging/install.sh's tests check the menu entry and the MIME type the way desktops read them.
case "$extras" in *test*) apt_pkgs="$apt_pkgs desktop-file-utils shared-mime-info" ;; esac
# orthanc + orthanc-dicomweb: the real PACS the PACS tests query and retrieve from; dcmtk: the independent
# DIMSE peer (storescu, dcmqrscp); openssl makes the DICOM TLS tests' certificates.
case "$extras" in *test*) apt_pkgs="$apt_pkgs orthanc orthanc-dicomweb dcmtk openssl" ;; esac
missing=""
for p in $apt_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  # Another apt/dpkg (unattended upgrades, a second setup) holds the lock: wait for it (up to 10 min)
  # instead of failing. DPkg::Lock::Timeout waits for dpkg's lock; the loop covers apt's lists lock too.
  apt_wait() {
    err=$(mktemp)
    for _ in $(seq 1 120); do
      if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" 2>"$err"; then
        rm -f "$err"; return 0
      fi
      grep -qi "lock" "$err" || { cat "$err" >&2; rm -f "$err"; return 1; }
      echo "setup: waiting for the package manager's lock (another apt or dpkg is running)..." >&2
      sleep 5
    done
    cat "$err" >&2; rm -f "$err"; return 1
  }
  # No package may start its service while installing (Debian's policy-rc.d convention, exit 101 = deny):
  # Orthanc's would listen on every interface.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ] && [ "$(id -u)" = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=1
  fi
  rc=0; { apt_wait update -qq && apt_wait install -y -qq $missing >/dev/null; } || rc=$?
  if [ -n "$policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
  [ "$rc" = 0 ] || exit "$rc"
fi
# The PACS tests start their own Orthanc in a private network namespace; the package's system service
# (listening on every interface) is not wanted on a test machine.
case "$extras" in *test*)
  SUDO_STOP=""; [ "$(id -u)" = 0 ] || SUDO_STOP="sudo"
  if command -v systemctl >/dev/null && systemctl is-enabled orthanc >/dev/null 2>&1; then
    S=""; [ "$(id -u)" = 0 ] || S="sudo"
    $S systemctl disable --now orthanc >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/orthanc ]; then  # no systemd (containers): stop a service an earlier install started
    $SUDO_STOP /etc/init.d/orthanc stop >/dev/null 2>&1 || true
  fi ;;
esac

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
spec="."
[ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install -q -e "$spec"
