package lakebase

import (
	"context"
	"crypto/x509"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lakebase-go/lakebase/internal/pgtls"
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
	certs, err := pgtls.Probe(ctx, li.host, li.port)
	if err != nil {
		return rep, err
	}
	rep.Subject, rep.Issuer, rep.NotAfter = certs[0].Subject.String(), certs[0].Issuer.String(), certs[0].NotAfter
	rep.VerifyError = pgtls.SystemVerify(certs, li.host)
	rep.SystemTrusted = rep.VerifyError == ""
	return rep, nil
}

// applyTLS sets the TLS policy of SSLMode for host on cc.
func (c *Config) applyTLS(cc *pgconn.Config, host string, roots *x509.CertPool) error {
	if err := pgtls.Apply(cc, string(c.SSLMode), host, roots); err != nil {
		return &ConfigError{Property: "SSLMode", Value: string(c.SSLMode), Err: err}
	}
	return nil
}

// SSLServerCertSystem as SSLServerCert trusts the operating system's root
// certificates and implies SSLMode=verify-full, as libpq's sslrootcert=system.
const SSLServerCertSystem = pgtls.System

// loadServerCert reads SSLServerCert: inline PEM or a file path. It returns nil when unset.
func (c *Config) loadServerCert() (*x509.CertPool, error) {
	pool, err := pgtls.LoadRoots(c.SSLServerCert)
	if err != nil {
		ce := &ConfigError{Property: "SSLServerCert", Err: err}
		if !pgtls.Inline(c.SSLServerCert) {
			ce.Value = strings.TrimSpace(c.SSLServerCert)
		}
		return nil, ce
	}
	return pool, nil
}
