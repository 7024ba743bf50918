package site

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Attachment is a Content-Disposition value that has browsers save the
// response as a file named name: "attachment", an ASCII filename for old
// clients and the name itself as RFC 8187 UTF-8 (filename*). The name is
// sanitised first — no directories, control or format characters, quotes
// or leading dots, at most 200 bytes — so a stored name cannot place or
// hide the saved file; an empty result becomes fallback.
func Attachment(name, fallback string) string {
	name = SafeFileName(name)
	if name == "" {
		name = SafeFileName(fallback)
	}
	if name == "" {
		name = "download"
	}
	var ascii, enc strings.Builder
	for _, r := range name {
		if r < utf8.RuneSelf && r != '"' && r != '\\' && r != '%' {
			ascii.WriteRune(r)
		} else {
			ascii.WriteByte('_')
		}
	}
	for _, b := range []byte(name) {
		if attrChar(b) {
			enc.WriteByte(b)
		} else {
			fmt.Fprintf(&enc, "%%%02X", b)
		}
	}
	return `attachment; filename="` + ascii.String() + `"; filename*=UTF-8''` + enc.String()
}

// SafeFileName is name reduced to something every file system and
// browser saves as is: its last path segment, without control, format
// or separator characters and without leading dots or spaces, at most
// 200 bytes of valid UTF-8.
func SafeFileName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
			return -1
		case strings.ContainsRune(`<>:"|?*`, r):
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(strings.TrimSpace(name), ". ")
	for len(name) > 200 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return strings.TrimSpace(name)
}

// attrChar reports whether b may stand unescaped in an RFC 8187 value.
func attrChar(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("!#$&+-.^_`|~", b) >= 0
}
