package jsonshape_test

import (
	"slices"
	"testing"

	"jetfleet/internal/jsonshape"
)

func TestShapeListsKeyPathsAndMergesArraysAndFreeFormMaps(t *testing.T) {
	doc := []byte(`{"results":[{"id":"1","properties":{"email":"a@x","firstname":"A"}},{"id":"2","extra":true,"properties":{"lastname":"B"}}],"status":"COMPLETE"}`)
	for _, tc := range []struct {
		name     string
		freeForm []string
		want     []string
	}{
		{"every key", nil, []string{".results", ".results[].extra", ".results[].id", ".results[].properties", ".results[].properties.email", ".results[].properties.firstname", ".results[].properties.lastname", ".status"}},
		{"properties as data", []string{".results[].properties"}, []string{".results", ".results[].extra", ".results[].id", ".results[].properties", ".results[].properties.*", ".status"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := jsonshape.Of(t, doc, tc.freeForm...); !slices.Equal(got, tc.want) {
				t.Errorf("shape\n got  %v\n want %v", got, tc.want)
			}
		})
	}
}
