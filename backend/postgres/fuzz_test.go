package postgres

import (
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// FuzzDSNErrorsHoldNoSecret places a secret where DSNs carry them (the
// user information's password, the password and sslpassword parameters),
// raw or percent-encoded, and parses the DSN as Open does (ParseDSN, then
// pgx): no error either returns may hold the secret.
func FuzzDSNErrorsHoldNoSecret(f *testing.F) {
	f.Add("S3cret/pw", uint8(0), "")
	f.Add("S3cret:pw", uint8(1), "sslmode=bogus")
	f.Add("S3cret pw", uint8(2), "connect_timeout=x")
	f.Add("S3cret%zz", uint8(3), "port=99999")
	f.Add("S3cret@pw", uint8(0), "sslmode=verify-full&sslrootcert=/nonexistent")
	f.Fuzz(func(t *testing.T, secret string, shape uint8, extra string) {
		if len(secret) < 6 || strings.ContainsAny(secret, "\x00") {
			return
		}
		templates := []string{
			"postgres://admin:%s@db.example:5432/kine",
			"postgresql://admin:%s@db.example/kine?sslmode=disable",
			"postgres://db.example/kine?password=%s",
			"postgres://db.example/kine?sslpassword=%s&sslmode=require",
		}
		tmpl := templates[int(shape)%len(templates)]
		if extra != "" {
			if strings.Contains(tmpl, "?") {
				tmpl += "&" + extra
			} else {
				tmpl += "?" + extra
			}
		}
		rest := strings.Replace(tmpl, "%s", "", 1)
		// The rest as error messages may re-encode it (ParseDSN re-renders the URL).
		rest += "\x00" + url.PathEscape(rest) + "\x00" + url.QueryEscape(rest) + "\x00" + strings.ReplaceAll(rest, " ", "%20")
		for i := 0; i+5 <= len(secret); i++ {
			if strings.Contains(rest, secret[i:i+5]) {
				return // the DSN's other parts share text with the secret
			}
		}
		for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
			if strings.Contains(tmpl, "=%s") && strings.ContainsAny(form, "&#; \t\n\r\v\f") {
				continue // not one query value: the secret would not be the parameter's value
			}
			dsn := strings.Replace(tmpl, "%s", form, 1)
			var msgs []string
			cfg, err := ParseDSN(dsn)
			if err != nil {
				msgs = append(msgs, err.Error())
			} else if _, err := pgx.ParseConfig(cfg.DSN); err != nil {
				msgs = append(msgs, redactPgErr(err).Error())
			}
			for _, msg := range msgs {
				for _, leak := range []string{secret, form} {
					// Any six bytes of the secret that the rest of the DSN
					// and the message's own words do not also hold.
					for i := 0; i+6 <= len(leak); i++ {
						w := leak[i : i+6]
						if strings.Contains(msg, w) && !strings.Contains(rest, w) && !strings.Contains(messageWords, w) {
							t.Fatalf("DSN %q: the error %q holds %q of the secret %q", dsn, msg, w, leak)
						}
					}
				}
			}
		}
	})
}

// messageWords are words of the errors themselves.
const messageWords = "postgres: invalid DSN: cannot parse invalid port after host percent-encode special characters " +
	"in the user name and password xxxxx invalid URL escape net/url: invalid userinfo not a postgres DSN (scheme " +
	"failed to configure TLS sslmode is invalid database name first path segment in URL cannot contain colon"
