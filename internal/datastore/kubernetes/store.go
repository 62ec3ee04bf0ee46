package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/kube"
)

// Defaults of the options.
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultListPageSize   = 500
	// DefaultQPS and DefaultBurst replace client-go's 5 and 10 requests a
	// second when the configuration leaves them unset: a datastore client
	// (IPAM allocating under contention, servalctl applying a manifest)
	// needs more, and the API server's own priority and fairness protects
	// it.
	DefaultQPS   = 200
	DefaultBurst = 400
)

// maxUpdateAttempts bounds the read-modify-write loops of unconditional
// updates and deletes under contention.
const maxUpdateAttempts = 64

// Option changes how New sets up the store.
type Option func(*options)

type options struct {
	requestTimeout         time.Duration
	pageSize               int64
	storeWorkloadsAndNodes bool
}

// WithRequestTimeout bounds each request other than a watch
// (DefaultRequestTimeout when not given).
func WithRequestTimeout(d time.Duration) Option {
	return func(o *options) { o.requestTimeout = d }
}

// WithListPageSize sets how many objects one list request asks for
// (DefaultListPageSize when not given).
func WithListPageSize(n int) Option {
	return func(o *options) { o.pageSize = int64(n) }
}

// Store is the Kubernetes backend. It implements datastore.Interface and
// datastore.Pager.
type Store struct {
	rc   rest.Interface
	cfg  *rest.Config // as given to New
	host string
	// derivers are the kinds derived from Kubernetes objects.
	derivers map[string][]*deriver
	log      *slog.Logger
	timeout  time.Duration
	pageSize int64

	// closed is closed by Close: open watches end with ErrUnavailable and
	// later calls fail.
	closed    chan struct{}
	closeOnce sync.Once
	watches   sync.WaitGroup
}

var (
	_ datastore.Interface = (*Store)(nil)
	_ datastore.Pager     = (*Store)(nil)
)

// New returns a store on the API server cfg names. It does not contact
// the server: like the etcd backend, a node may start before its
// datastore answers. log may be nil.
func New(cfg *rest.Config, log *slog.Logger, opts ...Option) (*Store, error) {
	if cfg == nil {
		return nil, errors.New("kubernetes datastore: no client configuration given")
	}
	o := options{requestTimeout: DefaultRequestTimeout, pageSize: DefaultListPageSize}
	for _, f := range opts {
		f(&o)
	}
	if o.requestTimeout <= 0 {
		o.requestTimeout = DefaultRequestTimeout
	}
	if o.pageSize <= 0 {
		o.pageSize = DefaultListPageSize
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &schema.GroupVersion{Group: api.Group, Version: api.Version}
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.AcceptContentTypes = runtime.ContentTypeJSON
	c.NegotiatedSerializer = statusCodecs()
	if c.QPS == 0 {
		c.QPS = DefaultQPS
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("kubernetes datastore at %s: %w", cfg.Host, err)
	}
	s := &Store{rc: rc, cfg: rest.CopyConfig(cfg), host: cfg.Host, log: log, timeout: o.requestTimeout,
		pageSize: o.pageSize, closed: make(chan struct{}), derivers: defaultDerivers()}
	if !o.storeWorkloadsAndNodes {
		s.derivers["WorkloadEndpoint"] = []*deriver{podEndpoints}
		s.derivers["Node"] = []*deriver{kubeNodes}
	}
	return s, nil
}

// RESTConfig is a copy of the client configuration the store was made
// with, for other clients of the same API server (Events, leases).
func (s *Store) RESTConfig() *rest.Config { return rest.CopyConfig(s.cfg) }

// statusCodecs decodes what the client needs to understand of the API
// server's answers besides the raw JSON of objects: its Status errors.
func statusCodecs() runtime.NegotiatedSerializer {
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	return serializer.NewCodecFactory(scheme).WithoutConversion()
}

// Close implements datastore.Interface: open watches end with an Error
// event wrapping ErrUnavailable, and later calls fail.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.watches.Wait()
	return nil
}

func (s *Store) checkOpen() error {
	select {
	case <-s.closed:
		return fmt.Errorf("%w: the kubernetes datastore is closed", datastore.ErrUnavailable)
	default:
		return nil
	}
}

// kindInfo finds a registered kind by its exact name.
func kindInfo(kind string) (api.KindInfo, error) {
	if kind == "" {
		return api.KindInfo{}, errors.New("kind is required")
	}
	info, ok := api.LookupKind(kind)
	if !ok || info.Kind != kind {
		return api.KindInfo{}, fmt.Errorf("%q is not a known kind", kind)
	}
	return info, nil
}

// checkKey refuses keys that do not name one object of their kind.
func checkKey(k api.Key) (api.KindInfo, error) {
	info, err := kindInfo(k.Kind)
	if err != nil {
		return info, err
	}
	if k.Name == "" {
		return info, errors.New("name is required")
	}
	if strings.Contains(k.Name, "/") || strings.Contains(k.Namespace, "/") {
		return info, errors.New("name and namespace must not contain '/'")
	}
	switch {
	case info.Namespaced && k.Namespace == "":
		return info, fmt.Errorf("%s is namespaced: a namespace is required", info.Kind)
	case !info.Namespaced && k.Namespace != "":
		return info, fmt.Errorf("%s is not namespaced: no namespace may be given", info.Kind)
	}
	return info, nil
}

// prepare copies r (so that nothing the caller holds is shared with the
// store) and fills in its apiVersion.
func prepare(r api.Resource) (api.Resource, error) {
	if r == nil || reflect.ValueOf(r).IsNil() {
		return nil, errors.New("no resource given")
	}
	if _, err := kindInfo(r.GetTypeMeta().Kind); err != nil {
		return nil, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", api.KeyOf(r), err)
	}
	obj, err := api.New(r.GetTypeMeta().Kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, obj); err != nil {
		return nil, fmt.Errorf("copying %s: %w", api.KeyOf(r), err)
	}
	if tm := obj.GetTypeMeta(); tm.APIVersion == "" {
		tm.APIVersion = api.APIVersion
	}
	return obj, nil
}

// validate fills in defaults and checks obj; a rejection wraps the
// *api.ValidationError.
func validate(obj api.Resource, op string) error {
	obj.SetDefaults()
	if err := api.Validate(obj); err != nil {
		return fmt.Errorf("%s: invalid resource not stored:\n%w", op, err)
	}
	return nil
}

// encode is the body of a write: Serval's JSON with the metadata the API
// server owns left out, save the resourceVersion and UID preconditions
// of an update.
func encode(obj api.Resource, rv, uid string) ([]byte, error) {
	m := obj.GetObjectMeta()
	saved := *m
	m.ResourceVersion, m.UID = rv, uid
	m.CreationTimestamp, m.DeletionTimestamp, m.Generation = nil, nil, 0
	b, err := json.Marshal(obj)
	*m = saved
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", api.KeyOf(obj), err)
	}
	return b, nil
}

// decode turns an object of the API server into a fresh resource of the
// given kind. Kubernetes' own metadata that Serval does not model
// (managedFields, ownerReferences, ...) is dropped.
func decode(kind string, raw []byte) (api.Resource, int64, error) {
	obj, err := api.New(kind)
	if err != nil {
		return nil, 0, err
	}
	if err := json.Unmarshal(raw, obj); err != nil {
		return nil, 0, fmt.Errorf("decoding %s: %w", kind, err)
	}
	*obj.GetTypeMeta() = api.TypeMeta{Kind: kind, APIVersion: api.APIVersion}
	m := obj.GetObjectMeta()
	rev, err := strconv.ParseInt(m.ResourceVersion, 10, 64)
	if err != nil || rev <= 0 {
		return nil, 0, fmt.Errorf("decoding %s %q: resourceVersion %q is not a revision", kind, m.Name, m.ResourceVersion)
	}
	return obj, rev, nil
}

// parseRV reads a resourceVersion given by a caller; "" is 0, meaning
// unconditional.
func parseRV(rv string) (int64, error) {
	if rv == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(rv, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("resourceVersion %q is not a revision this datastore wrote: %w", rv, datastore.ErrConflict)
	}
	return n, nil
}

// nameSuffix is appended to metadata.generateName, as Kubernetes does; the
// name is chosen here because validation needs it before the write.
func nameSuffix() string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// sortItems puts a list in namespace-then-name order.
func sortItems(items []api.Resource) {
	slices.SortFunc(items, func(a, b api.Resource) int {
		am, bm := a.GetObjectMeta(), b.GetObjectMeta()
		if c := strings.Compare(am.Namespace, bm.Namespace); c != 0 {
			return c
		}
		return strings.Compare(am.Name, bm.Name)
	})
}

// requestCtx bounds one request by the request timeout.
func (s *Store) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Check asks the API server for the API group of Serval's kinds: it
// answers when the server is up and the CustomResourceDefinitions are
// installed. It is what servalctl checks before a command, and what a
// Syncer asks now and then while it streams.
func (s *Store) Check(ctx context.Context) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	rctx, cancel := s.requestCtx(ctx)
	defer cancel()
	err := s.rc.Get().AbsPath("/apis", api.Group, api.Version).Do(rctx).Error()
	if err != nil {
		err = s.mapError(ctx, api.Key{}, err)
		if errors.Is(err, errCRDMissing) {
			return fmt.Errorf("checking the Kubernetes API server at %s: it serves no %s resources: are Serval's CustomResourceDefinitions installed (kubectl apply -f manifests/crds)? %w", s.host, api.APIVersion, err)
		}
		return fmt.Errorf("checking the Kubernetes API server at %s: %w", s.host, err)
	}
	return nil
}

// Open finds the client configuration as kubectl does (the kubeconfig
// file at path, else $KUBECONFIG, else the in-cluster service account;
// see package kube) and returns a store on that API server. userAgent
// names the binary in the API server's logs.
func Open(path, userAgent string, log *slog.Logger, opts ...Option) (*Store, error) {
	cfg, err := kube.RESTConfig(path, userAgent)
	if err != nil {
		return nil, err
	}
	return New(cfg, log, opts...)
}
