package lakebase

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"encoding/pem"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ServerCertificate is what CheckServerCertificate found about the Postgres
// server's TLS certificate.
type ServerCertificate struct {
	Host string
	// Subject and Issuer of the leaf certificate, and its expiry.
	Subject, Issuer string
	NotAfter        time.Time
	// SystemTrusted: the chain verifies against the operating system's roots and the
	// certificate is for Host, so SSLMode=verify-full with SSLServerCert=system would
	// accept this server. VerifyError says why not, when it does not.
	SystemTrusted bool
	VerifyError   string
}

// CheckServerCertificate resolves the server (running the token pipeline when the
// host comes from Instance or Endpoint), opens a TLS session to it the way
// PostgreSQL does (SSLRequest, then the handshake), and reports whether its
// certificate verifies against the system roots and the host name. It sends no
// credential. Use it to see whether SSLMode=verify-full with SSLServerCert=system
// can be switched on.
func (c *Connector) CheckServerCertificate(ctx context.Context) (ServerCertificate, error) {
	ctx, cancel := c.bounded(ctx)
	defer cancel()
	li, err := c.login(ctx, "")
	if err != nil {
		return ServerCertificate{}, err
	}
	rep := ServerCertificate{Host: li.host}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(li.host, strconv.Itoa(li.port)))
	if err != nil {
		return rep, fmt.Errorf("lakebase: reaching %s: %w", li.host, err)
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
		return rep, err
	}
	var ans [1]byte
	if _, err := io.ReadFull(nc, ans[:]); err != nil {
		return rep, err
	}
	if ans[0] != 'S' {
		return rep, fmt.Errorf("lakebase: %s does not offer TLS", li.host)
	}
	tc := tls.Client(nc, &tls.Config{ServerName: li.host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		return rep, fmt.Errorf("lakebase: TLS handshake with %s: %w", li.host, err)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return rep, fmt.Errorf("lakebase: %s sent no certificate", li.host)
	}
	rep.Subject, rep.Issuer, rep.NotAfter = certs[0].Subject.String(), certs[0].Issuer.String(), certs[0].NotAfter
	roots, err := x509.SystemCertPool()
	if err != nil {
		rep.VerifyError = "the system roots cannot be read: " + err.Error()
		return rep, nil
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: li.host, Intermediates: x509.NewCertPool()}
	for _, ic := range certs[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		rep.VerifyError = err.Error()
	} else {
		rep.SystemTrusted = true
	}
	return rep, nil
}

// applyTLS sets the TLS policy of SSLMode for host on cc.
func (c *Config) applyTLS(cc *pgconn.Config, host string, roots *x509.CertPool) error {
	cc.Fallbacks = nil
	switch c.SSLMode {
	case SSLDisable:
		cc.TLSConfig = nil
		return nil
	case SSLAllow, SSLPrefer:
		tlsc := &tls.Config{InsecureSkipVerify: true, ServerName: host, MinVersion: tls.VersionTLS12}
		if c.SSLMode == SSLPrefer {
			cc.TLSConfig = tlsc
			cc.Fallbacks = []*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: nil}}
		} else {
			cc.TLSConfig = nil
			cc.Fallbacks = []*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: tlsc}}
		}
		return nil
	case SSLRequire:
		if roots == nil {
			cc.TLSConfig = &tls.Config{InsecureSkipVerify: true, ServerName: host, MinVersion: tls.VersionTLS12}
			return nil
		}
		// As in libpq, require with a trusted certificate verifies the chain like verify-ca.
		fallthrough
	case SSLVerifyCA:
		cc.TLSConfig = &tls.Config{
			InsecureSkipVerify: true, // the chain is checked below, without the host name
			ServerName:         host,
			MinVersion:         tls.VersionTLS12,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return fmt.Errorf("lakebase: the server sent no TLS certificate")
				}
				opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
				for _, ic := range cs.PeerCertificates[1:] {
					opts.Intermediates.AddCert(ic)
				}
				if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
					return fmt.Errorf("lakebase: SSLMode=verify-ca: %w", err)
				}
				return nil
			},
		}
		return nil
	case SSLVerifyFull:
		cc.TLSConfig = &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}
		return nil
	}
	return &ConfigError{Property: "SSLMode", Value: string(c.SSLMode), Err: fmt.Errorf("is not supported")}
}

// SSLServerCertSystem as SSLServerCert trusts the operating system's root
// certificates and implies SSLMode=verify-full, as libpq's sslrootcert=system.
const SSLServerCertSystem = "system"

// loadServerCert reads SSLServerCert: inline PEM or a file path. It returns nil when unset.
func (c *Config) loadServerCert() (*x509.CertPool, error) {
	v := strings.TrimSpace(c.SSLServerCert)
	if v == "" {
		return nil, nil
	}
	if v == SSLServerCertSystem {
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, &ConfigError{Property: "SSLServerCert", Value: v, Err: fmt.Errorf("the system's root certificates cannot be read: %w", err)}
		}
		return pool, nil
	}
	data := []byte(v)
	if !strings.HasPrefix(v, "-----BEGIN") {
		b, err := os.ReadFile(v)
		if err != nil {
			return nil, &ConfigError{Property: "SSLServerCert", Value: v, Err: fmt.Errorf("cannot be read: %w", err)}
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
			return nil, &ConfigError{Property: "SSLServerCert", Err: fmt.Errorf("holds a certificate that cannot be parsed: %w", err)}
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, &ConfigError{Property: "SSLServerCert", Err: fmt.Errorf("holds no PEM certificate")}
	}
	return pool, nil
}
