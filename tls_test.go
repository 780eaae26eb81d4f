package kinelite_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kinelite/kinelite"
)

// pki issues certificates for tests.
type pki struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki{t: t, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for a leaf valid for both server and
// client authentication on 127.0.0.1, expiring at notAfter.
func (ca *pki) issue(name string, notAfter time.Time) (certPEM, keyPEM []byte) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writePEM(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClientCertificateAuthentication serves TLS with a trusted CA: only a
// client certificate from that CA, still valid, gets in.
func TestClientCertificateAuthentication(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "kinelite test CA")
	other := newCA(t, "another CA")
	srvCert, srvKey := ca.issue("server", time.Now().Add(time.Hour))
	ts := startServer(t, func(c *kinelite.Config) {
		c.ServerTLS = kinelite.TLSFiles{
			CertFile:      writePEM(t, dir, "server.pem", srvCert),
			KeyFile:       writePEM(t, dir, "server-key.pem", srvKey),
			TrustedCAFile: writePEM(t, dir, "ca.pem", ca.pem),
		}
	})
	ep := ts.srv.Endpoints()[0]
	if ep[:8] != "https://" {
		t.Fatalf("endpoint %q is not https", ep)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	try := func(certs []tls.Certificate) error {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 3 * time.Second, Logger: zap.NewNop(),
			TLS: &tls.Config{RootCAs: roots, Certificates: certs}})
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = c.Put(ctx, "secret", "v")
		return err
	}
	pair := func(certPEM, keyPEM []byte) []tls.Certificate {
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}

	if err := try(pair(ca.issue("client", time.Now().Add(time.Hour)))); err != nil {
		t.Fatalf("a valid client certificate was refused: %v", err)
	}
	if err := try(nil); err == nil {
		t.Fatal("a client without a certificate got in")
	}
	if err := try(pair(other.issue("intruder", time.Now().Add(time.Hour)))); err == nil {
		t.Fatal("a certificate from another CA got in")
	}
	if err := try(pair(ca.issue("expired", time.Now().Add(-time.Hour)))); err == nil {
		t.Fatal("an expired certificate got in")
	}

	// The server's own client configuration works (what embedders use).
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 3 * time.Second, Logger: zap.NewNop(),
		TLS: ts.srv.ClientTLSConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(ctxT(t), "secret"); err != nil {
		t.Fatalf("ClientTLSConfig: %v", err)
	}
}
