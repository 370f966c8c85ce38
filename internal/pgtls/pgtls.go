// Package pgtls is the TLS of a Postgres session as libpq's sslmode and
// sslrootcert describe it: the pgconn TLS settings of each mode, the trusted roots
// of a certificate setting, and a look at a server's certificate that sends no
// credential.
package pgtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// System as a certificate setting trusts the operating system's roots (libpq's
// sslrootcert=system).
const System = "system"

// Apply sets the TLS policy of mode (disable, allow, prefer, require, verify-ca,
// verify-full) for host on cc; roots are the trusted roots (nil: none given).
func Apply(cc *pgconn.Config, mode, host string, roots *x509.CertPool) error {
	cc.Fallbacks = nil
	switch mode {
	case "disable":
		cc.TLSConfig = nil
		return nil
	case "allow", "prefer":
		tlsc := &tls.Config{InsecureSkipVerify: true, ServerName: host, MinVersion: tls.VersionTLS12}
		if mode == "prefer" {
			cc.TLSConfig = tlsc
			cc.Fallbacks = []*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: nil}}
		} else {
			cc.TLSConfig = nil
			cc.Fallbacks = []*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: tlsc}}
		}
		return nil
	case "require":
		if roots == nil {
			cc.TLSConfig = &tls.Config{InsecureSkipVerify: true, ServerName: host, MinVersion: tls.VersionTLS12}
			return nil
		}
		// As in libpq, require with a trusted certificate verifies the chain like verify-ca.
		fallthrough
	case "verify-ca":
		cc.TLSConfig = &tls.Config{
			InsecureSkipVerify: true, // the chain is checked below, without the host name
			ServerName:         host,
			MinVersion:         tls.VersionTLS12,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return fmt.Errorf("lakebase: the server sent no TLS certificate")
				}
				if err := verify(cs.PeerCertificates, roots, ""); err != nil {
					return fmt.Errorf("lakebase: SSLMode=verify-ca: %w", err)
				}
				return nil
			},
		}
		return nil
	case "verify-full":
		cc.TLSConfig = &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}
		return nil
	}
	return errors.New("is not supported")
}

// verify checks the chain of certs (leaf first) against roots, and the leaf's name
// when host is not "".
func verify(certs []*x509.Certificate, roots *x509.CertPool, host string) error {
	opts := x509.VerifyOptions{Roots: roots, DNSName: host, Intermediates: x509.NewCertPool()}
	for _, ic := range certs[1:] {
		opts.Intermediates.AddCert(ic)
	}
	_, err := certs[0].Verify(opts)
	return err
}

// LoadRoots reads a certificate setting: System, inline PEM or a file path. It
// returns nil for "".
func LoadRoots(v string) (*x509.CertPool, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	if v == System {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("the system's root certificates cannot be read: %w", err)
		}
		return pool, nil
	}
	data := []byte(v)
	if !strings.HasPrefix(v, "-----BEGIN") {
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("cannot be read: %w", err)
		}
		data = b
	}
	pool := x509.NewCertPool()
	n := 0
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("holds a certificate that cannot be parsed: %w", err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("holds no PEM certificate")
	}
	return pool, nil
}

// Inline reports whether a certificate setting holds the PEM itself (not a path).
func Inline(v string) bool { return strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") }

// Probe opens a TLS session to a Postgres server the way PostgreSQL does
// (SSLRequest, then the handshake), sending no credential, and returns the
// certificates it sent, leaf first.
func Probe(ctx context.Context, host string, port int) ([]*x509.Certificate, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("lakebase: reaching %s: %w", host, err)
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	// SSLRequest: length 8, code 80877103.
	var req [8]byte
	binary.BigEndian.PutUint32(req[0:], 8)
	binary.BigEndian.PutUint32(req[4:], 80877103)
	if _, err := nc.Write(req[:]); err != nil {
		return nil, err
	}
	var ans [1]byte
	if _, err := io.ReadFull(nc, ans[:]); err != nil {
		return nil, err
	}
	if ans[0] != 'S' {
		return nil, fmt.Errorf("lakebase: %s does not offer TLS", host)
	}
	tc := tls.Client(nc, &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("lakebase: TLS handshake with %s: %w", host, err)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("lakebase: %s sent no certificate", host)
	}
	return certs, nil
}

// SystemVerify checks certs (leaf first) against the system roots and host: "" when
// they verify, else why not.
func SystemVerify(certs []*x509.Certificate, host string) string {
	roots, err := x509.SystemCertPool()
	if err != nil {
		return "the system roots cannot be read: " + err.Error()
	}
	if err := verify(certs, roots, host); err != nil {
		return err.Error()
	}
	return ""
}
