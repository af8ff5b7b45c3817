#!/usr/bin/env bash
# Installs the tessera .deb into a fresh Debian 12 (bookworm) root and runs it there: `apt-get install ./tessera_*.deb`
# (which pulls DCMTK, OpenBLAS, OpenJPEG, … from the Debian mirror), then `tessera --version` and `tessera inspect`
# on a sample site, the tessera user the postinst makes, `systemd-analyze verify` of the installed units, and a purge.
# Run as root (debootstrap, chroot, mounts): `make test-deb`, or `bash scripts/test_deb.sh out/tessera_*.deb`.
# The root (debootstrap --variant=minbase) is made once and kept as a tarball with the downloaded packages in
# $TESSERA_DEB_TEST_CACHE (default /var/cache/tessera-deb-test); each run unpacks a fresh copy and removes it.
set -euo pipefail
[ $# = 1 ] && [ -f "$1" ] || { echo "usage: test_deb.sh path/to/tessera_VERSION_ARCH.deb" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "test_deb: run as root (debootstrap, chroot)" >&2; exit 2; }
deb=$(realpath "$1")
repo=$(cd "$(dirname "$0")/.." && pwd)
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${TESSERA_DEB_TEST_CACHE:-/var/cache/tessera-deb-test}
site=community-hospital
start=$SECONDS
step() { echo "test_deb [$((SECONDS - start)) s]: $*"; }
fail() { echo "test_deb: FAILED: $*" >&2; exit 1; }

mkdir -p "$cache/archives/partial"
tarball=$cache/$suite-minbase.tar
if [ ! -s "$tarball" ]; then
    step "debootstrap $suite (once; cached in $tarball)"
    fresh=$(mktemp -d "$cache/debootstrap.XXXXXX")
    trap 'rm -rf "$fresh"' EXIT
    debootstrap --variant=minbase --cache-dir="$cache/archives" "$suite" "$fresh" "$mirror" >"$cache/debootstrap.log" \
        || { tail -20 "$cache/debootstrap.log" >&2; fail "debootstrap (log: $cache/debootstrap.log)"; }
    rm -f "$fresh"/var/cache/apt/archives/*.deb
    tar -C "$fresh" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$fresh"
    trap - EXIT
fi

root=$(mktemp -d /var/tmp/tessera-deb-test.XXXXXX)
cleanup() {
    for m in var/cache/apt/archives dev proc; do
        if mountpoint -q "$root/$m"; then umount "$root/$m" || umount -l "$root/$m"; fi
    done
    # Never delete through a mount that is still there.
    if ! grep -q " $root/" /proc/mounts; then rm -rf "$root"; else echo "test_deb: $root still mounted" >&2; fi
}
trap cleanup EXIT
step "fresh root in $root"
tar -C "$root" -xf "$tarball"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount --bind "$cache/archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"
grep -q "^VERSION_CODENAME=$suite$" "$root/etc/os-release" || fail "the root is not Debian $suite"
cp "$deb" "$root/tmp/"
cp -r "$repo/sample-data/$site" "$root/tmp/$site"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

step "apt-get install ./$(basename "$deb")"
in_root apt-get -qq update
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "/tmp/$(basename "$deb")" \
    >"$root/tmp/apt.log" || { tail -30 "$root/tmp/apt.log" >&2; fail "apt-get install"; }
for p in libdcmtk17 libopenblas0 libopenjp2-7 zlib1g libsqlite3-0; do
    in_root dpkg -s "$p" >/dev/null 2>&1 || fail "dependency $p was not installed"
done
[ -x "$root/usr/bin/tessera" ] || fail "/usr/bin/tessera missing"
step "installed: $(in_root dpkg-query -W -f '${Package} ${Version}, Depends: ${Depends}' tessera)"

expected=$(dpkg-deb -f "$deb" Version)
version=$(in_root tessera --version) || fail "tessera --version"
[ "$version" = "$expected" ] || fail "tessera --version printed '$version', the package is $expected"
step "tessera --version: $version"

in_root tessera inspect --json "/tmp/$site" >"$root/tmp/inspect.json" || fail "tessera inspect"
python3 - "$root/tmp/inspect.json" <<'PY' || fail "tessera inspect's output"
import json, sys
report = json.load(open(sys.argv[1]))
series = report["series"]
assert len(series) == 1, f"{len(series)} series"
s = series[0]
print("test_deb: inspect:", {k: s[k] for k in ("modality", "dimensions", "spacing") if k in s},
      "segmentations:", len(s.get("segmentations", [])))
assert s.get("segmentations"), "no SEG found"
PY

in_root getent passwd tessera >/dev/null || fail "the postinst made no tessera user"
[ "$(stat -c %U:%G "$root/var/lib/tessera")" = tessera:tessera ] || fail "/var/lib/tessera is not tessera's"
for u in tessera-server.service tessera-client@.service; do
    [ -f "$root/lib/systemd/system/$u" ] || fail "$u not installed"
done
[ -f "$root/etc/tessera/server.env" ] && [ -f "$root/usr/share/tessera/pipelines/segmentation-unet2d.yaml" ] \
    || fail "settings or pipelines missing"
if command -v systemd-analyze >/dev/null; then
    # The host's systemd checks the installed units, with ExecStart pointing at the binary inside the root (verify
    # wants it executable) and the instance named; any message is a failure.
    units=$(mktemp -d)
    sed "s|/usr/bin/tessera|$root/usr/bin/tessera|" "$root/lib/systemd/system/tessera-server.service" \
        >"$units/tessera-server.service"
    sed "s|/usr/bin/tessera|$root/usr/bin/tessera|" "$root/lib/systemd/system/tessera-client@.service" \
        >"$units/tessera-client@site.service"
    messages=$(cd "$units" && systemd-analyze verify ./tessera-server.service ./tessera-client@site.service 2>&1) \
        || { rm -rf "$units"; fail "systemd-analyze verify: $messages"; }
    rm -rf "$units"
    [ -z "$messages" ] || fail "systemd-analyze verify: $messages"
    step "systemd-analyze verify: both units clean"
else
    step "systemd-analyze missing: units not verified"
fi

in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq tessera >"$root/tmp/purge.log" \
    || { tail -20 "$root/tmp/purge.log" >&2; fail "apt-get purge"; }
[ ! -e "$root/usr/bin/tessera" ] || fail "purge left /usr/bin/tessera"
step "purged"
echo "test_deb: all checks passed ($((SECONDS - start)) s)"
