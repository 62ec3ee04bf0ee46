// Package version holds the build's version, set by the linker:
//
//	go build -ldflags "-X github.com/servalnet/serval/internal/version.Version=v0.1.0"
package version

// Version is the release of this build; "dev" when built without the linker flag.
var Version = "dev"

// GitCommit is the commit the build was made from, when known.
var GitCommit = "unknown"
