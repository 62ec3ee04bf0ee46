// Test binaries, like serval-node, listen on plain TCP: Go 1.24+ listeners
// are MPTCP by default, and the kernel refuses TCP MD5 keys on MPTCP
// sockets (ENOPROTOOPT), which made the MD5 test skip for the wrong reason.

//go:debug multipathtcp=0
package routing
