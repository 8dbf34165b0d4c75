#!/usr/bin/env bash
# Builds the .deb and checks it on a clean Debian 12: installs it with apt into a fresh
# debootstrap root (kept in $HNSTUDIO_CHROOT for the next run) and runs the installed hnstudio.
#
#   packaging/check-deb.sh [BUILD_DIR]
#
# Needs root (debootstrap, chroot) and Debian's package archive.

set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-${HNSTUDIO_BUILD_DIR:-$here/build}}"
root="${HNSTUDIO_CHROOT:-/var/tmp/hnstudio-bookworm}"
mirror="${HNSTUDIO_MIRROR:-http://deb.debian.org/debian}"

if [[ "$(id -u)" -ne 0 ]]; then
    echo "check-deb.sh: run as root (debootstrap and chroot need it)" >&2
    exit 2
fi

make_package() {
    cmake --build "$build" --target hnstudio >&2
    (cd "$build" && cpack -G DEB >&2)
    ls -t "$build"/hypernet-studio_*.deb | head -n 1
}

make_clean_root() {
    if [[ -x "$root/usr/bin/apt-get" ]]; then
        return
    fi
    command -v debootstrap >/dev/null || apt-get install -y -q --no-install-recommends debootstrap
    debootstrap --variant=minbase bookworm "$root" "$mirror"
}

in_root() {
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        DEBIAN_FRONTEND=noninteractive "$@"
}

deb="$(make_package)"
echo "package: $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --info "$deb" | sed -n '/Depends/p'

make_clean_root
# LibTorch reads the CPU's features from /proc/cpuinfo.
mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
cp "$deb" "$root/tmp/hypernet-studio.deb"
in_root apt-get update -q
in_root apt-get install -y -q --no-install-recommends /tmp/hypernet-studio.deb

echo "--- installed files"
in_root dpkg -L hypernet-studio | grep -E 'bin/|applications|metainfo|icons|templates/|demo/' \
    | head -n 20

echo "--- hnstudio --version"
in_root hnstudio --version

echo "--- hnstudio info"
demo_model="$(in_root sh -c 'ls /usr/share/hypernet-studio/demo/*.safetensors 2>/dev/null' \
    | head -n 1 || true)"
if [[ -n "$demo_model" ]]; then
    in_root hnstudio info "$demo_model"
else
    # No demo model in this build: check info on a hypernetwork made by the installed program.
    in_root hnstudio create /tmp/check.pt --layers "1, 2, 1" --seed 1 --force
    in_root hnstudio info /tmp/check.pt
fi
echo "check-deb.sh: the package installs and runs on a clean Debian 12"
