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
	"strings"
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
	return ca.issueWith(name, time.Now().Add(-2*time.Hour), notAfter,
		x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
}

func writePEM(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startTLSServer starts a server with a certificate ca issued, which
// accepts only client certificates from ca.
func startTLSServer(t *testing.T, ca *pki) *testServer {
	dir := t.TempDir()
	srvCert, srvKey := ca.issue("server", time.Now().Add(time.Hour))
	return startServer(t, func(c *kinelite.Config) {
		c.ServerTLS = kinelite.TLSFiles{
			CertFile:      writePEM(t, dir, "server.pem", srvCert),
			KeyFile:       writePEM(t, dir, "server-key.pem", srvKey),
			TrustedCAFile: writePEM(t, dir, "ca.pem", ca.pem),
		}
	})
}

// TestClientCertificateAuthentication serves TLS with a trusted CA: only a
// client certificate from that CA, still valid, gets in.
func TestClientCertificateAuthentication(t *testing.T) {
	ca := newCA(t, "kinelite test CA")
	other := newCA(t, "another CA")
	ts := startTLSServer(t, ca)
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

// issueWith is issue with a chosen validity window and extended key usages.
func (ca *pki) issueWith(name string, notBefore, notAfter time.Time, usages ...x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages,
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

// TestClientCertificateEdgeCases completes TestClientCertificateAuthentication:
// a certificate not valid yet, one issued for server authentication only, a
// certificate from another CA of the same name, and a plain-text client are
// refused; a refused client changes nothing. (Over unixs:// client/v3 checks
// the server certificate against the socket file's base name, so the server
// certificate would need that name; TCP covers the client side.)
func TestClientCertificateEdgeCases(t *testing.T) {
	ca := newCA(t, "kinelite test CA")
	ts := startTLSServer(t, ca)
	ep := ts.srv.Endpoints()[0]
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	try := func(endpoint string, tlsCfg *tls.Config) error {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 3 * time.Second,
			Logger: zap.NewNop(), TLS: tlsCfg})
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = c.Put(ctx, "intrusion", "v")
		return err
	}
	withCert := func(certPEM, keyPEM []byte) *tls.Config {
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{c}, ServerName: "localhost"}
	}
	now := time.Now()
	impostor := newCA(t, "kinelite test CA") // same name, another key
	cases := map[string]*tls.Config{
		"not yet valid": withCert(ca.issueWith("early", now.Add(time.Hour), now.Add(2*time.Hour),
			x509.ExtKeyUsageClientAuth)),
		"server authentication only": withCert(ca.issueWith("server-only", now.Add(-time.Hour), now.Add(time.Hour),
			x509.ExtKeyUsageServerAuth)),
		"CA name, another key": withCert(impostor.issue("impostor", now.Add(time.Hour))),
	}
	for name, cfg := range cases {
		if err := try(ep, cfg); err == nil {
			t.Errorf("%s: got in", name)
		}
	}
	// A plain-text client gets nothing either.
	if err := try("http://"+strings.TrimPrefix(ep, "https://"), nil); err == nil {
		t.Error("a plain-text client got in")
	}
	// The right certificate gets in, and sees no trace of the others.
	good := withCert(ca.issueWith("client", now.Add(-time.Hour), now.Add(time.Hour), x509.ExtKeyUsageClientAuth))
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 3 * time.Second, Logger: zap.NewNop(), TLS: good})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, err := c.Get(ctxT(t), "intrusion")
	if err != nil || len(g.Kvs) != 0 {
		t.Fatalf("the right certificate: %v, %v", err, g)
	}
}
