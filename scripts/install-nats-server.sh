#!/usr/bin/env bash
# Installs a nats-server >= 2.10.27 into .tools/nats-server when none is available.
#
# Why not `apt-get install nats-server`: Debian bookworm ships 2.9.10, which lacks multi-filter
# consumers (filter_subjects, 2.10+) that every Conveyor driver consumer uses. Debian trixie's
# package is a static binary that runs on bookworm, so we download it with a *private* apt state
# (nothing is added to the machine's apt sources) and unpack it with dpkg -x.
# The Debian mirror is read from the machine's own apt configuration; no host is named here.
set -euo pipefail

MIN_VERSION="2.10.27"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.tools/nats-server"
BIN="$DEST/usr/sbin/nats-server"

version_of() { "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -1; }
new_enough() { [ -n "$1" ] && [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$1" | sort -V | head -1)" = "$MIN_VERSION" ]; }

for candidate in "${NATS_SERVER_BIN:-}" "$BIN" "$(command -v nats-server || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    v="$(version_of "$candidate")"
    if new_enough "$v"; then
      echo "nats-server $v at $candidate"
      exit 0
    fi
    echo "ignoring nats-server ${v:-?} at $candidate (need >= $MIN_VERSION)" >&2
  fi
done

supply_hint="install nats-server >= $MIN_VERSION yourself (a release binary of the NATS project, or your package manager) and put it on PATH or set NATS_SERVER_BIN=/path/to/nats-server"
for tool in apt-get dpkg; do
  if ! command -v "$tool" >/dev/null; then
    echo "install-nats-server: no nats-server >= $MIN_VERSION found, and this machine has no $tool to fetch Debian's package: $supply_hint" >&2
    exit 1
  fi
done
echo "install-nats-server: fetching Debian trixie's nats-server package (apt-get download with a private apt state, unpacked with dpkg -x into .tools/; nothing is installed system-wide)" >&2

mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror="$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f")"
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list)"
fi
if [ -z "$mirror" ]; then
  echo "install-nats-server: no Debian mirror found in /etc/apt/sources.list(.d): $supply_hint" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$work/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root" -q
)
apt-get "${apt_opts[@]}" update >/dev/null
(cd "$work" && apt-get "${apt_opts[@]}" download nats-server >/dev/null)
rm -rf "$DEST"
mkdir -p "$DEST"
dpkg -x "$work"/nats-server_*.deb "$DEST"
v="$(version_of "$BIN")"
if ! new_enough "$v"; then
  echo "install-nats-server: downloaded nats-server ${v:-?} is older than $MIN_VERSION" >&2
  exit 1
fi
echo "nats-server $v installed at $BIN"
