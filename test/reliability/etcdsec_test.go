package reliability

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// freePort is a TCP port on 127.0.0.1 nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtcd runs Debian's etcd on 127.0.0.1 with extra flags and returns
// its client URL once it is listening. scheme is http or https.
func startEtcd(t *testing.T, scheme string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	client := fmt.Sprintf("%s://127.0.0.1:%d", scheme, freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	args := append([]string{"--name", "rel", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "rel=" + peer}, extra...)
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("etcd", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
	hostport := strings.TrimPrefix(strings.TrimPrefix(client, "https://"), "http://")
	if !eventually(20*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", hostport, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("etcd at %s did not start:\n%s", client, log)
	}
	return client
}

// servalctl runs the built servalctl and returns its output and whether it
// succeeded.
func servalctl(t *testing.T, stdin string, args ...string) (string, bool) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "servalctl"), args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

const testPool = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: rel-pool}
spec: {cidr: 10.123.0.0/16}
`

// TestEtcdTLSEndToEnd: servalctl talks to a real etcd that demands client
// certificates, with the certificate, and is refused without it.
func TestEtcdTLSEndToEnd(t *testing.T) {
	needRoot(t)
	needBinary(t, "etcd")
	pki := writePKI(t, t.TempDir())
	ep := startEtcd(t, "https", "--client-cert-auth", "--trusted-ca-file", pki.ca,
		"--cert-file", pki.serverCert, "--key-file", pki.serverKey)
	tlsFlags := []string{"--etcd-endpoints", ep, "--etcd-ca-cert-file", pki.ca, "--etcd-cert-file", pki.clientCert, "--etcd-key-file", pki.clientKey, "--timeout", "5s"}
	if out, ok := servalctl(t, testPool, append(tlsFlags, "apply", "-f", "-")...); !ok {
		t.Fatalf("apply over TLS with a client certificate: %s", out)
	}
	if out, ok := servalctl(t, "", append(tlsFlags, "get", "ippools")...); !ok || !strings.Contains(out, "rel-pool") {
		t.Errorf("get over TLS: %s", out)
	}
	out, ok := servalctl(t, "", "--etcd-endpoints", ep, "--etcd-ca-cert-file", pki.ca, "--timeout", "3s", "get", "ippools")
	if ok {
		t.Errorf("get without a client certificate succeeded: %s", out)
	} else {
		t.Logf("without a client certificate: %s", strings.TrimSpace(out))
	}
}

// TestEtcdAuthEndToEnd: servalctl with a user and password on a real etcd
// with authentication on; a wrong password is refused with a message that
// says so, and neither password is ever printed.
func TestEtcdAuthEndToEnd(t *testing.T) {
	needRoot(t)
	needBinary(t, "etcd")
	ep := startEtcd(t, "http")
	const password, wrong = "Serval-etcd-s3cret", "Wrong-etcd-guess"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	steps := []func() error{
		func() error { _, err := c.RoleAdd(ctx, "root"); return err },
		func() error { _, err := c.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := c.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := c.UserAdd(ctx, "serval", password); return err },
		func() error { _, err := c.UserGrantRole(ctx, "serval", "root"); return err },
		func() error { _, err := c.AuthEnable(ctx); return err },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("setting up etcd auth (step %d): %v", i, err)
		}
	}
	auth := []string{"--etcd-endpoints", ep, "--etcd-username", "serval", "--timeout", "5s"}
	if out, ok := servalctl(t, testPool, append(auth, "--etcd-password", password, "apply", "-f", "-")...); !ok {
		t.Fatalf("apply with the right password: %s", out)
	} else if strings.Contains(out, password) {
		t.Errorf("servalctl printed the password: %s", out)
	}
	out, ok := servalctl(t, "", append(auth, "--etcd-password", wrong, "get", "ippools")...)
	if ok {
		t.Errorf("get with a wrong password succeeded: %s", out)
	}
	if !strings.Contains(strings.ToLower(out), "auth") {
		t.Errorf("a wrong password's message does not say authentication failed: %s", out)
	}
	if strings.Contains(out, wrong) {
		t.Errorf("servalctl printed the (wrong) password: %s", out)
	}
	out, ok = servalctl(t, "", "--etcd-endpoints", ep, "--timeout", "3s", "get", "ippools")
	if ok {
		t.Errorf("get without credentials succeeded: %s", out)
	}
	// The environment variable works the same and is not echoed either.
	cmd := exec.Command(filepath.Join(binDir, "servalctl"), append(auth, "get", "ippools", "-o", "yaml")...)
	cmd.Env = append(os.Environ(), "SERVAL_ETCD_PASSWORD="+password)
	data, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(data), "rel-pool") || strings.Contains(string(data), password) {
		t.Errorf("get with SERVAL_ETCD_PASSWORD: %v\n%s", err, data)
	}
}

type pkiFiles struct{ ca, serverCert, serverKey, clientCert, clientKey string }

// writePKI writes a CA and a server (127.0.0.1) and a client certificate
// it signed, keys mode 0600.
func writePKI(t *testing.T, dir string) pkiFiles {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "serval-rel-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return write(name+".pem", "CERTIFICATE", der, 0o644), write(name+"-key.pem", "EC PRIVATE KEY", kder, 0o600)
	}
	p := pkiFiles{ca: write("ca.pem", "CERTIFICATE", caDER, 0o644)}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}
