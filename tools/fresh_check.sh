#!/usr/bin/env bash
# README's two commands on a bare Debian 12, as a new user runs them.
#
# Usage: tools/fresh_check.sh [--full] [--train-iters N] [--cuda DIR] [--work DIR] [--keep]
#
# Builds a minimal Debian 12 root with debootstrap (variant minbase: apt and a shell,
# no compiler, no CMake, none of coco's libraries), copies a clean clone of the current
# commit into it, and runs README's commands inside it with chroot, /proc, /sys and
# /dev mounted (and unmounted again on every exit, failure included). The commands are
# read from README.md's "Two commands" section, so what runs is what a user copies.
#
#   default (CI)  1. README's first command with `--max-iter N` appended (setup,
#                    MNIST, configure, build coco-train, a short training run)
#                 2. `cmake --build build -j2`: every other target
#   --full        README's first command verbatim (the whole MNIST schedule), then its
#                 second verbatim (build every target, run every test)
#
# Each step prints its exit code and wall time, a summary closes the run, and the
# script exits non-zero naming the first step that failed.
#
#   --train-iters N  iterations of the short training run (default 200)
#   --cuda DIR       bind a CUDA toolkit read-only at /usr/local/cuda inside the root
#                    and put its bin/ on PATH (default: none, a user without nvcc)
#   --work DIR       where the root goes (default: build-fresh/ in the repository,
#                    which git ignores); it is made anew on every run
#   --keep           leave the root in place afterwards (default: removed)
#   --mirror URL     Debian mirror (default: http://deb.debian.org/debian)
#
# The commands run with an empty environment but HOME, LANG, TERM, PATH and
# COCO_FRESH_CHROOT=1 (the one test that behaves differently in a chroot reads it:
# tests/fault/fault_injection.py).
#
# Needs root (debootstrap, chroot, mount), Debian's archive and the npm registry on
# the network, and about 6 GB of disk. Only the site's network settings are taken
# from this machine: /etc/resolv.conf and the CA certificates in
# /usr/local/share/ca-certificates (a proxy's, say). No package, cache or build is.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
full=0 iters=200 cuda="" work="$repo/build-fresh" keep=0 mirror="http://deb.debian.org/debian"
usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=1; shift ;;
    --train-iters) iters="${2:?--train-iters needs a number}"; shift 2 ;;
    --cuda) cuda="${2:?--cuda needs a folder}"; shift 2 ;;
    --work) work="${2:?--work needs a folder}"; shift 2 ;;
    --keep) keep=1; shift ;;
    --mirror) mirror="${2:?--mirror needs a URL}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fresh_check: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$iters" =~ ^[1-9][0-9]*$ ]] || { echo "fresh_check: --train-iters takes a positive integer, not '$iters'" >&2; exit 2; }
[ -z "$cuda" ] || [ -x "$cuda/bin/nvcc" ] || { echo "fresh_check: --cuda $cuda has no bin/nvcc" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "fresh_check: needs root (debootstrap, chroot, mount)" >&2; exit 1; }

# README's commands: the ```sh blocks of its "Two commands" section (up to the next
# heading of any level outside a code block), in order.
readme_commands() {
  awk '/^```/ { if (fence) { fence = 0; take = 0 } else { fence = 1; take = inside && $0 == "```sh" }; next }
       !fence && /^#/ { inside = ($0 == "## Two commands"); next }
       take' "$repo/README.md"
}
mapfile -t commands < <(readme_commands)
[ ${#commands[@]} -eq 2 ] || { echo "fresh_check: README.md's 'Two commands' section holds ${#commands[@]} sh blocks, not 2" >&2; exit 1; }
train_cmd=${commands[0]}
test_cmd=${commands[1]}
[[ "$train_cmd" == *"build/coco-train "* ]] || { echo "fresh_check: README's first command runs no build/coco-train" >&2; exit 1; }

root="$work/root"
results=()
failed=""

# step NAME COMMAND: runs COMMAND inside the root, in the clone; records rc and time.
step() {
  local name=$1 cmd=$2 t0 rc path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  [ -z "$cuda" ] || path="/usr/local/cuda/bin:$path"
  echo "== fresh_check: $name"
  echo "   \$ $cmd"
  t0=$(date +%s)
  set +e
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb PATH="$path" COCO_FRESH_CHROOT=1 \
    /bin/bash -c "cd /root/coco && $cmd"
  rc=$?
  set -e
  results+=("$(printf '%-34s rc=%-3s %6d s' "$name" "$rc" "$(( $(date +%s) - t0 ))")")
  echo "== fresh_check: $name: exit $rc after $(( $(date +%s) - t0 )) s"
  [ $rc -eq 0 ] || failed=$name
  return $rc
}

unmount_all() {
  local m
  for m in usr/local/cuda dev sys proc; do
    mountpoint -q "$root/$m" 2>/dev/null || continue
    umount -R "$root/$m" 2>/dev/null || umount -lR "$root/$m"
  done
}

finish() {
  local rc=$?
  unmount_all
  echo "== fresh_check summary (commit $commit)"
  printf '   %s\n' "${results[@]+"${results[@]}"}"
  if [ -n "$failed" ]; then echo "== fresh_check: FAILED at '$failed'"; rc=1; fi
  [ $rc -eq 0 ] && [ -z "$failed" ] && echo "== fresh_check: passed"
  if [ $keep -eq 0 ] && [ -d "$root" ]; then rm -rf --one-file-system "$root"; fi
  exit $rc
}

commit=$(git -C "$repo" rev-parse HEAD)
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
  echo "fresh_check: note: uncommitted changes are not part of the check (it clones $commit)"
trap finish EXIT
trap 'exit 130' INT TERM

command -v debootstrap >/dev/null 2>&1 || {
  echo "fresh_check: installing debootstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
}
mkdir -p "$work"
unmount_all
rm -rf --one-file-system "$root"

t0=$(date +%s)
echo "== fresh_check: debootstrap bookworm (minbase) into $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 ||
  { echo "fresh_check: debootstrap failed; the end of $work/debootstrap.log:"; tail -n 20 "$work/debootstrap.log"; failed=debootstrap; exit 1; }
# A fresh install's sources: the release, its updates and its security updates.
cat > "$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
mkdir -p "$root/usr/local/share/ca-certificates"
find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$root/usr/local/share/ca-certificates/" \; 2>/dev/null || true
results+=("$(printf '%-34s rc=%-3s %6d s' debootstrap 0 "$(( $(date +%s) - t0 ))")")

git clone -q --no-hardlinks "$repo" "$root/root/coco"
git -C "$root/root/coco" checkout -q "$commit"

mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --rbind /dev "$root/dev"
if [ -n "$cuda" ]; then
  mkdir -p "$root/usr/local/cuda"
  mount --bind "$cuda" "$root/usr/local/cuda"
  mount -o remount,bind,ro "$root/usr/local/cuda"
fi

if [ $full -eq 1 ]; then
  step "README command 1 (train MNIST)" "$train_cmd"
  step "README command 2 (build, test)" "$test_cmd"
else
  step "README command 1, --max-iter $iters" "$train_cmd --max-iter $iters"
  step "build every target" "cmake --build build -j2"
fi
