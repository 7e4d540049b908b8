#!/usr/bin/env bash
# The fresh-machine check (`make fresh-check`): does the README's set-up work
# on a minimal Debian 12 that has never seen this project?
#
# 1. Builds a minimal Debian 12 root (debootstrap --variant=minbase bookworm)
#    from this machine's configured Debian mirror, read from its apt sources,
#    with the network's view a new machine here has: apt's proxy settings,
#    the network's CA certificates and npm's use of them.
# 2. Copies the committed checkout in with `git archive HEAD` (no ../shared,
#    no build folder, nothing uncommitted).
# 3. Mounts /proc and /dev, and runs the README's first block of commands
#    inside a chroot as root, in order. `make serve` runs in the background
#    until `detr-client health` answers SERVING, then gets SIGTERM and must
#    exit 0; every other command must exit 0.
#
# Minutes: the root (~1.5), the packages (~3), a cold build (~8), the tests.
# Run it after any change to deploy/install-deps.sh, CMake or the Dockerfile.
#
#   tests/fresh_machine/fresh_check.sh [ROOT]   (default /var/tmp/detr-fresh-check)
set -euo pipefail

SOURCE=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
ROOT=${1:-/var/tmp/detr-fresh-check}
LOG=${FRESH_CHECK_LOG:-$ROOT.log}
PROJECT=/root/detr-serve
started=$(date +%s)

say() { printf '[fresh-check %4ds] %s\n' $(($(date +%s) - started)) "$*" | tee -a "$LOG"; }
fail() { say "FAILED: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "run as root (debootstrap, mount and chroot need it)"
command -v debootstrap > /dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap > /dev/null; }

# The machine's Debian mirror: the first source for bookworm, deb822 or
# one-line format. Never written into the repository.
mirror() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f $file ]] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
         /(^|\n)Suites:[^\n]*(^| )bookworm( |\n|$)/ {
           for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, f, " "); print f[2]; exit }
         }' "$file"
  done
  local lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
  for file in "${lists[@]}"; do
    [[ -f $file ]] && awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' "$file"
  done
  return 0
}
mkdir -p "$(dirname "$LOG")" && : > "$LOG"
MIRROR=$(mirror | head -n 1)
[[ -n $MIRROR ]] || fail "no Debian bookworm source in /etc/apt/sources.list{,.d}"

mounted=()
cleanup() {
  local m
  for ((m = ${#mounted[@]} - 1; m >= 0; m--)); do umount -R "${mounted[m]}" 2> /dev/null || umount -l "${mounted[m]}" || true; done
  [[ -n ${server_pid:-} ]] && kill "$server_pid" 2> /dev/null || true
}
trap cleanup EXIT

rm -rf "$ROOT" && mkdir -p "$ROOT"
say "debootstrap --variant=minbase bookworm $ROOT (mirror from the apt sources)"
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >> "$LOG" 2>&1 || fail "debootstrap (see $LOG)"

# The machine's view of its mirror, as a new machine on this network would
# have it: its Debian sources (bookworm, updates, security) and how apt
# reaches them (Acquire settings). No packages, no other repositories.
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  cp /etc/apt/sources.list.d/debian.sources "$ROOT/etc/apt/sources.list.d/" && : > "$ROOT/etc/apt/sources.list"
fi
grep -l '^Acquire' /etc/apt/apt.conf.d/* 2> /dev/null | xargs -r cp -t "$ROOT/etc/apt/apt.conf.d/"
# The network's TLS trust, as every machine here has it: its own CAs (which
# Debian's ca-certificates adds to the system store when install-deps.sh
# installs it) and npm told to use that store (/etc/npmrc); without them npm
# meets a certificate it cannot verify (SELF_SIGNED_CERT_IN_CHAIN).
if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
fi
[[ -f /etc/npmrc ]] && cp /etc/npmrc "$ROOT/etc/npmrc"

say "copying the committed checkout ($(git -C "$SOURCE" rev-parse --short HEAD)) with git archive"
mkdir -p "$ROOT$PROJECT"
git -C "$SOURCE" archive HEAD | tar -x -C "$ROOT$PROJECT"

mount -t proc proc "$ROOT/proc" && mounted+=("$ROOT/proc")
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev" && mounted+=("$ROOT/dev")

in_root() { chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb bash -c "cd $PROJECT && $1"; }

# The README's commands: its first ```sh block, one command per line.
mapfile -t commands < <(awk '/^```sh/ { inside = 1; next } inside && /^```/ { exit } inside && NF { print }' "$SOURCE/README.md")
((${#commands[@]} > 0)) || fail "README.md has no \`\`\`sh block"

for command in "${commands[@]}"; do
  command=${command%%#*}  # the README's comments
  if [[ $command =~ ^make\ serve ]]; then
    say "running in the background until healthy: $command"
    in_root "$command" >> "$LOG" 2>&1 &
    server_pid=$!
    for ((i = 0; i < 1800; i++)); do  # it builds first: up to an hour
      in_root "build/bin/detr-client health" > /dev/null 2>&1 && break
      kill -0 "$server_pid" 2> /dev/null || fail "'$command' exited before serving (see $LOG)"
      sleep 2
    done
    in_root "build/bin/detr-client health" >> "$LOG" 2>&1 || fail "'$command' never got healthy"
    say "serving; detect on the sample image:"
    in_root "build/bin/detr-client detect deploy/samples/shapes.png" 2>&1 | tee -a "$LOG" | head -c 400
    echo
    pkill -TERM -f "^build/bin/detr-server" || pkill -TERM detr-server
    wait "$server_pid" || fail "'$command' did not exit 0 after SIGTERM (see $LOG)"
    server_pid=
  else
    say "running: $command"
    in_root "$command" >> "$LOG" 2>&1 || fail "'$command' (see $LOG)"
  fi
done
say "PASSED: the README's commands work on a fresh Debian 12 ($(in_root 'cat /etc/debian_version'))"
grep -E "tests passed|tests failed" "$LOG" | tail -n 1 | while read -r line; do say "$line"; done
