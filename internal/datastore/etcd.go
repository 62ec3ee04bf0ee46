package datastore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Defaults for EtcdConfig.
const (
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 10 * time.Second
)

// defaultListPageSize bounds one range response of a list; pages are
// all read at the revision of the first, so the result is still one
// snapshot. A page of 1,000 endpoints is about 1 MB on the wire.
const defaultListPageSize = 1000

// EtcdConfig says how to reach an etcd v3 cluster.
type EtcdConfig struct {
	Endpoints []string // "https://10.0.0.1:2379"; at least one
	// CertFile and KeyFile are a client certificate for clusters that
	// require one; CAFile verifies the servers' certificates (the system
	// pool is used when it is empty).
	CertFile, KeyFile, CAFile string
	// Username and Password authenticate with etcd's own auth. The user
	// needs read-write permission on Prefix.
	Username, Password string
	// DialTimeout bounds connecting (DefaultDialTimeout when zero).
	DialTimeout time.Duration
	// Prefix is the root of Serval's keys (DefaultPrefix when empty).
	Prefix string
	// RequestTimeout bounds each request, so that an etcd that does not
	// answer is reported as unavailable rather than waited on forever
	// (DefaultRequestTimeout when zero).
	RequestTimeout time.Duration
	// ListPageSize is how many keys one range request of a list asks
	// for (1000 when zero): a list of 100,000 endpoints is read, decoded
	// and handed on a page at a time rather than in one response.
	ListPageSize int
	// Logger receives the backend's own messages (none when nil).
	Logger *slog.Logger
}

// Etcd is the etcd v3 backend. It implements Interface.
type Etcd struct {
	store
	client *clientv3.Client
	ekv    *etcdKV
}

// NewEtcd connects to etcd. Without username and password it does not
// wait for the cluster to answer: a node may start before its datastore
// and wait for it (Syncer reports WaitForDatastore). With them, the
// client authenticates here, so an unreachable cluster fails within
// DialTimeout with an error wrapping ErrUnavailable.
func NewEtcd(cfg EtcdConfig) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints given")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	endpoints := strings.Join(cfg.Endpoints, ",")
	tlsCfg, err := etcdTLS(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd at %s: %w", endpoints, err)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: cfg.DialTimeout,
		TLS:                  tlsCfg,
		Username:             cfg.Username,
		Password:             cfg.Password,
		// The client's own zap logs are gRPC retry chatter; our errors
		// carry what matters.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd: %w", mapEtcdError(endpoints, err))
	}
	if cfg.ListPageSize <= 0 {
		cfg.ListPageSize = defaultListPageSize
	}
	k := &etcdKV{c: c, timeout: cfg.RequestTimeout, endpoints: endpoints, pageSize: int64(cfg.ListPageSize)}
	return &Etcd{store: newStore(k, cfg.Prefix, cfg.Logger), client: c, ekv: k}, nil
}

// etcdTLS builds the client TLS configuration, or nil for plain http
// endpoints without any TLS files.
func etcdTLS(cfg EtcdConfig) (*tls.Config, error) {
	secure := cfg.CertFile != "" || cfg.KeyFile != "" || cfg.CAFile != ""
	for _, ep := range cfg.Endpoints {
		if strings.HasPrefix(ep, "https://") || strings.HasPrefix(ep, "unixs://") {
			secure = true
		}
	}
	if !secure {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("a client certificate needs both a certificate file and a key file")
	}
	if cfg.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate %s (key %s): %w", cfg.CertFile, cfg.KeyFile, err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CAFile)
		}
		t.RootCAs = pool
	}
	return t, nil
}

// Client is the underlying etcd client, for what Interface does not cover
// (maintenance, auth administration, tests).
func (e *Etcd) Client() *clientv3.Client { return e.client }

// Compact discards the history before rev, as etcd's periodic compaction
// does; watches from before it then fail with ErrCompacted.
func (e *Etcd) Compact(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithTimeout(ctx, e.ekv.timeout)
	defer cancel()
	if _, err := e.client.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compacting etcd at revision %d: %w", rev, mapEtcdError(e.ekv.endpoints, err))
	}
	return nil
}

// Check asks the cluster for a linearizable read, which needs a leader
// and a quorum: it is what readiness probes want to know.
func (e *Etcd) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, e.ekv.timeout)
	defer cancel()
	if _, err := e.client.Get(ctx, e.prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("checking etcd: %w", mapEtcdError(e.ekv.endpoints, err))
	}
	return nil
}

// mapEtcdError makes the errors that mean "etcd is not answering" wrap
// ErrUnavailable and name the endpoints; others (permission denied, bad
// credentials) are kept as they are, still naming the endpoints.
func mapEtcdError(endpoints string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	unavailable := errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, rpctypes.ErrNoLeader) ||
		errors.Is(err, rpctypes.ErrTimeout) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail) ||
		errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost) ||
		errors.Is(err, rpctypes.ErrLeaderChanged) ||
		errors.Is(err, clientv3.ErrNoAvailableEndpoints)
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded:
			unavailable = true
		case codes.Canceled:
			return err
		}
	}
	if unavailable {
		return fmt.Errorf("%w: etcd at %s did not answer: %v", ErrUnavailable, endpoints, err)
	}
	return fmt.Errorf("etcd at %s: %w", endpoints, err)
}

// etcdKV is kv on an etcd client.
type etcdKV struct {
	c         *clientv3.Client
	timeout   time.Duration
	endpoints string
	pageSize  int64
}

func (k *etcdKV) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, k.timeout)
}

// err maps a request error, telling the caller's own cancellation or
// deadline apart from etcd not answering within the request timeout.
func (k *etcdKV) err(parent context.Context, err error) error {
	if perr := parent.Err(); perr != nil {
		return perr
	}
	return mapEtcdError(k.endpoints, err)
}

func toEntry(kv *mvccpb.KeyValue) kvEntry {
	return kvEntry{Key: string(kv.Key), Value: kv.Value, CreateRev: kv.CreateRevision, ModRev: kv.ModRevision}
}

func (k *etcdKV) get(ctx context.Context, key string) (*kvEntry, error) {
	rctx, cancel := k.ctx(ctx)
	defer cancel()
	resp, err := k.c.Get(rctx, key)
	if err != nil {
		return nil, k.err(ctx, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	e := toEntry(resp.Kvs[0])
	return &e, nil
}

// list reads the first page with a limit; when there is more, it reads
// the keys of the rest (keys only, one request) and then each page as the
// exact range between two of them. etcd counts every key from a range
// request's start to its end whatever the limit, so paging by limit alone
// walks the rest of the prefix once per page: at 100,000 endpoints in
// pages of 1,000 that was most of the list's time on the server.
func (k *etcdKV) list(ctx context.Context, prefix string, page func([]kvEntry, int64) error) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	get := func(from, to string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
		// Each request gets the request timeout: a long list is many
		// requests, each of which must answer in time, however slowly
		// the consumer takes the pages.
		rctx, cancel := k.ctx(ctx)
		defer cancel()
		resp, err := k.c.Get(rctx, from, append(opts, clientv3.WithRange(to))...)
		if err != nil {
			return nil, k.err(ctx, err)
		}
		return resp, nil
	}
	deliver := func(resp *clientv3.GetResponse, rev int64) error {
		entries := make([]kvEntry, len(resp.Kvs))
		for i, kv := range resp.Kvs {
			entries[i] = toEntry(kv)
		}
		return page(entries, rev)
	}
	first, err := get(prefix, end, clientv3.WithLimit(k.pageSize))
	if err != nil {
		return 0, err
	}
	rev := first.Header.Revision
	if !first.More || len(first.Kvs) == 0 {
		if len(first.Kvs) == 0 {
			return rev, nil
		}
		return rev, deliver(first, rev)
	}
	from := string(first.Kvs[len(first.Kvs)-1].Key) + "\x00"
	if err := deliver(first, rev); err != nil {
		return 0, err
	}
	// The first key of each later page, and the end of the last; the
	// keys themselves are not kept.
	var bounds []string
	if keys, err := get(from, end, clientv3.WithRev(rev), clientv3.WithKeysOnly()); err != nil {
		return 0, err
	} else if len(keys.Kvs) > 0 {
		for i := 0; i < len(keys.Kvs); i += int(k.pageSize) {
			bounds = append(bounds, string(keys.Kvs[i].Key))
		}
		bounds = append(bounds, string(keys.Kvs[len(keys.Kvs)-1].Key)+"\x00")
	}
	for i := 0; i+1 < len(bounds); i++ {
		resp, err := get(bounds[i], bounds[i+1], clientv3.WithRev(rev))
		if err != nil {
			return 0, err
		}
		if err := deliver(resp, rev); err != nil {
			return 0, err
		}
	}
	return rev, nil
}

func (k *etcdKV) create(ctx context.Context, key string, val []byte) (int64, bool, error) {
	rctx, cancel := k.ctx(ctx)
	defer cancel()
	resp, err := k.c.Txn(rctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val))).
		Commit()
	if err != nil {
		return 0, false, k.err(ctx, err)
	}
	return resp.Header.Revision, resp.Succeeded, nil
}

func (k *etcdKV) update(ctx context.Context, key string, val []byte, modRev int64) (int64, bool, error) {
	rctx, cancel := k.ctx(ctx)
	defer cancel()
	resp, err := k.c.Txn(rctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
		Then(clientv3.OpPut(key, string(val))).
		Commit()
	if err != nil {
		return 0, false, k.err(ctx, err)
	}
	return resp.Header.Revision, resp.Succeeded, nil
}

func (k *etcdKV) delete(ctx context.Context, key string, modRev int64) (*kvEntry, bool, error) {
	rctx, cancel := k.ctx(ctx)
	defer cancel()
	var dr *clientv3.DeleteResponse
	if modRev == 0 {
		resp, err := k.c.Delete(rctx, key, clientv3.WithPrevKV())
		if err != nil {
			return nil, false, k.err(ctx, err)
		}
		dr = resp
	} else {
		resp, err := k.c.Txn(rctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
			Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
			Commit()
		if err != nil {
			return nil, false, k.err(ctx, err)
		}
		if !resp.Succeeded || len(resp.Responses) == 0 {
			return nil, false, nil
		}
		dr = (*clientv3.DeleteResponse)(resp.Responses[0].GetResponseDeleteRange())
	}
	if dr == nil || dr.Deleted == 0 {
		return nil, false, nil
	}
	if len(dr.PrevKvs) == 0 {
		return nil, true, nil
	}
	e := toEntry(dr.PrevKvs[0])
	return &e, true, nil
}

func (k *etcdKV) watch(ctx context.Context, prefix string, start int64) <-chan kvEvent {
	out := make(chan kvEvent, watchBuffer)
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV()}
	if start > 0 {
		opts = append(opts, clientv3.WithRev(start))
	}
	// Without a leader the member we talk to may be partitioned away and
	// would silently send nothing; require one so that the watch fails
	// and the caller re-lists from a member that has one.
	wch := k.c.Watch(clientv3.WithRequireLeader(ctx), prefix, opts...)
	go func() {
		defer close(out)
		send := func(ev kvEvent) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if resp.CompactRevision != 0 {
				send(kvEvent{Err: fmt.Errorf("%w (oldest revision still available is %d)", ErrCompacted, resp.CompactRevision)})
				return
			}
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil {
					send(kvEvent{Err: mapWatchError(k.endpoints, err)})
				}
				return
			}
			for _, ev := range resp.Events {
				kev := kvEvent{Entry: toEntry(ev.Kv)}
				if ev.PrevKv != nil {
					p := toEntry(ev.PrevKv)
					kev.Prev = &p
				}
				if ev.Type == mvccpb.DELETE {
					kev.Deleted = true
				}
				if !send(kev) {
					return
				}
			}
		}
		// The channel closes when ctx is done or the client is closed;
		// the store's watcher reports the latter.
	}()
	return out
}

// mapWatchError: a watch that etcd cancels (no leader, lost connection)
// means the caller must list again, exactly as if etcd were unavailable.
func mapWatchError(endpoints string, err error) error {
	mapped := mapEtcdError(endpoints, err)
	if errors.Is(mapped, ErrUnavailable) {
		return mapped
	}
	return fmt.Errorf("%w: watch on etcd at %s cancelled: %v", ErrUnavailable, endpoints, err)
}

func (k *etcdKV) close() error { return k.c.Close() }
