package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Browsers cannot send a bearer token on a page load, so the dashboard signs in once with the token and
// gets a session cookie: an expiry and an HMAC keyed by the token. Every web replica accepts it without
// shared state, and rotating the token signs everyone out.
const (
	sessionCookie = "batchsynth_session"
	sessionTTL    = 12 * time.Hour
	// csrfHeader is sent by the dashboard's script; a cross-site form cannot set it and a cross-site script
	// cannot either without a CORS preflight, which this server never grants.
	csrfHeader = "X-Batchsynth-Csrf"
)

// authenticate lets through public routes, requests with the bearer token, and dashboard sessions.
func (s *Server) authenticate(public map[string]bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := s.mux.Handler(r)
		if s.Token == "" || public[pattern] {
			next.ServeHTTP(w, r)
			return
		}
		if s.bearerOK(r) {
			next.ServeHTTP(w, r)
			return
		}
		if s.sessionOK(r) {
			if !safeMethod(r.Method) && !sameOrigin(r) {
				writeError(w, http.StatusForbidden, "cross_site_request", "", "a request with the dashboard's session must come from the dashboard")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="batchsynth"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "", "missing or wrong bearer token (Authorization: Bearer $BATCHSYNTH_API_TOKEN)")
	})
}

// tokenEqual compares digests, so that neither the content nor the length of the token leaks through timing.
func (s *Server) tokenEqual(got string) bool {
	a := sha256.Sum256([]byte(got))
	b := sha256.Sum256([]byte(s.Token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (s *Server) bearerOK(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && s.tokenEqual(strings.TrimSpace(tok))
}

func (s *Server) sessionMAC(exp string) string {
	key := sha256.Sum256([]byte("batchsynth-session\x00" + s.Token))
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(exp))
	return hex.EncodeToString(m.Sum(nil))
}

func (s *Server) sessionOK(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	exp, mac, ok := strings.Cut(c.Value, ".")
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Now().Unix() > n {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(s.sessionMAC(exp)))
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin accepts the dashboard's own requests: browsers mark them (Sec-Fetch-Site, Origin), and the
// dashboard's script also sends csrfHeader.
func sameOrigin(r *http.Request) bool {
	if r.Header.Get(csrfHeader) != "" || r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return false
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.Token == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "login.html", map[string]string{"Next": localPath(r.URL.Query().Get("next"))})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	next := localPath(r.FormValue("next"))
	if s.Token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	if !s.tokenEqual(r.FormValue("token")) {
		s.Log.Warn("dashboard sign-in refused", "remote", r.RemoteAddr)
		// A pause makes guessing slow; a real token is long and random anyway.
		time.Sleep(300 * time.Millisecond)
		s.render(w, http.StatusUnauthorized, "login.html", map[string]string{"Next": next, "Error": "That is not the API token."})
		return
	}
	exp := strconv.FormatInt(time.Now().Add(sessionTTL).Unix(), 10)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: exp + "." + s.sessionMAC(exp), Path: "/", MaxAge: int(sessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// localPath keeps a post-login redirect on this site. Browsers drop tabs and newlines from a Location and
// read a backslash as '/', so "/\t/evil.example" or "/\\evil.example" would take a signed-in user to
// another host: anything that is not plainly a path on this host becomes "/".
func localPath(p string) string {
	if !plainPath(p) {
		return "/"
	}
	// The value arrives decoded from the form, but a proxy or a later hop may decode it once more: that form
	// must not leave the host either. An undecodable value is refused rather than guessed at.
	if d, err := url.PathUnescape(p); err != nil || !plainPath(d) {
		return "/"
	}
	if u, err := url.Parse(p); err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return p
}

// plainPath reports whether p starts with exactly one '/' and holds nothing a browser would drop or turn
// into a slash (control characters, backslashes).
func plainPath(p string) bool {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return false
		}
	}
	return true
}
