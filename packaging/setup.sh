#!/usr/bin/env bash
# One-command set-up on a fresh Debian 12 machine.
#
#   packaging/setup.sh run    install the packages, build, and open the studio
#   packaging/setup.sh test   install the packages, build, and run every test
#
# Installing needs root; the script uses sudo when it is not run as root.

set -euo pipefail

mode="${1:-}"
if [[ "$mode" != "run" && "$mode" != "test" ]]; then
    echo "usage: $0 run|test" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${HNSTUDIO_BUILD_DIR:-$here/build}"
jobs="$(nproc)"

packages=(
    cmake ninja-build g++ ccache pkg-config
    libtorch-dev libopenblas0 zlib1g-dev
    qt6-base-dev libqcustomplot-dev libopencv-dev libyaml-cpp-dev
    xvfb
)

install_packages() {
    local missing=()
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$package")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return
    fi

    local sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    echo "Installing: ${missing[*]}"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
}

build_project() {
    cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DHNSTUDIO_BUILD_TESTS="$([[ "$mode" == "test" ]] && echo ON || echo OFF)"
    cmake --build "$build" --parallel "$jobs"
}

install_packages
build_project

if [[ "$mode" == "test" ]]; then
    # Two suites at a time, one LibTorch thread each (tests/CMakeLists.txt sets it).
    ctest --test-dir "$build" --output-on-failure --parallel 2
else
    exec "$build/app/hnstudio"
fi
