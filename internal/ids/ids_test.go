package ids_test

import (
	"testing"

	"jetfleet/internal/ids"
)

func TestNewIdsAreValidAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := ids.New()
		if !ids.Valid(id) {
			t.Fatalf("New made %q, which Valid refuses", id)
		}
		if seen[id] {
			t.Fatalf("New repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidRefusesWhatWouldChangeAKey(t *testing.T) {
	for _, id := range []string{"", "short", "abcdefghijklmno.", "abcdefghijklmno*", "abcdefghijklmno>", "abcdefghijklmnop1", "abcdefghijklmn p"} {
		if ids.Valid(id) {
			t.Errorf("Valid(%q) = true", id)
		}
	}
}
