package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/servalnet/serval/internal/datastore/embedetcd"
)

// Version is the Kubernetes release whose binaries the harness runs.
const Version = "v1.37.2"

// AdminUser is the user name of the admin credentials (token and client
// certificate), a member of system:masters.
const AdminUser = "serval-admin"

// Service ranges of the test API server: dual-stack, as Serval is.
const (
	ServiceCIDRv4 = "10.96.0.0/16"
	ServiceCIDRv6 = "fd00:10:96::/112"
)

// ServiceAccountIssuer is the issuer of the service-account tokens the test
// API server signs.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// DefaultStartTimeout bounds New when its context has no deadline. A
// kube-apiserver on a loaded 2-core machine takes seconds to tens of
// seconds to become ready.
const DefaultStartTimeout = 3 * time.Minute

// stopGrace is how long Stop waits for the API server to exit after
// SIGTERM before it kills it.
const stopGrace = 20 * time.Second

// Options configures New. The zero value is usable.
type Options struct {
	// Dir holds the cluster's files (etcd data, certificates, kubeconfig,
	// the API server's log). New makes a temporary directory when empty;
	// Stop removes only a directory New made.
	Dir string
	// BinDir holds kube-apiserver and kubectl; BinDir() when empty.
	BinDir string
	// Logger receives the harness's progress; nil discards it. (etcd's
	// warnings go to the file EtcdLogFile.)
	Logger *slog.Logger
	// ExtraArgs are appended to the API server's command line (a later
	// flag overrides an earlier one).
	ExtraArgs []string
}

// Cluster is a running kube-apiserver with its embedded etcd.
type Cluster struct {
	// Dir holds the cluster's files.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig file.
	Kubeconfig string
	// URL is the API server's address, https://127.0.0.1:PORT.
	URL string
	// Token is the admin's bearer token (user AdminUser, group
	// system:masters).
	Token string
	// CAFile is the CA that signed the serving certificate and the admin's
	// client certificate.
	CAFile string
	// AdminCertFile and AdminKeyFile are a client certificate of the admin,
	// the other way to authenticate as AdminUser in system:masters.
	AdminCertFile, AdminKeyFile string
	// LogFile is where the API server writes its log.
	LogFile string
	// EtcdURL is the client URL of the embedded etcd, EtcdLogFile where
	// it logs its warnings and errors.
	EtcdURL, EtcdLogFile string
	// StartDuration is how long New took until /readyz answered ok.
	StartDuration time.Duration

	binDir     string
	caPEM      []byte
	ownDir     bool
	log        *slog.Logger
	etcd       *embedetcd.Server
	cmd        *exec.Cmd
	logOut     *os.File
	etcdLogOut *os.File
	exited     chan struct{} // closed when the API server process has exited
	waitErr    error         // its exit status, valid once exited is closed

	stopOnce sync.Once
	stopErr  error
}

// BinDir is where scripts/k8s-binaries.sh puts the binaries:
// ${SERVAL_K8S_CACHE:-/root/.cache/serval/k8s}/VERSION/bin.
func BinDir() string {
	cache := os.Getenv("SERVAL_K8S_CACHE")
	if cache == "" {
		cache = "/root/.cache/serval/k8s"
	}
	return filepath.Join(cache, Version, "bin")
}

// MissingBinaryError says that a Kubernetes binary is not built.
type MissingBinaryError struct {
	Path string
	Err  error
}

func (e *MissingBinaryError) Error() string {
	return fmt.Sprintf("Kubernetes %s binary %s is missing (%v): run scripts/k8s-binaries.sh (or `make k8s-binaries`) to build it; `make test` does", Version, e.Path, e.Err)
}

func (e *MissingBinaryError) Unwrap() error { return e.Err }

// binary returns the path of name in dir, or a *MissingBinaryError.
func binary(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	st, err := os.Stat(p)
	if err == nil && (st.IsDir() || st.Mode()&0o111 == 0) {
		err = errors.New("not an executable file")
	}
	if err != nil {
		return "", &MissingBinaryError{Path: p, Err: err}
	}
	return p, nil
}

// New starts an embedded etcd and a kube-apiserver on loopback, waits until
// the API server is ready, and writes an admin kubeconfig. The caller must
// Stop it. The API server is killed if this process dies (Pdeathsig). When
// it fails, everything it started is stopped, and the error holds the end
// of the API server's log.
func New(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	apiserver, err := binary(opts.BinDir, "kube-apiserver")
	if err != nil {
		return nil, err
	}
	if _, err := binary(opts.BinDir, "kubectl"); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStartTimeout)
		defer cancel()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	c = &Cluster{Dir: opts.Dir, binDir: opts.BinDir, log: log}
	if c.Dir == "" {
		removeStaleDirs(log)
		if c.Dir, err = os.MkdirTemp("", tempDirPrefix); err != nil {
			return nil, fmt.Errorf("making the test cluster's directory: %w", err)
		}
		c.ownDir = true
		if err := os.WriteFile(filepath.Join(c.Dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			return c, fmt.Errorf("writing the test cluster's owner: %w", err)
		}
	} else if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("making the test cluster's directory %s: %w", c.Dir, err)
	}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()

	// etcd's warnings (and its complaints while closing) go to a file of
	// their own, beside the API server's log.
	c.EtcdLogFile = filepath.Join(c.Dir, "etcd.log")
	if c.etcdLogOut, err = os.OpenFile(c.EtcdLogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return c, fmt.Errorf("opening etcd's log %s: %w", c.EtcdLogFile, err)
	}
	c.etcd, err = embedetcd.Start(ctx, embedetcd.Config{
		DataDir:         filepath.Join(c.Dir, "etcd"),
		ListenClientURL: "http://127.0.0.1:0",
		ListenPeerURL:   "http://127.0.0.1:0",
		Logger:          slog.New(slog.NewTextHandler(c.etcdLogOut, &slog.HandlerOptions{Level: slog.LevelWarn})),
		// The API server compacts etcd itself (every 5 minutes).
		AutoCompactionRetention: "0",
	})
	if err != nil {
		return c, fmt.Errorf("test cluster: %w", err)
	}
	c.EtcdURL = c.etcd.ClientURL()

	pk, err := newPKI(c.Dir, []net.IP{net.ParseIP("10.96.0.1"), net.ParseIP("fd00:10:96::1")})
	if err != nil {
		return c, fmt.Errorf("test cluster: %w", err)
	}
	c.CAFile, c.caPEM = pk.caFile, pk.caPEM
	c.AdminCertFile, c.AdminKeyFile = pk.clientCertFile, pk.clientKeyFile
	if c.Token, err = randomToken(); err != nil {
		return c, err
	}
	tokenFile := filepath.Join(c.Dir, "tokens.csv")
	// token,user,uid,"group1,group2"
	if err := os.WriteFile(tokenFile, fmt.Appendf(nil, "%s,%s,%s,\"system:masters\"\n", c.Token, AdminUser, AdminUser), 0o600); err != nil {
		return c, fmt.Errorf("writing the API server's token file: %w", err)
	}
	c.LogFile = filepath.Join(c.Dir, "kube-apiserver.log")
	if c.logOut, err = os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return c, fmt.Errorf("opening the API server's log %s: %w", c.LogFile, err)
	}

	// The port is picked free and then handed to the API server, so another
	// process may take it in between: try again with another when the API
	// server says so.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return c, err
		}
		c.URL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		args := apiserverArgs(c, pk, tokenFile, port, opts.ExtraArgs)
		log.Info("starting kube-apiserver", "url", c.URL, "etcd", c.EtcdURL, "log", c.LogFile)
		if err := c.startProcess(apiserver, args); err != nil {
			return c, err
		}
		err = c.waitReady(ctx)
		if err == nil {
			break
		}
		if attempt < 3 && c.processExited() && strings.Contains(c.logTail(4096), "address already in use") {
			log.Info("kube-apiserver's port was taken; trying another", "port", port)
			continue
		}
		return c, fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, c.LogFile, c.logTail(8192))
	}
	if err := c.writeKubeconfig(); err != nil {
		return c, err
	}
	c.StartDuration = time.Since(start)
	log.Info("kube-apiserver ready", "url", c.URL, "took", c.StartDuration.Round(time.Millisecond))
	return c, nil
}

func apiserverArgs(c *Cluster, pk *pki, tokenFile string, port int, extra []string) []string {
	args := []string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + pk.certFile,
		"--tls-private-key-file=" + pk.keyFile,
		"--client-ca-file=" + pk.caFile,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--anonymous-auth=false",
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + pk.saPublicFile,
		"--service-account-signing-key-file=" + pk.saPrivateFile,
		"--service-cluster-ip-range=" + ServiceCIDRv4 + "," + ServiceCIDRv6,
		"--allow-privileged=true",
		// A loopback address is no valid endpoint of the `kubernetes`
		// Service: keep the API server from trying to publish it.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--cert-dir=" + filepath.Join(c.Dir, "certs"),
		"--v=1",
	}
	return append(args, extra...)
}

// startProcess starts the API server, its output appended to the log
// file, killed with this process.
func (c *Cluster) startProcess(path string, args []string) error {
	cmd := exec.Command(path, args...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = c.logOut, c.logOut
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + c.Dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	fmt.Fprintf(c.logOut, "=== %s %s\n", path, strings.Join(args, " "))
	// Pdeathsig follows the thread that started the process, not the
	// process: if that thread ended (Go ends a thread whose goroutine exits
	// while locked to it, as network-namespace code does), the API server
	// would be killed under a running test. So a goroutine locked to its
	// thread starts it and stays until it has exited.
	exited := make(chan struct{})
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting %s: %w", path, err)
	}
	c.cmd, c.exited = cmd, exited
	return nil
}

func (c *Cluster) processExited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// waitReady polls /readyz until it answers ok, the process exits or ctx
// is done.
func (c *Cluster) waitReady(ctx context.Context) error {
	hc, err := c.httpClient()
	if err != nil {
		return err
	}
	var last string
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("readiness request to %s: %w", c.URL, err)
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := hc.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-c.exited:
			return fmt.Errorf("kube-apiserver at %s exited before it was ready: %v", c.URL, c.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver at %s not ready (last /readyz: %s): %w", c.URL, last, ctx.Err())
		case <-tick.C:
		}
	}
}

func (c *Cluster) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.caPEM) {
		return nil, fmt.Errorf("test cluster: CA %s holds no certificate", c.CAFile)
	}
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}, nil
}

func (c *Cluster) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["serval-kubetest"] = &clientcmdapi.Cluster{Server: c.URL, CertificateAuthorityData: c.caPEM}
	cfg.AuthInfos[AdminUser] = &clientcmdapi.AuthInfo{Token: c.Token}
	cfg.Contexts["serval-kubetest"] = &clientcmdapi.Context{Cluster: "serval-kubetest", AuthInfo: AdminUser, Namespace: "default"}
	cfg.CurrentContext = "serval-kubetest"
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, c.Kubeconfig); err != nil {
		return fmt.Errorf("writing the admin kubeconfig %s: %w", c.Kubeconfig, err)
	}
	return nil
}

// RESTConfig returns a new admin client configuration (user AdminUser, in
// system:masters). Its rate limit is raised from client-go's default (5
// requests/s) so that tests creating many objects do not crawl.
func (c *Cluster) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     c.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), c.caPEM...)},
		QPS:             500,
		Burst:           1000,
		UserAgent:       "serval-kubetest",
	}
}

// UserConfig returns a client configuration acting as user in groups (by
// impersonation from the admin), for tests of what RBAC allows.
func (c *Cluster) UserConfig(user string, groups ...string) *rest.Config {
	cfg := c.RESTConfig()
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return cfg
}

// Stop stops the API server (SIGTERM, SIGKILL after a grace period) and
// etcd, and removes the directory if New made it. It is safe to call more
// than once; it returns the first call's error.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	var errs []error
	if c.cmd != nil && c.cmd.Process != nil && !c.processExited() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(stopGrace):
			c.log.Warn("kube-apiserver did not exit after SIGTERM; killing it", "pid", c.cmd.Process.Pid)
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			<-c.exited
		}
	}
	if c.etcd != nil {
		c.etcd.Close()
	}
	for _, f := range []*os.File{c.logOut, c.etcdLogOut} {
		if f == nil {
			continue
		}
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing %s: %w", f.Name(), err))
		}
	}
	if c.ownDir {
		if err := os.RemoveAll(c.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing the test cluster's directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// LogTail returns up to the last n bytes of the API server's log, from the
// start of a line.
func (c *Cluster) LogTail(n int) string { return c.logTail(n) }

func (c *Cluster) logTail(n int) string {
	if c.LogFile == "" {
		return ""
	}
	b, err := os.ReadFile(c.LogFile)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", c.LogFile, err)
	}
	if len(b) > n {
		b = b[len(b)-n:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port for kube-apiserver: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// A directory New makes is named tempDirPrefix*, and ownerFile in it holds
// the pid of the process that made it.
const (
	tempDirPrefix = "serval-kubetest-"
	ownerFile     = "owner.pid"
)

// removeStaleDirs removes the directories of test clusters whose process
// died without stopping them (a test binary killed by its timeout, say):
// their API servers died with it (Pdeathsig), their files stay behind.
func removeStaleDirs(log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempDirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or still being made
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("removing a dead test cluster's directory", "dir", dir, "err", err)
		}
	}
}
