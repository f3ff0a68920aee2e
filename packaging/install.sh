#!/usr/bin/env bash
# Installs the frozen build (dist/dicom-viewer/, from packaging/dicom-viewer.spec) as a Linux desktop
# application, or removes it again.
#
#   bash packaging/install.sh [--user|--system] [--uninstall] [BUILD_DIR]
#
#   --user (default)  the application in ~/.local/lib/dicom-viewer, the command ~/.local/bin/dicom-viewer,
#                     menu entry, icons and MIME type under $XDG_DATA_HOME (~/.local/share)
#   --system          the application in /opt/dicom-viewer, the command /usr/local/bin/dicom-viewer, menu
#                     entry, icons and MIME type under /usr/local/share (run as root; $DESTDIR prefixes
#                     every path, for building distribution packages)
#   --uninstall       removes exactly the files the install wrote (listed in the app folder's
#                     .installed-files); the user's settings, labels and index are left alone
#   BUILD_DIR         default dist/dicom-viewer next to this script's repository
#
# Registers application/dicom (DICOM files and DICOMDIRs, packaging/linux/dicom-viewer-mime.xml) with the
# viewer; desktops that have no other DICOM application then open such files with it on double-click.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mode=user action=install build=""
for arg in "$@"; do
  case "$arg" in
    --user) mode=user ;;
    --system) mode=system ;;
    --uninstall) action=uninstall ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
    *) build="$arg" ;;
  esac
done
build="${build:-$here/../dist/dicom-viewer}"

if [ "$mode" = user ]; then
  data="${XDG_DATA_HOME:-$HOME/.local/share}"
  app="$HOME/.local/lib/dicom-viewer"
  bin="$HOME/.local/bin"
else
  root="${DESTDIR:-}"
  data="$root/usr/local/share"
  app="$root/opt/dicom-viewer"
  bin="$root/usr/local/bin"
fi
manifest="$app/.installed-files"

refresh_caches() {  # each tool is optional: a desktop without it rescans on its own
  if command -v update-mime-database >/dev/null; then update-mime-database "$data/mime" >/dev/null 2>&1 || true; fi
  if command -v update-desktop-database >/dev/null; then update-desktop-database -q "$data/applications" || true; fi
  if command -v gtk-update-icon-cache >/dev/null && [ -f "$data/icons/hicolor/index.theme" ]; then
    gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
  fi
}

if [ "$action" = uninstall ]; then
  if [ ! -f "$manifest" ]; then
    echo "install.sh: no installation found at $app (nothing removed)" >&2
    exit 1
  fi
  while IFS= read -r f; do rm -f -- "$f"; done < "$manifest"
  rm -rf -- "$app"
  refresh_caches
  echo "removed dicom-viewer from $app"
  exit 0
fi

if [ ! -x "$build/dicom-viewer" ]; then
  echo "install.sh: no build at $build (build it: pyinstaller --noconfirm packaging/dicom-viewer.spec)" >&2
  exit 1
fi
# An earlier install is replaced as a whole, so no file of an older version stays behind.
if [ -f "$manifest" ]; then
  while IFS= read -r f; do rm -f -- "$f"; done < "$manifest"
fi
rm -rf -- "$app"
mkdir -p "$(dirname "$app")" "$bin" "$data/applications" "$data/mime/packages"
cp -a "$build" "$app"
# Where the app is started from once installed ($DESTDIR only stages the files of a system install).
exe_final="$app/dicom-viewer"
[ "$mode" = system ] && exe_final="/opt/dicom-viewer/dicom-viewer"

written=()
ln -sfn "$exe_final" "$bin/dicom-viewer"; written+=("$bin/dicom-viewer")
sed "s|@EXEC@|$exe_final|g" "$here/linux/dicom-viewer.desktop" > "$data/applications/dicom-viewer.desktop"
written+=("$data/applications/dicom-viewer.desktop")
cp "$here/linux/dicom-viewer-mime.xml" "$data/mime/packages/dicom-viewer.xml"
written+=("$data/mime/packages/dicom-viewer.xml")
icons="$here/../resources/icons"
[ -d "$icons" ] || icons="$app/_internal/viewer/shipped/resources/icons"  # installing from a copied build
for png in "$icons"/dicom-viewer-*.png; do
  size="$(basename "$png" .png)"; size="${size#dicom-viewer-}"
  mkdir -p "$data/icons/hicolor/${size}x${size}/apps"
  cp "$png" "$data/icons/hicolor/${size}x${size}/apps/dicom-viewer.png"
  written+=("$data/icons/hicolor/${size}x${size}/apps/dicom-viewer.png")
done
mkdir -p "$data/icons/hicolor/scalable/apps"
cp "$icons/dicom-viewer.svg" "$data/icons/hicolor/scalable/apps/dicom-viewer.svg"
written+=("$data/icons/hicolor/scalable/apps/dicom-viewer.svg")
printf '%s\n' "${written[@]}" > "$manifest"
refresh_caches
echo "installed dicom-viewer in $app (command: $bin/dicom-viewer)"
case ":$PATH:" in *":$bin:"*) ;; *) echo "note: $bin is not on your PATH" ;; esac
