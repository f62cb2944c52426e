#!/usr/bin/env bash
# Run the edge runner as aarch64 (Raspberry Pi OS-like userland) under qemu user-mode emulation.
#
# For CORRECTNESS only (do the real aarch64 wheels give the same predictions as x86?), never
# for timing: emulation is 100-400x slower and the slowdown varies by op.
#
# Builds, once, a cache in ${SKINLESION_AARCH64_CACHE:-~/.cache/skinlesion-aarch64}:
#   sysroot/       Debian 12 (Bookworm) arm64 userland with Python 3.11: .debs resolved and
#                  downloaded by a PRIVATE arm64-only apt state (the host's dpkg state is never
#                  touched), unpacked with dpkg-deb
#   site-cp311/    pinned aarch64 wheels (pip --platform with every manylinux tag)
#   wheel-cp311/   with --wheel: the project's wheel installed with its [edge] extra, as
#                  `pip install skinlesion_edge-*.whl[edge]` does on a Pi (same pins)
#   cpuinfo-*      a Raspberry Pi /proc/cpuinfo (onnxruntime segfaults under qemu without one)
# qemu-user-static comes from apt when it is missing and we are root.
#
# Then runs the emulated Python with QEMU_CPU=cortex-a72 (Pi 4; qemu's default CPU offers SVE,
# which no Pi has and which changed LiteRT int8 outputs) and the fake cpuinfo bind-mounted
# over /proc/cpuinfo inside a private mount namespace (unshare -m as root, -rm otherwise).
#
# Usage:
#   edge/emulate_aarch64.sh setup                       # build the cache, print what is there
#   edge/emulate_aarch64.sh --wheel WHL classify ARGS   # the installed skinlesion classify ARGS:
#                                                       # WHL[edge] installed for aarch64, nothing
#                                                       # from this checkout; packaged model default
#   edge/emulate_aarch64.sh --wheel WHL python ARGS     # the emulated python3.11 over that install
#   edge/emulate_aarch64.sh classify ARGS...            # no pip (the Pi fallback of copying edge/,
#   edge/emulate_aarch64.sh python ARGS...              # core/, models/): this checkout's
#                                                       # edge/classify.py over the pinned wheels
#   edge/emulate_aarch64.sh --legacy ...                # the edge-legacy set instead (with --wheel:
#                                                       # WHL[edge-legacy]): tflite-runtime 2.14,
#                                                       # numpy 1.26, OpenCV 4.11
# Environment: PIP_PYTHON (host Python that runs pip; default python3), QEMU_CPU_MODEL
# (cortex-a72 | cortex-a76), SKINLESION_AARCH64_CACHE.
# Exit codes: the emulated program's own; 77 when emulation cannot run here (one line on
# stderr starting with "SKIP:" says why); 1 when setting up failed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SKINLESION_AARCH64_CACHE:-$HOME/.cache/skinlesion-aarch64}"
CPU="${QEMU_CPU_MODEL:-cortex-a72}"
PIP_PYTHON="${PIP_PYTHON:-python3}"
PYVER=3.11
SUITE=bookworm
DEBS="python3 libstdc++6 libgomp1 ca-certificates"
# Same versions as the x86 environment, so a difference is the architecture, not a release.
WHEELS="numpy==2.4.6 opencv-python-headless==5.0.0.93 ai-edge-litert==2.3.0 onnxruntime==1.32.0"
SITE="$CACHE/site-cp${PYVER/./}"
WSITE="$CACHE/wheel-cp${PYVER/./}"
EXTRA=edge
WHEEL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --legacy)
      WHEELS="numpy==1.26.4 opencv-python-headless==4.11.0.86 tflite-runtime==2.14.0"
      SITE="$SITE-legacy"; WSITE="$WSITE-legacy"; EXTRA=edge-legacy; shift ;;
    --wheel)
      [ -f "${2:-}" ] || { echo "--wheel needs a wheel file (pip wheel . --no-deps -w dist)" >&2; exit 2; }
      WHEEL="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    *) break ;;
  esac
done
SYSROOT="$CACHE/sysroot"

skip() { echo "SKIP: $*" >&2; exit 77; }
log() { echo "[aarch64] $*" >&2; }

find_qemu() { command -v qemu-aarch64-static || command -v qemu-aarch64 || true; }

ensure_qemu() {
  QEMU="$(find_qemu)"
  [ -n "$QEMU" ] && return
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    skip "qemu-aarch64-static is not installed and cannot be (needs root and apt-get): sudo apt-get install qemu-user-static"
  fi
  log "installing qemu-user-static with apt-get"
  { apt-get install -y -q --no-install-recommends qemu-user-static >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 &&
      apt-get install -y -q --no-install-recommends qemu-user-static >/dev/null 2>&1; }; } ||
    skip "apt-get could not install qemu-user-static (no network to the Debian mirror?)"
  QEMU="$(find_qemu)"
  [ -n "$QEMU" ] || skip "qemu-user-static installed but qemu-aarch64 not found"
}

ensure_sysroot() {
  [ -f "$SYSROOT/.complete" ] && return
  command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
    skip "building the arm64 sysroot needs apt-get and dpkg-deb (Debian/Ubuntu host)"
  local A="$CACHE/apt"
  rm -rf "$SYSROOT" "$A"
  mkdir -p "$A/state/lists/partial" "$A/cache/archives/partial" "$A/etc/apt.conf.d" \
           "$A/etc/preferences.d" "$A/etc/sources.list.d" "$SYSROOT"
  : > "$A/state/status"
  # Debian's own arm64 archive (deb.debian.org), whatever the host distribution.
  cat > "$A/etc/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: $SUITE $SUITE-updates
Components: main
Architectures: arm64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] ||
    skip "no Debian archive keyring (/usr/share/keyrings/debian-archive-keyring.gpg): apt-get install debian-archive-keyring"
  local O=(-o "Dir::State=$A/state" -o "Dir::State::status=$A/state/status"
           -o "Dir::Cache=$A/cache" -o "Dir::Etc::SourceList=/dev/null"
           -o "Dir::Etc::SourceParts=$A/etc/sources.list.d" -o "Dir::Etc::Parts=$A/etc/apt.conf.d"
           -o "Dir::Etc::PreferencesParts=$A/etc/preferences.d" -o "APT::Architecture=arm64"
           -o "APT::Architectures::=arm64" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
           -o "Acquire::Languages=none" -q)
  log "resolving and downloading arm64 .debs for: $DEBS"
  apt-get "${O[@]}" update >/dev/null 2>&1 ||
    skip "apt-get update of the private arm64 state failed (no network to deb.debian.org?)"
  apt-get "${O[@]}" install -y --download-only --no-install-recommends $DEBS >/dev/null 2>&1 ||
    skip "apt-get could not download the arm64 packages (no network to deb.debian.org?)"
  local n=0
  for deb in "$A"/cache/archives/*.deb; do
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$SYSROOT"
    n=$((n + 1))
  done
  [ -x "$SYSROOT/usr/bin/python$PYVER" ] || { log "no python$PYVER in the sysroot"; exit 1; }
  rm -rf "$A/cache/archives"
  log "sysroot: $n packages unpacked into $SYSROOT"
  touch "$SYSROOT/.complete"
}

# pip install for the emulated Python into a target folder: every manylinux tag listed (pip
# does not expand one tag to older ones and silently falls back to ancient releases).
pip_aarch64() {
  local P=() t
  for t in manylinux2014_aarch64 linux_aarch64 manylinux_2_17_aarch64 manylinux_2_24_aarch64 \
           manylinux_2_26_aarch64 manylinux_2_27_aarch64 manylinux_2_28_aarch64 \
           manylinux_2_31_aarch64 manylinux_2_34_aarch64 manylinux_2_35_aarch64 \
           manylinux_2_36_aarch64; do P+=(--platform "$t"); done
  "$PIP_PYTHON" -m pip install -q --disable-pip-version-check --no-warn-script-location \
      --only-binary=:all: --python-version "$PYVER" --implementation cp \
      --abi "cp${PYVER/./}" "${P[@]}" "$@"
}

ensure_wheels() {
  [ -f "$SITE/.complete" ] && [ "$(cat "$SITE/.complete")" = "$WHEELS" ] && return
  "$PIP_PYTHON" -m pip --version >/dev/null 2>&1 || skip "no pip for $PIP_PYTHON (set PIP_PYTHON)"
  rm -rf "$SITE"
  log "downloading aarch64 wheels: $WHEELS"
  pip_aarch64 --target "$SITE" $WHEELS >/dev/null 2>&1 ||
    skip "pip could not download the aarch64 wheels ($WHEELS): no network to PyPI?"
  echo "$WHEELS" > "$SITE/.complete"
}

# The project's wheel with its extra, as a Pi installs it, pinned like site-cp311/ (so a
# difference from x86 is the architecture, not a release). The pinned wheels are already in
# pip's cache (ensure_wheels), so a failure here is the wheel's own: an error, never a skip.
ensure_project_wheel() {
  local stamp err
  stamp="$(sha256sum "$WHEEL" | cut -d' ' -f1) [$EXTRA] $WHEELS"
  [ -f "$WSITE/.complete" ] && [ "$(cat "$WSITE/.complete")" = "$stamp" ] && return
  rm -rf "$WSITE"
  log "installing $(basename "$WHEEL")[$EXTRA] for aarch64 with $WHEELS"
  err="$(pip_aarch64 --target "$WSITE" "$WHEEL[$EXTRA]" $WHEELS 2>&1 >/dev/null)" ||
    { echo "$err" | tail -20 >&2; log "pip could not install $WHEEL[$EXTRA] for aarch64"; exit 1; }
  [ -f "$WSITE/bin/skinlesion" ] ||
    { log "the wheel installed no skinlesion command"; exit 1; }
  echo "$stamp" > "$WSITE/.complete"
}

write_cpuinfo() {
  local part name f="$CACHE/cpuinfo-$CPU"
  case "$CPU" in
    cortex-a72) part=0xd08; name="Raspberry Pi 4 Model B Rev 1.5"; rev=d03115 ;;
    cortex-a76) part=0xd0b; name="Raspberry Pi 5 Model B Rev 1.0"; rev=d04170 ;;
    *) echo "QEMU_CPU_MODEL must be cortex-a72 or cortex-a76" >&2; exit 2 ;;
  esac
  : > "$f"
  for i in 0 1 2 3; do
    cat >> "$f" <<EOF
processor	: $i
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: $part
CPU revision	: 3

EOF
  done
  printf 'Revision\t: %s\nModel\t\t: %s\n' "$rev" "$name" >> "$f"
  CPUINFO="$f"
}

namespace_flags() {
  local f
  for f in -m -rm; do
    if unshare $f sh -c 'mount --bind /dev/null /proc/cpuinfo' >/dev/null 2>&1; then
      NS="$f"; return
    fi
  done
  skip "cannot make a private mount namespace to fake /proc/cpuinfo (unshare -m / -rm refused; in a container: --privileged or allow user namespaces)"
}

setup() {
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  command -v flock >/dev/null && flock 9
  ensure_qemu
  ensure_sysroot
  ensure_wheels
  [ -z "$WHEEL" ] || ensure_project_wheel
  write_cpuinfo
  namespace_flags
}

run_python() {
  # with --wheel only the installed wheel is importable (nothing from this checkout)
  local path="$SITE:$REPO"
  [ -z "$WHEEL" ] || path="$WSITE"
  exec unshare $NS sh -c 'mount --bind "$0" /proc/cpuinfo && exec "$@"' "$CPUINFO" \
    env QEMU_CPU="$CPU" QEMU_LD_PREFIX="$SYSROOT" PYTHONPATH="$path" \
        PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 OPENCV_LOG_LEVEL=ERROR \
        "$QEMU" "$SYSROOT/usr/bin/python$PYVER" "$@"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    setup
    log "ready: $QEMU, CPU $CPU, $("$QEMU" --version | head -1)"
    log "python: $SYSROOT/usr/bin/python$PYVER; wheels: $WHEELS"
    [ -z "$WHEEL" ] || log "installed: $(basename "$WHEEL")[$EXTRA] in $WSITE" ;;
  classify)
    setup
    # the console script pip wrote (its #! names the host Python: run it with the emulated one)
    if [ -n "$WHEEL" ]; then run_python "$WSITE/bin/skinlesion" classify "$@"
    else run_python "$REPO/edge/classify.py" "$@"; fi ;;
  python) setup; run_python "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
