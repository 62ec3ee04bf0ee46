package kubetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the key material of one test API server, written as files in its
// directory: a CA, the serving certificate it signs (for every loopback
// name and the first addresses of the service ranges, as a cluster's
// `kubernetes` Service would be reached), and the service-account key pair.
type pki struct {
	caPEM                         []byte
	caFile, certFile, keyFile     string
	saPublicFile, saPrivateFile   string
	clientCertFile, clientKeyFile string // admin client certificate (system:masters)
	clientCertPEM, clientKeyPEM   []byte

	servingNames          []string
	servingIPs            []net.IP
	notBefore, notAfter   time.Time
	caKey                 *ecdsa.PrivateKey
	caCert                *x509.Certificate
	writeFile             func(name string, data []byte) (string, error)
	serialNumbers         int64
	serviceAccountRSABits int
	clientUser            string
	clientGroups          []string
}

// newPKI generates the key material into dir.
func newPKI(dir string, serviceIPs []net.IP) (*pki, error) {
	p := &pki{
		notBefore:             time.Now().Add(-time.Hour),
		notAfter:              time.Now().Add(7 * 24 * time.Hour),
		servingNames:          []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		servingIPs:            append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, serviceIPs...),
		serviceAccountRSABits: 2048,
		clientUser:            AdminUser,
		clientGroups:          []string{"system:masters"},
	}
	p.writeFile = func(name string, data []byte) (string, error) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", fmt.Errorf("writing %s: %w", path, err)
		}
		return path, nil
	}
	steps := []func() error{p.makeCA, p.makeServing, p.makeClient, p.makeServiceAccountKeys}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *pki) serial() *big.Int {
	p.serialNumbers++
	return big.NewInt(p.serialNumbers)
}

func (p *pki) makeCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the test CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          p.serial(),
		Subject:               pkix.Name{CommonName: "serval-kubetest-ca"},
		NotBefore:             p.notBefore,
		NotAfter:              p.notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("signing the test CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parsing the test CA: %w", err)
	}
	p.caKey, p.caCert = key, cert
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	p.caFile, err = p.writeFile("ca.crt", p.caPEM)
	return err
}

// leaf signs a certificate with the CA and returns it and its key as PEM.
func (p *pki) leaf(subject pkix.Name, usage x509.ExtKeyUsage, names []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating a key for %s: %w", subject.CommonName, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: p.serial(),
		Subject:      subject,
		NotBefore:    p.notBefore,
		NotAfter:     p.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("signing the certificate of %s: %w", subject.CommonName, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the key of %s: %w", subject.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func (p *pki) makeServing() error {
	certPEM, keyPEM, err := p.leaf(pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth, p.servingNames, p.servingIPs)
	if err != nil {
		return err
	}
	if p.certFile, err = p.writeFile("apiserver.crt", certPEM); err != nil {
		return err
	}
	p.keyFile, err = p.writeFile("apiserver.key", keyPEM)
	return err
}

// makeClient makes the admin's client certificate: Kubernetes takes the
// user from the common name and the groups from the organizations.
func (p *pki) makeClient() error {
	certPEM, keyPEM, err := p.leaf(pkix.Name{CommonName: p.clientUser, Organization: p.clientGroups}, x509.ExtKeyUsageClientAuth, nil, nil)
	if err != nil {
		return err
	}
	p.clientCertPEM, p.clientKeyPEM = certPEM, keyPEM
	if p.clientCertFile, err = p.writeFile("admin.crt", certPEM); err != nil {
		return err
	}
	p.clientKeyFile, err = p.writeFile("admin.key", keyPEM)
	return err
}

// makeServiceAccountKeys makes the key pair the API server signs
// service-account tokens with (private) and checks them with (public).
func (p *pki) makeServiceAccountKeys() error {
	key, err := rsa.GenerateKey(rand.Reader, p.serviceAccountRSABits)
	if err != nil {
		return fmt.Errorf("generating the service-account signing key: %w", err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding the service-account signing key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("encoding the service-account public key: %w", err)
	}
	if p.saPrivateFile, err = p.writeFile("sa.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv})); err != nil {
		return err
	}
	p.saPublicFile, err = p.writeFile("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	return err
}
