package nodestatus

import "time"

// DefaultSocket is where serval-node answers `servalctl node status`.
const DefaultSocket = "/var/run/serval/node.sock"

// SocketEnv names the environment variable that overrides DefaultSocket,
// for serval-node (where it listens) and servalctl (where it asks).
const SocketEnv = "SERVAL_STATUS_SOCKET"

// Report is the agent's health as /liveness, /readiness and the status
// socket show it.
type Report struct {
	Live       bool   `json:"live"`
	Ready      bool   `json:"ready"`
	InSync     bool   `json:"inSync"`
	Programmed bool   `json:"programmed"`
	LastError  string `json:"lastError,omitempty"`
	// Reasons says in words why the node is not live or not ready (a
	// stuck worker, a BGP session that should be up and is not, the
	// datastore not in sync, ...); empty when it is both.
	Reasons []string `json:"reasons,omitempty"`
	// Workers are the agent's loops that must keep turning for it to be
	// live.
	Workers []Worker `json:"workers,omitempty"`
}

// Worker is one of the agent's loops as liveness sees it.
type Worker struct {
	Name    string `json:"name"`
	Timeout string `json:"timeout"` // e.g. "1m30s"
	// LastBeat is when it last reported that it turns.
	LastBeat time.Time `json:"lastBeat"`
	// Stuck is true when it has not turned within Timeout; Since is then
	// the time it was last seen turning.
	Stuck bool      `json:"stuck"`
	Since time.Time `json:"since,omitzero"`
}

// StatusReport is what the status socket's /status answers and what
// `servalctl node status` prints.
type StatusReport struct {
	Node   string     `json:"node"`
	Health Report     `json:"health"`
	BGP    *BGPStatus `json:"bgp,omitempty"` // nil when BGP is off
	// Rejected are the objects read from the datastore that failed
	// validation: skipped, or (policies) failed closed.
	Rejected []Rejected `json:"rejected,omitempty"`
}

// Rejected is one object the agent read and could not accept.
type Rejected struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	// Reason lists the problems, one field path and why per line.
	Reason string `json:"reason"`
	// Action says what the agent did instead: "skipped" or "failed closed".
	Action string `json:"action"`
}

// BGPStatus lists the sessions of the embedded speaker.
type BGPStatus struct {
	Peers []PeerStatus `json:"peers"`
	Error string       `json:"error,omitempty"`
}

// PeerStatus is one BGP session as `servalctl node status` shows it.
type PeerStatus struct {
	Address string `json:"address"`
	Port    uint16 `json:"port"`
	// Type is where the session comes from, in calicoctl's words:
	// "node-to-node mesh", "global" or "node specific".
	Type string `json:"type"`
	// State is BIRD's protocol state word as calicoctl prints it: "up"
	// when established, "start" while trying, "down" when disabled.
	State string    `json:"state"`
	Since time.Time `json:"since"`
	// Info is the BGP session state: Idle, Connect, Active, OpenSent,
	// OpenConfirm, Established.
	Info             string `json:"info"`
	RoutesReceived   uint64 `json:"routesReceived"`
	RoutesAdvertised uint64 `json:"routesAdvertised"`
	ASN              uint32 `json:"asn"`
	Origin           string `json:"origin"`
}
