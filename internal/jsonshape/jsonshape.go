// Package jsonshape lists the structure of a JSON document, for tests that
// compare a payload a client sends or a stand-in answers with a golden file
// captured from the real service: values differ from run to run, the shape
// must not.
package jsonshape

import (
	"encoding/json"
	"sort"
	"testing"
)

// Of lists, sorted, the path of every key in JSON document b: objects by
// key (".a.b"), array elements merged ("[]"). The objects at the paths
// freeForm are maps whose keys are data (a CRM record's properties), so
// their keys all read "*". It fails t when b is not JSON.
func Of(t testing.TB, b []byte, freeForm ...string) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	free := map[string]bool{}
	for _, p := range freeForm {
		free[p] = true
	}
	seen := map[string]bool{}
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if free[p] {
					k = "*"
				}
				seen[p+"."+k] = true
				walk(p+"."+k, c)
			}
		case []any:
			for _, c := range x {
				walk(p+"[]", c)
			}
		}
	}
	walk("", v)
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
