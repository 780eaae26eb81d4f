package redact

import (
	"net/url"
	"strings"
	"testing"
)

func TestDSN(t *testing.T) {
	cases := []struct{ in, want string }{
		{"sqlite://./db/state.db", "sqlite://./db/state.db"},
		{"sqlite://./db/state.db?_journal_mode=WAL&cache=shared", "sqlite://./db/state.db?_journal_mode=WAL&cache=shared"},
		{"/var/lib/state.db", "/var/lib/state.db"},
		{"postgres://user:s3cret@db.example:5432/kine?sslmode=verify-full",
			"postgres://user:xxxxx@db.example:5432/kine?sslmode=verify-full"},
		{"postgres://user@host/db", "postgres://user@host/db"},
		{"postgres://user:p%40ss@host/db", "postgres://user:xxxxx@host/db"},
		{"postgres://user:p@ss/w?rd@host/db", "postgres://user:xxxxx@host/db"},
		{"postgres://user@host/db?password=s3cret&sslmode=require", "postgres://user@host/db?password=xxxxx&sslmode=require"},
		{"postgres://host/db?sslpassword=k3y&sslkey=/etc/key.pem", "postgres://host/db?sslpassword=xxxxx&sslkey=xxxxx"},
		{"postgres://host/db?PASSWORD=s3cret", "postgres://host/db?PASSWORD=xxxxx"},
		{"host=h user=u password=s3cret dbname=kine", "host=h user=u password=xxxxx dbname=kine"},
		{"host=h password='s3 cret' dbname=kine", "host=h password=xxxxx dbname=kine"},
		{"host=h password = 's3\\' cret' dbname=kine", "host=h password = xxxxx dbname=kine"},
		{"postgres://host/db?pass%77ord=s3cret", "postgres://host/db?xxxxx"},
		{"postgres://host/db?sslinline=true&sslkey=-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----",
			"postgres://host/db?sslinline=xxxxx&sslkey=xxxxx"},
		{"mysql://u:p@tcp(h:3306)/db", "mysql://u:xxxxx@tcp(h:3306)/db"},
	}
	for _, c := range cases {
		if got := DSN(c.in); got != c.want {
			t.Errorf("DSN(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

// FuzzDSN checks that a secret placed in any of a DSN's secret positions,
// raw or percent-encoded, never survives redaction.
func FuzzDSN(f *testing.F) {
	f.Add("s3cret-pw", uint8(0))
	f.Add("p@ss/w?rd#x", uint8(1))
	f.Add("with space'quote", uint8(6))
	f.Add("%zz", uint8(3))
	for i := range 8 {
		f.Add("another-secret", uint8(i))
	}
	f.Fuzz(func(t *testing.T, secret string, shape uint8) {
		if len(secret) < 6 || strings.ContainsAny(secret, "\x00") {
			return
		}
		templates := []string{
			"postgres://admin:%s@db.example:5432/kine?sslmode=require",
			"postgres://admin:%s@db.example/kine",
			"postgres://db.example/kine?sslmode=require&password=%s",
			"postgres://db.example/kine?sslpassword=%s&application_name=kinelite",
			"postgresql://admin@db.example/kine?sslkey=%s",
			"host=db.example user=admin password=%s dbname=kine",
			"host=db.example user=admin password='%s' dbname=kine",
			"mysql://admin:%s@tcp(db.example:3306)/kine",
		}
		tmpl := templates[int(shape)%len(templates)]
		for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
			if strings.Contains(tmpl, form) || strings.Contains(Mask, form) {
				continue // the secret is also a part of the template
			}
			if strings.Contains(tmpl, "'%s'") && strings.ContainsAny(form, `'\`) {
				continue // not a valid quoted value
			}
			if strings.HasPrefix(tmpl, "host=") && !strings.Contains(tmpl, "'%s'") && strings.ContainsAny(form, " \t\n\r\v\f'\"") {
				continue // not a valid bare value
			}
			if strings.Contains(tmpl, "?") && !strings.HasPrefix(tmpl, "host=") && strings.Index(tmpl, "%s") > strings.Index(tmpl, "?") &&
				strings.ContainsAny(form, "&;# \t\n\r\v\f") {
				continue // not a valid query value
			}
			dsn := strings.Replace(tmpl, "%s", form, 1)
			got := DSN(dsn)
			for _, leak := range []string{secret, form} {
				if strings.Contains(got, leak) && !strings.Contains(strings.Replace(tmpl, "%s", "", 1), leak) {
					t.Fatalf("DSN(%q) = %q still holds the secret %q", dsn, got, leak)
				}
			}
		}
	})
}
