package lakebase

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// basePgxConfig builds the pgx configuration from explicit values only. Every field
// that a PG* environment variable, a service file or .pgpass could have set is
// overwritten, so the environment never changes where or how the driver connects.
// Host, user and password are filled in per connection.
func (c *Config) basePgxConfig() (*pgx.ConnConfig, error) {
	// Every key libpq reads from the environment is given, so pgx reads none of them;
	// the password keeps .pgpass from being opened.
	cc, err := pgx.ParseConfig("host=127.0.0.1 port=5432 user=lakebase password=unset dbname=lakebase " +
		"sslmode=disable connect_timeout=0 target_session_attrs=any sslnegotiation=postgres")
	if err != nil {
		return nil, fmt.Errorf("lakebase: building the pgx configuration: %w", err)
	}
	cc.Port = uint16(c.Port)
	cc.Database = c.Database
	cc.Password = ""
	cc.Fallbacks = nil
	cc.KerberosSrvName, cc.KerberosSpn = "", ""
	cc.ValidateConnect = nil
	cc.ConnectTimeout = 0 // the connector bounds the whole connect with Timeout
	cc.SSLNegotiation = "postgres"
	cc.RuntimeParams = map[string]string{"application_name": c.ApplicationName}
	if c.TimeZone != "" {
		cc.RuntimeParams["timezone"] = c.TimeZone
	}
	if c.SessionRole != "" {
		// The session's default role, set at startup (as psql's -c role=R): RESET ROLE,
		// RESET ALL, DISCARD ALL and SET SESSION AUTHORIZATION DEFAULT return to it, so
		// no later user of a pooled session runs with the identity's wider rights.
		cc.RuntimeParams["role"] = c.SessionRole
	}
	cc.DefaultQueryExecMode = c.execMode()
	if c.StatementCacheCapacity != nil {
		cc.StatementCacheCapacity = *c.StatementCacheCapacity
	}
	if c.DescriptionCacheCapacity != nil {
		cc.DescriptionCacheCapacity = *c.DescriptionCacheCapacity
	}
	return cc, nil
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
