#!/usr/bin/env bash
# Installs the tessera .deb into a fresh Debian 12 (bookworm) root and runs it there: `apt-get install ./tessera_*.deb`
# (which pulls DCMTK, OpenBLAS, OpenJPEG, … from the Debian mirror), then `tessera --version` and `tessera inspect`
# on a sample site, the tessera user the postinst makes, `systemd-analyze verify` of the installed units, the units
# running under systemd in the booted root (systemd-nspawn; TESSERA_DEB_TEST_BOOT=0 skips it), and a purge.
# Run as root (debootstrap, chroot, mounts): `make test-deb`, or `bash scripts/test_deb.sh out/tessera_*.deb`.
# The root (debootstrap --variant=minbase) is made once and kept with the downloaded packages in
# $TESSERA_DEB_TEST_CACHE (default /var/cache/tessera-deb-test); each run works on an overlay of it, removed after.
# `test_deb.sh --prepare-root` only makes that root (CI starts it beside `make test`: it is mostly download).
set -euo pipefail
prepare_only=no
if [ "${1:-}" = --prepare-root ]; then prepare_only=yes; else
    [ $# = 1 ] && [ -f "$1" ] || { echo "usage: test_deb.sh path/to/tessera_VERSION_ARCH.deb | --prepare-root" >&2; exit 2; }
fi
[ "$(id -u)" = 0 ] || { echo "test_deb: run as root (debootstrap, chroot)" >&2; exit 2; }
[ $prepare_only = yes ] || deb=$(realpath "$1")
repo=$(cd "$(dirname "$0")/.." && pwd)
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${TESSERA_DEB_TEST_CACHE:-/var/cache/tessera-deb-test}
site=community-hospital
start=$SECONDS
step() { echo "test_deb [$((SECONDS - start)) s]: $*"; }
fail() { echo "test_deb: FAILED: $*" >&2; exit 1; }

mkdir -p "$cache/archives/partial"
base=$cache/$suite-minbase
exec 9>"$cache/lock"
flock 9  # one debootstrap at a time; the runs' overlays are independent
if [ ! -d "$base" ]; then
    step "debootstrap $suite into $base (once)"
    rm -rf "$base.partial"
    debootstrap --variant=minbase --cache-dir="$cache/archives" "$suite" "$base.partial" "$mirror" \
        >"$cache/debootstrap.log" || { tail -20 "$cache/debootstrap.log" >&2; fail "debootstrap (log in $cache)"; }
    rm -f "$base.partial"/var/cache/apt/archives/*.deb
    mv "$base.partial" "$base"
fi
flock -u 9
if [ $prepare_only = yes ]; then step "root ready in $base"; exit 0; fi

# Each run: a writable overlay on the kept root (which stays as debootstrap left it), removed at the end.
work=$(mktemp -d /var/tmp/tessera-deb-test.XXXXXX)
root=$work/root
mkdir -p "$work/upper" "$work/work" "$root"
cleanup() {
    for m in var/cache/apt/archives dev/pts dev proc ""; do
        if mountpoint -q "$root/$m"; then umount "$root/$m" || umount -l "$root/$m"; fi
    done
    # Never delete through a mount that is still there.
    if ! grep -q " $work/" /proc/mounts; then rm -rf "$work"; else echo "test_deb: $work still mounted" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that the EXIT trap cleans up
mount -t overlay overlay -o "lowerdir=$base,upperdir=$work/upper,workdir=$work/work" "$root"
step "fresh root: overlay on $base at $root"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
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
source_version=$(sed -n 's/^ *public static let current = "\(.*\)"$/\1/p' \
    "$repo/Sources/FederationCore/Messages/AuditEntry.swift")
[ "$version" = "$source_version" ] \
    || fail "tessera --version printed '$version', TesseraVersion.current is '$source_version'"
step "tessera --version: $version"

# The sample site as the README's table describes it: 6 CT series of 128 x 128 x 34, JPEG-LS lossless, one SEG each;
# then one series converted to NIfTI (DCMTK's JPEG-LS decoder at work) and its header and voxels read back.
in_root tessera inspect --json "/tmp/$site" >"$root/tmp/inspect.json" || fail "tessera inspect"
first=$(python3 - "$root/tmp/inspect.json" <<'PY'
import json, sys
series = json.load(open(sys.argv[1]))["series"]
assert len(series) == 6, f"{len(series)} series, expected 6"
for s in series:
    assert s["modality"] == "CT" and s["dimensions"] == [128, 128, 34], (s["modality"], s["dimensions"])
    assert [t["name"] for t in s["transferSyntaxes"]] == ["JPEG-LS Lossless"], s["transferSyntaxes"]
    assert len(s["segmentations"]) == 1, s["segmentations"]
    assert not [p for p in s["problems"] if p["blocking"]], s["problems"]
print(series[0]["seriesInstanceUID"])
PY
) || fail "tessera inspect's report: $(head -c 600 "$root/tmp/inspect.json")"
step "tessera inspect: 6 CT series 128x128x34, JPEG-LS lossless, a SEG each"
in_root tessera convert "/tmp/$site" --series "$first" --output /tmp/ct.nii >/dev/null 2>&1 || fail "tessera convert"
# The same binary on the build host (its own libraries) converts the series to the same voxels.
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" ./usr/bin/tessera
"$work/usr/bin/tessera" convert "$repo/sample-data/$site" --series "$first" --output "$work/ct.nii" >/dev/null 2>&1 \
    || fail "tessera convert on the host"
python3 - "$root/tmp/ct.nii" "$work/ct.nii" <<'PY' || fail "the converted NIfTI"
import array, struct, sys
data = open(sys.argv[1], "rb").read()
assert struct.unpack_from("<i", data, 0)[0] == 348, "not a NIfTI-1 header"
dim = struct.unpack_from("<8h", data, 40)
datatype, bitpix = struct.unpack_from("<2h", data, 70)
offset = int(struct.unpack_from("<f", data, 108)[0])
assert dim[:4] == (3, 128, 128, 34), dim
assert len(data) == offset + 128 * 128 * 34 * bitpix // 8, (len(data), offset, bitpix)
codes = {4: "h", 16: "f"}
assert datatype in codes, f"datatype {datatype}"
voxels = array.array(codes[datatype], data[offset:])
low, high = min(voxels), max(voxels)
assert -3100 <= low < -500 and 0 < high <= 4000, (low, high)  # air and soft tissue in HU
host = open(sys.argv[2], "rb").read()
assert host[offset:] == data[offset:], "the voxels differ from the build host's conversion"
print(f"test_deb: convert: {dim[1]}x{dim[2]}x{dim[3]}, datatype {datatype}, HU {low}..{high}, "
      "voxels equal to the build host's")
PY

in_root getent passwd tessera >/dev/null || fail "the postinst made no tessera user"
[ "$(in_root stat -c %U:%G /var/lib/tessera)" = tessera:tessera ] || fail "/var/lib/tessera is not tessera's"
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

# The services under a real systemd: the root booted with systemd-nspawn (its own network namespace: only its
# loopback), a project provisioned by the installed binary, tessera-server and tessera-client@community-hospital
# enabled as the README says. Checked: both units active with their hardening in force (no new privileges, no
# capabilities, a seccomp filter), the site reaching the server over mutual TLS (`tessera admin sites`), and the
# server started again by Restart=on-failure after a SIGKILL.
if [ "${TESSERA_DEB_TEST_BOOT:-1}" = 1 ]; then
    command -v systemd-nspawn >/dev/null || fail "systemd-nspawn missing (apt-get install systemd-container)"
    step "services: systemd into the root, a project, the units enabled"
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        systemd systemd-sysv dbus >"$root/tmp/apt-systemd.log" || { tail -20 "$root/tmp/apt-systemd.log" >&2; fail "apt-get install systemd"; }
    in_root tessera provision /usr/share/tessera/pipelines/project.yaml --output /root/kits >/dev/null \
        || fail "tessera provision"
    for kit in server "$site"; do
        cp -r "$root/root/kits/$kit" "$root/etc/tessera/kits/$kit"
        in_root chown -R tessera:tessera "/etc/tessera/kits/$kit"
    done
    mkdir -p "$root/srv/tessera" && mv "$root/tmp/$site" "$root/srv/tessera/$site"
    sed -e "s|^TESSERA_KIT=.*|TESSERA_KIT=/etc/tessera/kits/$site|" \
        -e "s|^TESSERA_DATA=.*|TESSERA_DATA=/srv/tessera/$site|" \
        "$root/etc/tessera/client.env.example" >"$root/etc/tessera/client-$site.env"
    in_root systemctl enable -q tessera-server.service "tessera-client@$site.service"
    for m in var/cache/apt/archives dev/pts dev proc; do umount "$root/$m"; done

    # debootstrap writes no /etc/hosts (the installer does): the kits name the server "localhost".
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

    step "boot the root (systemd-nspawn)"
    booter=""
    leader=""
    stop_boot() {
        # SIGRTMIN+4 asks the container's systemd to power off; SIGKILL to its init ends the container if it hangs.
        if [ -n "$leader" ]; then kill -s RTMIN+4 "$leader" 2>/dev/null || true; fi
        for _ in $(seq 300); do kill -0 "$booter" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$booter" 2>/dev/null; then
            if [ -n "$leader" ]; then kill -KILL "$leader" 2>/dev/null || true; fi
            for p in $(ps -o pid= --ppid "$booter"); do kill "$p" 2>/dev/null || true; done
            sleep 1
            kill "$booter" 2>/dev/null || true
        fi
        wait "$booter" 2>/dev/null || true
    }
    trap 'stop_boot; cleanup' EXIT
    script -qfc "systemd-nspawn -q --register=no --keep-unit --private-network -D '$root' -b --console=read-only" \
        "$work/boot.log" >/dev/null 2>&1 </dev/null &
    booter=$!
    for _ in $(seq 300); do
        # The container's init: a systemd whose parent is the systemd-nspawn started on this root.
        for p in $(pgrep -x systemd || true); do
            parent=$(ps -o ppid= -p "$p" | tr -d ' ')
            [ -n "$parent" ] && tr '\0' ' ' <"/proc/$parent/cmdline" 2>/dev/null | grep -qF -- "-D $root " \
                && leader=$p && break 2
        done
        sleep 0.1
    done
    [ -n "$leader" ] || fail "the root did not boot: $(tr -d '\r' <"$work/boot.log" | tail -5)"
    in_ns() { nsenter -t "$leader" -m -u -i -n -p env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
    journal() { in_ns journalctl --no-pager -q -o cat -u tessera-server -u "tessera-client@$site" | tail -20 >&2; }
    state=""
    for _ in $(seq 600); do  # until the boot is over (or 60 s)
        state=$(in_ns systemctl is-system-running 2>/dev/null || true)
        case $state in running | degraded) break ;; esac
        sleep 0.1
    done
    step "booted: $state"

    # Both units up, hardened as written.
    for u in tessera-server "tessera-client@$site"; do
        [ "$(in_ns systemctl is-active "$u")" = active ] || { journal; fail "$u is not active"; }
        pid=$(in_ns systemctl show -p MainPID --value "$u")
        status=$(in_ns cat "/proc/$pid/status")
        grep -q '^NoNewPrivs:[[:space:]]*1$' <<<"$status" || fail "$u: NoNewPrivs is not set"
        grep -q '^CapEff:[[:space:]]*0*$' <<<"$status" || fail "$u: has capabilities"
        grep -q '^CapBnd:[[:space:]]*0*$' <<<"$status" || fail "$u: the bounding set is not empty"
        grep -q '^Seccomp:[[:space:]]*2$' <<<"$status" || fail "$u: no seccomp filter"
        [ "$(in_ns stat -c %U "/proc/$pid")" = tessera ] || fail "$u does not run as tessera"
    done
    step "both units active as tessera: NoNewPrivs, no capabilities, seccomp"

    # The site reaches the server (mutual TLS over the root's loopback).
    deadline=$((SECONDS + 90))
    while [ $SECONDS -lt $deadline ]; do
        sites=$(in_ns timeout 20 tessera admin --kit /root/kits/lead sites 2>/dev/null || true)
        grep -q "^$site " <<<"$sites" && break
        sleep 0.5
    done
    grep -q "^$site " <<<"$sites" || { journal; fail "the site never reached the server: $sites"; }
    step "tessera admin sites: $sites"

    # Restart=on-failure: a killed server is started again (RestartSec=5).
    old=$(in_ns systemctl show -p MainPID --value tessera-server)
    in_ns systemctl kill -s KILL tessera-server
    new=$old
    for _ in $(seq 300); do
        new=$(in_ns systemctl show -p MainPID --value tessera-server)
        [ "$new" != 0 ] && [ "$new" != "$old" ] && [ "$(in_ns systemctl is-active tessera-server)" = active ] && break
        sleep 0.1
    done
    [ "$new" != 0 ] && [ "$new" != "$old" ] || { journal; fail "the server was not restarted after SIGKILL"; }
    step "server killed (pid $old) and restarted by systemd (pid $new)"
    stop_boot
    trap cleanup EXIT
    mount -t proc proc "$root/proc"
    mount --bind /dev "$root/dev"
    mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
fi

in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq tessera >"$root/tmp/purge.log" \
    || { tail -20 "$root/tmp/purge.log" >&2; fail "apt-get purge"; }
[ ! -e "$root/usr/bin/tessera" ] || fail "purge left /usr/bin/tessera"
step "purged"
echo "test_deb: all checks passed ($((SECONDS - start)) s)"
