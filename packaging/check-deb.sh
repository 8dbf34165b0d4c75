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
# --reinstall: a root kept from an earlier check may hold a package of the same version.
in_root apt-get install -y -q --no-install-recommends --reinstall /tmp/hypernet-studio.deb

echo "--- installed files"
in_root dpkg -L hypernet-studio | grep -E 'bin/|applications|metainfo|icons|templates/|demo/[^/]*$'


echo "--- the files the package must install"
for file in \
    /usr/bin/hnstudio \
    /usr/share/applications/io.github.hypernetstudio.HypernetStudio.desktop \
    /usr/share/metainfo/io.github.hypernetstudio.HypernetStudio.metainfo.xml \
    /usr/share/icons/hicolor/scalable/apps/io.github.hypernetstudio.HypernetStudio.svg \
    /usr/share/hypernet-studio/templates/style_filewords.txt \
    /usr/share/hypernet-studio/demo/demo.safetensors \
    /usr/share/hypernet-studio/demo/demo.yaml \
    /usr/share/hypernet-studio/demo/vocab.json \
    /usr/share/hypernet-studio/demo/merges.txt \
    /usr/share/hypernet-studio/demo/demo-run.json \
    /usr/share/hypernet-studio/demo/ink/00000.png; do
    in_root test -s "$file" || {
        echo "check-deb.sh: the package did not install $file" >&2
        exit 1
    }
done
echo "all present"

echo "--- hnstudio --version (and the demo the studio will open)"
version="$(in_root hnstudio --version)"
echo "$version"
grep -q "^demo: /usr/share/hypernet-studio/demo$" <<<"$version" || {
    echo "check-deb.sh: the installed program does not find its demo" >&2
    exit 1
}

echo "--- hnstudio info on the demo model"
demo=/usr/share/hypernet-studio/demo
in_root test -f "$demo/demo.safetensors" || {
    echo "check-deb.sh: the package has no demo model at $demo" >&2
    exit 1
}
in_root hnstudio info "$demo/demo.safetensors"

echo "--- hnstudio generate with the demo model"
in_root hnstudio generate --model "$demo/demo.safetensors" --tokenizer "$demo" \
    --prompt "a red circle on a blue background" --sampler ddim --steps 20 --seed 1 \
    -o /tmp/demo-check.png
in_root test -s /tmp/demo-check.png

echo "--- hnstudio train: the demo run, shortened, writing outside the read-only demo folder"
in_root touch /tmp/before-train
in_root hnstudio train "$demo/demo-run.json" --steps 20 --output /tmp/demo-run
in_root test -s /tmp/demo-run/hypernetworks/ink-demo-20.pt
changed="$(in_root find "$demo" -newer /tmp/before-train)"
if [[ -n "$changed" ]]; then
    echo "check-deb.sh: training the demo wrote into $demo: $changed" >&2
    exit 1
fi
echo "check-deb.sh: the package installs and runs on a clean Debian 12"
