package kubeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Files are what one API server needs besides etcd, written into a
// directory: a CA, a serving certificate it signs, the admin's client
// certificate and bearer token (user AdminUser, group system:masters) and
// the service-account key pair.
type Files struct {
	Dir string
	// CAFile signed the serving certificate and the admin's client
	// certificate; CAPEM is its content.
	CAFile string
	CAPEM  []byte
	// CertFile and KeyFile are the serving certificate and its key.
	CertFile, KeyFile string
	// SAPublicFile and SAPrivateFile are the service-account key pair.
	SAPublicFile, SAPrivateFile string
	// AdminCertFile and AdminKeyFile are a client certificate of the admin.
	AdminCertFile, AdminKeyFile string
	// TokenFile is the API server's static token file, holding Token,
	// the admin's bearer token.
	TokenFile, Token string
}

// ServiceIPs are the first addresses of ServiceCIDRv4 and ServiceCIDRv6,
// those of the `kubernetes` Service.
func ServiceIPs() []net.IP {
	return []net.IP{net.ParseIP("10.96.0.1"), net.ParseIP("fd00:10:96::1")}
}

// WriteFiles generates the files into dir (made if missing). The serving
// certificate is valid for localhost, the `kubernetes` Service's names,
// the loopback addresses, ServiceIPs and servingIPs (the addresses the
// server is reached at besides loopback).
func WriteFiles(dir string, servingIPs ...net.IP) (*Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making the API server's directory %s: %w", dir, err)
	}
	pk, err := newPKI(dir, append(ServiceIPs(), servingIPs...))
	if err != nil {
		return nil, err
	}
	f := &Files{
		Dir: dir, CAFile: pk.caFile, CAPEM: pk.caPEM, CertFile: pk.certFile, KeyFile: pk.keyFile,
		SAPublicFile: pk.saPublicFile, SAPrivateFile: pk.saPrivateFile,
		AdminCertFile: pk.clientCertFile, AdminKeyFile: pk.clientKeyFile,
		TokenFile: filepath.Join(dir, "tokens.csv"),
	}
	if f.Token, err = randomToken(); err != nil {
		return nil, err
	}
	// token,user,uid,"group1,group2"
	if err := os.WriteFile(f.TokenFile, fmt.Appendf(nil, "%s,%s,%s,\"system:masters\"\n", f.Token, AdminUser, AdminUser), 0o600); err != nil {
		return nil, fmt.Errorf("writing the API server's token file: %w", err)
	}
	return f, nil
}

// Args is the kube-apiserver command line serving on bind:port, storing
// in etcd at etcdURL, set up as doc.go says; extra is appended (a later
// flag overrides an earlier one).
func (f *Files) Args(etcdURL string, bind net.IP, port int, extra []string) []string {
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + bind.String(),
		"--advertise-address=" + bind.String(),
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + f.CertFile,
		"--tls-private-key-file=" + f.KeyFile,
		"--client-ca-file=" + f.CAFile,
		"--token-auth-file=" + f.TokenFile,
		"--authorization-mode=RBAC",
		"--anonymous-auth=false",
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + f.SAPublicFile,
		"--service-account-signing-key-file=" + f.SAPrivateFile,
		"--service-cluster-ip-range=" + ServiceCIDRv4 + "," + ServiceCIDRv6,
		"--allow-privileged=true",
		// There is no controller publishing the `kubernetes` Service's
		// endpoints from a loopback address: keep the API server from
		// trying.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--cert-dir=" + filepath.Join(f.Dir, "certs"),
		"--v=1",
	}
	return append(args, extra...)
}

// WriteKubeconfig writes an admin kubeconfig for the server at url
// (https://HOST:PORT) to path; name names its cluster and context.
func (f *Files) WriteKubeconfig(path, name, url string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: url, CertificateAuthorityData: f.CAPEM}
	cfg.AuthInfos[AdminUser] = &clientcmdapi.AuthInfo{Token: f.Token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: AdminUser, Namespace: "default"}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing the admin kubeconfig %s: %w", path, err)
	}
	return nil
}

// Dialer makes a connection; nil is net.Dialer's.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Ready asks the API server at url for /readyz once, as the admin, and
// returns nil when it answers ok. dial, when not nil, makes the connection
// (from another network namespace, say).
func (f *Files) Ready(ctx context.Context, url string, dial Dialer) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(f.CAPEM) {
		return fmt.Errorf("API server at %s: CA %s holds no certificate", url, f.CAFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}
	if dial != nil {
		tr.DialContext = dial
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("readiness request to %s: %w", url, err)
	}
	req.Header.Set("Authorization", "Bearer "+f.Token)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("readiness of the API server at %s: %w", url, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("API server at %s not ready: HTTP %d: %s", url, resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating the admin token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
