package web

import "testing"

func TestLocalPathRefusesEveryOffSiteForm(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/tracker", "/tracker"},
		{"/events/abc?tab=tickets", "/events/abc?tab=tickets"},
		{"/a b", "/a%20b"},
		{"", "/"},
		{"tracker", "/"},
		{"//evil.example", "/"},
		{"///evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"/%09/evil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/%0a/evil.example", "/"},
		{"/%0d/evil.example", "/"},
		{"/%2F/evil.example", "/"},
		{"/%2f%2fevil.example", "/"},
		{"/%5Cevil.example", "/"},
		{"/%252F/evil.example", "/"},
		{"https://evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"/ok?next=%0d%0aSet-Cookie:x", "/"},
		{"/x\x7f", "/"},
	} {
		if got := localPath(tc.in); got != tc.want {
			t.Errorf("localPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
