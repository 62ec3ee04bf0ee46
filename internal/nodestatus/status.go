package nodestatus

import "time"

// DefaultSocket is where serval-node answers `servalctl node status`.
const DefaultSocket = "/var/run/serval/node.sock"

// Report is the agent's health as /liveness, /readiness and the status
// socket show it.
type Report struct {
	Live       bool   `json:"live"`
	Ready      bool   `json:"ready"`
	InSync     bool   `json:"inSync"`
	Programmed bool   `json:"programmed"`
	LastError  string `json:"lastError,omitempty"`
}

// StatusReport is what the status socket's /status answers and what
// `servalctl node status` prints.
type StatusReport struct {
	Node   string     `json:"node"`
	Health Report     `json:"health"`
	BGP    *BGPStatus `json:"bgp,omitempty"` // nil when BGP is off
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
