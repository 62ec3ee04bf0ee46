// Package packaging tests the Debian package that `make package` builds
// (scripts/package.sh, packaging/, docs/PACKAGING.md). TestMain builds it
// once; every test needs root and the Debian tools it names, and fails,
// never skips, without them.
//
// What each test shows:
//
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
