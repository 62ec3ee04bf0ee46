package datastore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/servalnet/serval/internal/api"
	"github.com/servalnet/serval/internal/datastore"
	"github.com/servalnet/serval/internal/datastore/dstest"
	"github.com/servalnet/serval/internal/datastore/embedetcd"
)

// startEtcd runs a real etcd member for one test, on free loopback ports
// in a temporary directory.
func startEtcd(t *testing.T, cfg embedetcd.Config) *embedetcd.Server {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.ListenClientURL == "" {
		cfg.ListenClientURL = "http://127.0.0.1:0"
	}
	cfg.ListenPeerURL = "http://127.0.0.1:0"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := embedetcd.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func newEtcd(t *testing.T, cfg datastore.EtcdConfig) *datastore.Etcd {
	t.Helper()
	s, err := datastore.NewEtcd(cfg)
	if err != nil {
		t.Fatalf("NewEtcd: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestEtcdConformance(t *testing.T) {
	srv := startEtcd(t, embedetcd.Config{})
	var n atomic.Int64
	dstest.Run(t, dstest.Harness{
		// One member for the whole suite; each store gets a prefix of its
		// own, so every subtest starts from an empty datastore.
		New: func(t *testing.T) datastore.Interface {
			s, err := datastore.NewEtcd(datastore.EtcdConfig{
				Endpoints: []string{srv.ClientURL()},
				Prefix:    fmt.Sprintf("/conformance/%d", n.Add(1)),
			})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		Compact: func(t *testing.T, s datastore.Interface, rev int64) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.(*datastore.Etcd).Compact(ctx, rev); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestEtcdKeyLayout pins the storage format: other tools (and older
// versions of Serval) read these keys.
func TestEtcdKeyLayout(t *testing.T) {
	srv := startEtcd(t, embedetcd.Config{})
	ctx := context.Background()
	def := newEtcd(t, datastore.EtcdConfig{Endpoints: []string{srv.ClientURL()}})
	custom := newEtcd(t, datastore.EtcdConfig{Endpoints: []string{srv.ClientURL()}, Prefix: "/elsewhere/"})
	a, err := def.Create(ctx, dstest.NewThing("a", nil, dstest.ThingSpec{Node: "n1"}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := def.Create(ctx, dstest.NewNSThing("ns1", "b", nil, dstest.ThingSpec{})); err != nil {
		t.Fatal(err)
	}
	if _, err := custom.Create(ctx, dstest.NewThing("c", nil, dstest.ThingSpec{})); err != nil {
		t.Fatal(err)
	}
	resp, err := def.Client().Get(ctx, "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
		if string(kv.Key) == "/serval/v3/testthings/a" {
			if strconv.FormatInt(kv.ModRevision, 10) != a.GetObjectMeta().ResourceVersion {
				t.Errorf("resourceVersion %s, ModRevision %d", a.GetObjectMeta().ResourceVersion, kv.ModRevision)
			}
			var stored map[string]any
			if err := json.Unmarshal(kv.Value, &stored); err != nil {
				t.Fatalf("stored value is not JSON: %v", err)
			}
			md := stored["metadata"].(map[string]any)
			if _, has := md["resourceVersion"]; has {
				t.Errorf("stored value carries a resourceVersion: %s", kv.Value)
			}
			if stored["kind"] != "TestThing" || md["uid"] == nil || stored["spec"].(map[string]any)["node"] != "n1" {
				t.Errorf("stored value = %s", kv.Value)
			}
		}
	}
	want := "/elsewhere/testthings/c,/serval/v3/testnsthings/ns1/b,/serval/v3/testthings/a"
	if got := strings.Join(keys, ","); got != want {
		t.Errorf("keys = %s\nwant %s", got, want)
	}
	// The two prefixes are two separate datastores.
	if _, err := def.Get(ctx, api.Key{Kind: dstest.ThingKind, Name: "c"}); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("Get across prefixes: %v", err)
	}
}

// freePort returns a loopback address nobody listens on.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestEtcdUnavailableFailsFast(t *testing.T) {
	ep := "http://" + freePort(t)
	cfg := datastore.EtcdConfig{Endpoints: []string{ep}, DialTimeout: 500 * time.Millisecond, RequestTimeout: time.Second}
	s := newEtcd(t, cfg)
	ctx := context.Background()
	ops := map[string]func() error{
		"Get": func() error {
			_, err := s.Get(ctx, api.Key{Kind: dstest.ThingKind, Name: "a"})
			return err
		},
		"List": func() error {
			_, err := s.List(ctx, datastore.ListOptions{Kind: dstest.ThingKind})
			return err
		},
		"Create": func() error {
			_, err := s.Create(ctx, dstest.NewThing("a", nil, dstest.ThingSpec{}))
			return err
		},
		"Check": func() error { return s.Check(ctx) },
	}
	for name, op := range ops {
		start := time.Now()
		err := op()
		took := time.Since(start)
		if !errors.Is(err, datastore.ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", name, err)
			continue
		}
		if !strings.Contains(err.Error(), ep) {
			t.Errorf("%s: error %q does not name the endpoint %s", name, err, ep)
		}
		if took > 5*time.Second {
			t.Errorf("%s took %v; want a failure within about the request timeout", name, took)
		}
	}
	// The caller's own deadline is reported as such, not as an outage.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Get(short, api.Key{Kind: dstest.ThingKind, Name: "a"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get with an expiring context: %v", err)
	}

	// With credentials the client authenticates while connecting, so
	// NewEtcd itself must fail, fast and clearly.
	cfg.Username, cfg.Password = "u", "p"
	start := time.Now()
	_, err := datastore.NewEtcd(cfg)
	if !errors.Is(err, datastore.ErrUnavailable) || !strings.Contains(err.Error(), ep) {
		t.Errorf("NewEtcd with credentials: %v, want ErrUnavailable naming %s", err, ep)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("NewEtcd with credentials took %v", took)
	}

	// A syncer waits for the datastore rather than claiming to be in sync.
	rec := &dstest.Recorder{}
	sctx, scancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer scancel()
	sy := datastore.NewSyncer(s, rec, datastore.SyncerConfig{Kinds: []string{dstest.ThingKind}, MinBackoff: 50 * time.Millisecond})
	if err := sy.Run(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Syncer.Run = %v", err)
	}
	if got := rec.Statuses(); len(got) != 1 || got[0] != datastore.WaitForDatastore {
		t.Errorf("syncer statuses with no datastore = %v, want [WaitForDatastore]", got)
	}
}

func TestEtcdUsernamePassword(t *testing.T) {
	srv := startEtcd(t, embedetcd.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root := newEtcd(t, datastore.EtcdConfig{Endpoints: []string{srv.ClientURL()}}).Client()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(root.RoleAdd(ctx, "root"))
	must(root.UserAdd(ctx, "root", "rootpw"))
	must(root.UserGrantRole(ctx, "root", "root"))
	must(root.RoleAdd(ctx, "serval"))
	must(root.RoleGrantPermission(ctx, "serval", "/serval/", clientv3.GetPrefixRangeEnd("/serval/"), clientv3.PermissionType(clientv3.PermReadWrite)))
	must(root.UserAdd(ctx, "serval", "s3cret"))
	must(root.UserGrantRole(ctx, "serval", "serval"))
	must(root.AuthEnable(ctx))

	ep := []string{srv.ClientURL()}
	s := newEtcd(t, datastore.EtcdConfig{Endpoints: ep, Username: "serval", Password: "s3cret"})
	created, err := s.Create(ctx, dstest.NewThing("a", nil, dstest.ThingSpec{}))
	if err != nil {
		t.Fatalf("Create as an authorised user: %v", err)
	}
	w, err := s.Watch(ctx, datastore.WatchOptions{Kind: dstest.ThingKind, Revision: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	select {
	case ev := <-w.Events():
		if ev.Type != datastore.Added || ev.Object.GetObjectMeta().UID != created.GetObjectMeta().UID {
			t.Errorf("watch as an authorised user: %v %v", ev.Type, ev.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
	if _, err := s.List(ctx, datastore.ListOptions{Kind: dstest.ThingKind}); err != nil {
		t.Errorf("List as an authorised user: %v", err)
	}

	// A wrong password is refused at once, and is not an outage.
	_, err = datastore.NewEtcd(datastore.EtcdConfig{Endpoints: ep, Username: "serval", Password: "wrong"})
	if err == nil || errors.Is(err, datastore.ErrUnavailable) || !strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("NewEtcd with a wrong password: %v", err)
	}
	// Without credentials nothing can be read.
	anon := newEtcd(t, datastore.EtcdConfig{Endpoints: ep, RequestTimeout: 5 * time.Second})
	if _, err := anon.Get(ctx, api.Key{Kind: dstest.ThingKind, Name: "a"}); err == nil || errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("Get without credentials: %v, want a permission error", err)
	}
	// A user without rights on another prefix cannot use it.
	other := newEtcd(t, datastore.EtcdConfig{Endpoints: ep, Username: "serval", Password: "s3cret", Prefix: "/other"})
	if _, err := other.Create(ctx, dstest.NewThing("a", nil, dstest.ThingSpec{})); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Create outside the granted prefix: %v", err)
	}
}

func TestEtcdTLSClientCert(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	srv := startEtcd(t, embedetcd.Config{
		ListenClientURL: "https://127.0.0.1:0",
		ClientCertFile:  pki.serverCert,
		ClientKeyFile:   pki.serverKey,
		ClientCAFile:    pki.caCert,
	})
	if !strings.HasPrefix(srv.ClientURL(), "https://") {
		t.Fatalf("client URL %s", srv.ClientURL())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ep := []string{srv.ClientURL()}
	s := newEtcd(t, datastore.EtcdConfig{Endpoints: ep, CertFile: pki.clientCert, KeyFile: pki.clientKey, CAFile: pki.caCert})
	if _, err := s.Create(ctx, dstest.NewThing("a", nil, dstest.ThingSpec{})); err != nil {
		t.Fatalf("Create over TLS with a client certificate: %v", err)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check: %v", err)
	}

	// Without a client certificate the server refuses the connection.
	noCert := newEtcd(t, datastore.EtcdConfig{Endpoints: ep, CAFile: pki.caCert, DialTimeout: time.Second, RequestTimeout: 2 * time.Second})
	if _, err := noCert.Get(ctx, api.Key{Kind: dstest.ThingKind, Name: "a"}); err == nil {
		t.Error("Get without a client certificate succeeded")
	}
	// A certificate from another CA is refused too.
	rogue := newPKI(t, t.TempDir())
	bad := newEtcd(t, datastore.EtcdConfig{Endpoints: ep, CertFile: rogue.clientCert, KeyFile: rogue.clientKey, CAFile: pki.caCert, DialTimeout: time.Second, RequestTimeout: 2 * time.Second})
	if _, err := bad.Get(ctx, api.Key{Kind: dstest.ThingKind, Name: "a"}); err == nil {
		t.Error("Get with a certificate from an unknown CA succeeded")
	}
	// Bad file names are reported by NewEtcd.
	if _, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: ep, CertFile: filepath.Join(dir, "missing.pem"), KeyFile: pki.clientKey}); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("NewEtcd with a missing certificate file: %v", err)
	}
	if _, err := datastore.NewEtcd(datastore.EtcdConfig{Endpoints: ep, CertFile: pki.clientCert}); err == nil {
		t.Error("NewEtcd with a certificate but no key succeeded")
	}
}

type pkiFiles struct {
	caCert, serverCert, serverKey, clientCert, clientKey string
}

// newPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, into dir.
func newPKI(t *testing.T, dir string) pkiFiles {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "serval test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
			DNSNames:     []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", keyDER)
	}
	var f pkiFiles
	f.caCert = write("ca.pem", "CERTIFICATE", caDER)
	f.serverCert, f.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	f.clientCert, f.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return f
}
