#!/usr/bin/env bash
# Builds the Debian package out/tessera_<version>_<arch>.deb from the release build (`make deb` runs the release
# build first, then this). The files come from `make install-files DESTDIR=<stage> PREFIX=/usr`; the Depends line
# from dpkg-shlibdeps, which reads the binary's NEEDED libraries (objdump), finds the Debian package of each
# (dpkg -S) and the lowest version with the symbols used (the packages' symbols/shlibs files), and fails on a
# library no Debian package provides. The Swift runtime is linked in statically (--static-swift-stdlib), so only
# Debian libraries are needed at run time. Needs dpkg-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
bin=${TESSERA_BIN:-$(swift build -c release --static-swift-stdlib --show-bin-path)/tessera}
[ -x "$bin" ] || { echo "build_deb: no release binary at $bin (run make release)" >&2; exit 1; }
command -v dpkg-shlibdeps >/dev/null || {
    echo "build_deb: dpkg-shlibdeps missing (apt-get install dpkg-dev)" >&2
    exit 1
}

if objdump -p "$bin" | grep -q 'NEEDED *libswift'; then
    echo "build_deb: $bin links the Swift runtime dynamically; build it with --static-swift-stdlib" >&2
    exit 1
fi
version=$("$bin" --version)
[[ $version =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || { echo "build_deb: unusable version '$version'" >&2; exit 1; }
arch=$(dpkg --print-architecture)

work=$repo/.build/deb
stage=$work/tessera_${version}_$arch
rm -rf "$work"
mkdir -p "$stage/DEBIAN" "$repo/out"
make --no-print-directory -C "$repo" install-files DESTDIR="$stage" PREFIX=/usr TESSERA_BIN="$bin" >/dev/null
strip --strip-unneeded "$stage/usr/bin/tessera"
install -m 0644 packaging/debian/copyright "$stage/usr/share/doc/tessera/copyright"

# dpkg-shlibdeps wants a source tree with debian/control.
mkdir -p "$work/src/debian"
printf 'Source: tessera\n\nPackage: tessera\nArchitecture: any\n' >"$work/src/debian/control"
# (Its warnings that DCMTK's libraries are linked without being used are about CDCMTKShim's link line: harmless.)
depends=$(cd "$work/src" && dpkg-shlibdeps -O "$stage/usr/bin/tessera" 2> >(grep -v 'useless dependency' >&2) |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build_deb: dpkg-shlibdeps gave no dependencies" >&2; exit 1; }
depends="$depends, adduser"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@INSTALLED_SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
    packaging/debian/control.in >"$stage/DEBIAN/control"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
(cd "$stage" && find etc -type f | sed 's|^|/|' | sort) >"$stage/DEBIAN/conffiles"
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"

deb=$repo/out/tessera_${version}_$arch.deb
rm -f "$repo"/out/tessera_*_"$arch".deb  # one package in out/ (make test-deb takes out/tessera_*)
# gzip, not xz: 37 MB instead of 24 MB, but 11 s of CPU instead of 67 s (CI runs this on 2 cores).
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
echo "build_deb: $deb ($(du -h "$deb" | cut -f1)), Depends: $depends"
