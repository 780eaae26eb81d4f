// Package redact hides the secrets a datastore DSN may carry, so that a DSN
// can be written to a log line or an error message.
//
// A DSN's secrets are the password of its user information
// ("postgres://user:PASSWORD@host/db"), the values of parameters that name a
// secret (password, sslpassword, sslkey, sslcert, sslrootcert and their
// kin, in URL query form "?password=X" as in libpq's key=value form
// "password=X" or "password='X Y'"), and inline PEM blocks. DSN replaces
// each with "xxxxx" and leaves the rest as it was. When a DSN is too
// malformed to tell where its user information ends, everything between the
// scheme and the last '@' goes.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

// secretParams are the parameter names whose values are secret or may hold
// key material (libpq's sslkey/sslcert may be inline PEM with sslinline).
var secretParams = `password|passwd|pass|pwd|sslpassword|sslkey|sslcert|sslrootcert|sslinline|sslsni_key|` +
	`secret|token|apikey|api_key|auth|auth_token|access_token|_auth_pass|_auth_user|private_key`

var (
	// A parameter in libpq's key=value form: the name at the start or after
	// white space, '=', then a quoted value or one up to white space.
	kvRE = regexp.MustCompile(`(?i)(^|\s)(` + secretParams + `)(\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|\S*)`)
	// A parameter in URL query form: the name after '?', '&' or ';', '=',
	// then the value up to the next separator.
	queryRE = regexp.MustCompile(`(?i)([?&;])(` + secretParams + `)(=)([^&;#]*)`)
	// An inline PEM block, complete or cut short.
	pemRE = regexp.MustCompile(`-----BEGIN[^-]*-----[\s\S]*?(?:-----END[^-]*-----|$)`)
)

// DSN returns dsn with every secret it carries replaced by Mask.
func DSN(dsn string) string {
	out := pemRE.ReplaceAllString(dsn, Mask)
	out = kvRE.ReplaceAllString(out, "${1}${2}${3}"+Mask)
	out = queryRE.ReplaceAllString(out, "${1}${2}${3}"+Mask)
	out = userinfo(out)
	// Query values are often percent-encoded: a parameter name may be too
	// ("pass%77ord"). Decode the query and redact again if decoding reveals
	// a secret name the raw form hid.
	if i := strings.IndexByte(out, '?'); i >= 0 {
		if q, err := url.QueryUnescape(out[i+1:]); err == nil && q != out[i+1:] && (kvRE.MatchString(q) || queryRE.MatchString("?"+q)) {
			out = out[:i+1] + Mask
		} else if err != nil && strings.Contains(out[i+1:], "%") {
			out = out[:i+1] + Mask
		}
	}
	return out
}

// userinfo replaces the password of a URL-form DSN.
func userinfo(dsn string) string {
	schemeEnd := strings.Index(dsn, "://")
	if schemeEnd < 0 {
		return dsn
	}
	rest := dsn[schemeEnd+3:]
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return dsn
	}
	// Only one '@': the URL parser's reading is the only one.
	if u, err := url.Parse(dsn); err == nil && u.User != nil && u.Host != "" && strings.IndexByte(rest, '@') == at {
		if _, has := u.User.Password(); !has {
			return dsn
		}
		// Rebuild by hand rather than with u.Redacted, which re-encodes the
		// rest of the DSN.
		user := rest[:strings.IndexByte(rest, '@')]
		if colon := strings.IndexByte(user, ':'); colon >= 0 {
			return dsn[:schemeEnd+3] + user[:colon+1] + Mask + rest[len(user):]
		}
	}
	// Malformed: keep the user name when it is plain, hide everything up to
	// the last '@' (a password may hold '@', '/' or '?' unescaped).
	user := rest[:at]
	if colon := strings.IndexByte(user, ':'); colon >= 0 && !strings.ContainsAny(user[:colon], "/?#@") {
		return dsn[:schemeEnd+3] + user[:colon+1] + Mask + rest[at:]
	}
	return dsn[:schemeEnd+3] + Mask + rest[at:]
}
