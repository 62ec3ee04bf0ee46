// Package nodestatus holds what serval-node says about itself: the health
// report of /liveness and /readiness and the status report of its unix
// socket. servalctl decodes these without linking the agent (no GoBGP, no
// nftables), so the types live here, apart from internal/node.
package nodestatus
