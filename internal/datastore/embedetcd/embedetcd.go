package embedetcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Defaults: loopback only, so that a single-machine datastore is never
// reachable from the network unless asked for.
const (
	DefaultClientURL = "http://127.0.0.1:2379"
	DefaultPeerURL   = "http://127.0.0.1:2380"
	DefaultName      = "serval"
	// DefaultStartTimeout bounds Start when ctx has no deadline.
	DefaultStartTimeout = time.Minute
)

// Config describes a single-member etcd cluster.
type Config struct {
	DataDir string // required; created if missing
	Name    string // member name (DefaultName when empty)
	// ListenClientURL and ListenPeerURL default to loopback. A port of 0
	// picks a free port; ClientURL then tells which.
	ListenClientURL, ListenPeerURL string
	// Logger receives etcd's warnings and errors (its info chatter is
	// dropped). Nil discards everything.
	Logger *slog.Logger

	// ClientCertFile and ClientKeyFile make the client listener serve TLS
	// (use an https:// ListenClientURL); with ClientCAFile, clients must
	// also present a certificate signed by that CA.
	ClientCertFile, ClientKeyFile, ClientCAFile string
	// AutoCompactionRetention keeps this much history ("1h", or a number
	// of revisions with AutoCompactionMode "revision"); "0" disables it.
	// Defaults to one hour, so that a long-lived datastore does not grow
	// without bound.
	AutoCompactionMode, AutoCompactionRetention string
}

// Server is a running embedded etcd member.
type Server struct {
	etcd      *embed.Etcd
	clientURL string
}

// Start starts the member and returns once it serves clients. It fails if
// the member is not ready before ctx is done (or DefaultStartTimeout when
// ctx has no deadline), and stops it in that case.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("embedded etcd: a data directory is required")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.ListenClientURL == "" {
		cfg.ListenClientURL = DefaultClientURL
	}
	if cfg.ListenPeerURL == "" {
		cfg.ListenPeerURL = DefaultPeerURL
	}
	if cfg.AutoCompactionMode == "" {
		cfg.AutoCompactionMode = "periodic"
	}
	if cfg.AutoCompactionRetention == "" {
		cfg.AutoCompactionRetention = "1h"
	}
	curl, err := parseURL("client", cfg.ListenClientURL)
	if err != nil {
		return nil, err
	}
	purl, err := parseURL("peer", cfg.ListenPeerURL)
	if err != nil {
		return nil, err
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{*curl}
	ec.AdvertiseClientUrls = []url.URL{*curl}
	ec.ListenPeerUrls = []url.URL{*purl}
	ec.AdvertisePeerUrls = []url.URL{*purl}
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	ec.ClusterState = embed.ClusterStateFlagNew
	ec.AutoCompactionMode = cfg.AutoCompactionMode
	ec.AutoCompactionRetention = cfg.AutoCompactionRetention
	// embed.NewConfig leaves this at 0 (only etcd's flags default it), and
	// at 0 every request is "expensive": a warning per request.
	ec.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	// No metrics listener of its own and no v2 discovery: serval-node
	// exports its own metrics.
	ec.Metrics = "basic"
	ec.Logger = "zap"
	ec.LogLevel = "warn"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(newSlogCore(cfg.Logger, zap.WarnLevel)))
	if cfg.ClientCertFile != "" || cfg.ClientKeyFile != "" {
		if curl.Scheme != "https" {
			return nil, fmt.Errorf("embedded etcd: client TLS files given but the client URL %s is not https", cfg.ListenClientURL)
		}
		ec.ClientTLSInfo.CertFile = cfg.ClientCertFile
		ec.ClientTLSInfo.KeyFile = cfg.ClientKeyFile
		if cfg.ClientCAFile != "" {
			ec.ClientTLSInfo.TrustedCAFile = cfg.ClientCAFile
			ec.ClientTLSInfo.ClientCertAuth = true
		}
	}

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd in %s (client %s, peer %s): %w", cfg.DataDir, cfg.ListenClientURL, cfg.ListenPeerURL, err)
	}
	var cancel context.CancelFunc = func() {}
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, DefaultStartTimeout)
	}
	defer cancel()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s failed while starting: %w", cfg.DataDir, err)
	case <-ctx.Done():
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s not ready: %w", cfg.DataDir, ctx.Err())
	}
	s := &Server{etcd: e, clientURL: curl.String()}
	if len(e.Clients) > 0 {
		// The listener knows the real port when 0 was asked for.
		s.clientURL = curl.Scheme + "://" + e.Clients[0].Addr().String()
	}
	return s, nil
}

func parseURL(which, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: %s URL %q: %w", which, s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("embedded etcd: %s URL %q: scheme must be http or https", which, s)
	}
	if u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return nil, fmt.Errorf("embedded etcd: %s URL %q: want scheme://host:port", which, s)
	}
	return u, nil
}

// ClientURL is where clients connect, e.g. http://127.0.0.1:2379.
func (s *Server) ClientURL() string { return s.clientURL }

// Err delivers a fatal error of the running member, such as its client
// listener failing.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops the member and waits for it to release its data directory.
func (s *Server) Close() {
	s.etcd.Close()
}
