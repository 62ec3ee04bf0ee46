#!/usr/bin/env bash
# Builds Serval's Debian package from the files in packaging/ with dpkg-deb:
#
#   scripts/package.sh [OUTDIR]     (default OUTDIR: dist)
#
# Environment: VERSION, COMMIT, LDFLAGS (as the Makefile's), GO, and
# DEB_COMPRESSION (dpkg-deb -Z: xz, the default, gzip, zstd or none).
#
# writes OUTDIR/serval_<version>_<arch>.deb and prints its path. `make
# package` runs it with the Makefile's VERSION, COMMIT and LDFLAGS; run alone
# it works them out the same way. docs/PACKAGING.md says what the package
# holds and how it behaves.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
GO=${GO:-go}
OUT=${1:-dist}

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
COMMIT=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
LDFLAGS=${LDFLAGS:-"-X github.com/servalnet/serval/internal/version.Version=$VERSION -X github.com/servalnet/serval/internal/version.GitCommit=$COMMIT"}

# debian_version turns `git describe` into a Debian version, which must
# start with a digit and may hold only [A-Za-z0-9.+~-]:
#   v1.2.0 -> 1.2.0;  v1.2.0-3-gabc1234 -> 1.2.0+3.gabc1234
#   v2.0.0-rc.1 -> 2.0.0~rc.1 (before 2.0.0)
#   abc1234 or 812a947 (no tag: a commit) -> 0~git.abc1234;  dev -> 0~dev
#   ...-dirty -> ...+dirty
# `scripts/package.sh --debian-version VERSION` prints it and exits.
debian_version() {
	local v=$1 dirty=
	if [[ $v == *-dirty ]]; then
		v=${v%-dirty}
		dirty=+dirty
	fi
	v=${v#v}
	# A pre-release tag sorts before its release: v2.0.0-rc.1 -> 2.0.0~rc.1.
	v=$(printf '%s' "$v" | sed -E 's/-(alpha|beta|rc|pre)/~\1/')
	if [[ $v =~ ^([0-9][A-Za-z0-9.~]*)-([0-9]+)-(g[0-9a-f]+)$ ]]; then
		v="${BASH_REMATCH[1]}+${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
	elif [[ $v =~ ^[0-9a-f]{7,40}$ ]]; then
		v="0~git.$v"
	elif [[ ! $v =~ ^[0-9] ]]; then
		v="0~$v"
	fi
	v=$(printf '%s' "$v" | tr -c 'A-Za-z0-9.+~' '.')
	printf '%s%s\n' "$v" "$dirty"
}

if [[ ${1:-} == --debian-version ]]; then
	debian_version "$2"
	exit 0
fi
DEB_VERSION=$(debian_version "$VERSION")
ARCH=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root

install -d "$root/DEBIAN" "$root/usr/bin" "$root/opt/cni/bin" "$root/lib/systemd/system" \
	"$root/etc/serval" "$root/usr/share/doc/serval" "$root/usr/share/man/man1" "$root/usr/share/man/man8"

# Static binaries, so that the package depends on no C library version;
# without symbol tables and DWARF (-s -w), as Debian ships binaries, which
# makes them half as big.
build() { # build OUTPUT PACKAGE
	CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$LDFLAGS -s -w" -o "$1" "$2"
}
build "$root/usr/bin/serval-node" ./cmd/serval-node
build "$root/usr/bin/servalctl" ./cmd/servalctl
build "$root/usr/bin/serval-controllers" ./cmd/serval-controllers
build "$root/opt/cni/bin/serval" ./cmd/serval
build "$root/opt/cni/bin/serval-ipam" ./cmd/serval-ipam

install -m 0644 packaging/systemd/serval-node.service packaging/systemd/serval-datastore.service "$root/lib/systemd/system/"
# serval-node.env may hold passwords: readable by root and group root only.
install -m 0640 packaging/etc/serval-node.env "$root/etc/serval/serval-node.env"
install -m 0644 packaging/etc/serval-datastore.env "$root/etc/serval/serval-datastore.env"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/serval/copyright"
install -m 0644 README.md docs/PACKAGING.md "$root/usr/share/doc/serval/"
gzip -9n "$root/usr/share/doc/serval/README.md"
# Debian policy wants a changelog; a native package's is this one entry,
# dated by the commit, so that two builds of one commit are the same.
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'serval (%s) unstable; urgency=medium\n\n  * Built from commit %s (git describe: %s).\n\n -- Serval developers <serval@servalnet.invalid>  %s\n' \
	"$DEB_VERSION" "$COMMIT" "$VERSION" "$when" | gzip -9n >"$root/usr/share/doc/serval/changelog.gz"

# manpage SECTION NAME SUMMARY HELP-TEXT: a man page whose body is the
# command's own --help, so that the two never disagree.
manpage() {
	local sec=$1 name=$2 summary=$3 help=$4
	local upper
	upper=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
	{
		printf '.TH %s %s "" "serval %s" "Serval"\n' "$upper" "$sec" "$DEB_VERSION"
		printf '.SH NAME\n%s \\- %s\n' "$name" "$summary"
		printf '.SH DESCRIPTION\n.nf\n'
		# Backslashes, and lines starting with . or ', are troff syntax.
		printf '%s\n' "$help" | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
		printf '.fi\n.SH FILES\n'
		printf '/etc/serval/serval-node.env, /etc/serval/serval-datastore.env, /var/lib/serval, /run/serval\n'
		printf '.SH SEE ALSO\n'
		printf '/usr/share/doc/serval/PACKAGING.md, /usr/share/doc/serval/README.md.gz\n'
	} | gzip -9n >"$root/usr/share/man/man$sec/$name.$sec.gz"
}
# serval-node prints its flags to stderr and exits 2 on --help.
node_help=$("$root/usr/bin/serval-node" --help 2>&1 || true)
ctl_help=$("$root/usr/bin/servalctl" --help)
ds_help=$("$root/usr/bin/servalctl" datastore serve --help)
manpage 8 serval-node "Serval's per-host agent: policy firewall, routes and BGP" "$node_help"
manpage 1 servalctl "manage a Serval network" "$ctl_help

'servalctl datastore serve' (serval-datastore.service):

$ds_help"

install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"

# md5sums of everything but DEBIAN/ and the conffiles (dpkg keeps their
# sums itself, in its status file).
(
	cd "$root"
	find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
		grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles) | xargs md5sum >DEBIAN/md5sums
)

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$size/" \
	packaging/debian/control.in >"$root/DEBIAN/control"

mkdir -p "$OUT"
deb="$OUT/serval_${DEB_VERSION}_${ARCH}.deb"
# DEB_COMPRESSION: dpkg-deb's -Z (xz, gzip, zstd or none). xz, Debian's
# default, takes a minute for these binaries; test/package asks for none.
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$root" "$deb" >/dev/null
echo "$deb"
