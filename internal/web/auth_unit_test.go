package web

import (
	"net/url"
	"testing"
)

func TestLocalPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"//evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\/evil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/%09/evil.example", "/"}, // as sent, before the form decodes it
		{"/\r\n/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/x\x7f", "/"},
		{"/x\\y", "/"},
		{"/%2F/evil.example", "/"}, // decoded once more it would be //evil.example
		{"/%5C/evil.example", "/"},
		{"/%zz", "/"},
		{"https://evil.example", "/"},
		{"http:evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"", "/"},
		{"evil.example", "/"},
		{" /x", "/"},
		{"/", "/"},
		{"/jobs/abc?x=1", "/jobs/abc?x=1"},
		{"/monitoring/", "/monitoring/"},
	}
	for _, c := range cases {
		got := localPath(c.in)
		if got != c.want {
			t.Errorf("localPath(%q) = %q, want %q", c.in, got, c.want)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Errorf("localPath(%q) = %q: %v", c.in, got, err)
		} else if u.Host != "" || u.Scheme != "" {
			t.Errorf("localPath(%q) = %q: parses to host %q scheme %q", c.in, got, u.Host, u.Scheme)
		}
	}
	// The form hands the handler the decoded value.
	dec, err := url.QueryUnescape("/%09/evil.example")
	if err != nil {
		t.Fatal(err)
	}
	if got := localPath(dec); got != "/" {
		t.Errorf("localPath(%q) = %q, want /", dec, got)
	}
}
