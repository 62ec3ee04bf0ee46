package cni

import (
	"os"
	"runtime/debug"
)

// PluginMemoryLimit is the heap at which a plugin process collects
// garbage at all (see TuneGC): far above the few MB one command uses.
const PluginMemoryLimit = 64 << 20

// TuneGC turns the garbage collector off below PluginMemoryLimit for a
// plugin process, unless GOGC or GOMEMLIMIT says otherwise. A plugin lives
// for one command and allocates 2-3 MB, which with the default settings
// triggered one collection per ADD (pauses of up to 1 ms on a busy host,
// and its marking competes for the CPU): cheaper to leave it to exit. The
// limit still makes the collector run should a command allocate far more
// than usual (a very large cluster's blocks, say).
func TuneGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(PluginMemoryLimit)
	debug.SetGCPercent(-1)
}
