// Package packaging tests the Debian package that `make package` builds
// (scripts/package.sh, packaging/, docs/PACKAGING.md). TestMain builds it
// once. Every test needs the Debian tools it names, and TestInstall root;
// without them a test fails, never skips.
//
// What each test shows:
//
//   - TestDebianVersion: `git describe` becomes a Debian version that
//     dpkg orders as the commits are ordered.
//   - TestContents: dpkg-deb sees the package's fields, every file at its
//     place and mode, the conffiles, md5sums of every other file; the
//     configuration files hold only comments and name every variable
//     serval-node --help lists; the man pages render.
//   - TestInstall: into a fresh root (an empty directory with its own dpkg
//     database, dpkg --root --force-script-chrootless), systemd-analyze
//     verify passes on both units as installed and fails on broken ones;
//     both units' ExecStart= command lines, run chrooted in that root in a
//     network namespace of the test's own, start a datastore and an agent
//     that programs its host, and stop on SIGTERM; an edited conffile
//     survives a reinstall; remove keeps the configuration and data, and
//     purge leaves the root as it was before the install.
package packaging
