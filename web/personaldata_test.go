package web

import (
	"slices"
	"strings"
	"testing"
	"time"

	"jetfleet/internal/events"
	"jetfleet/internal/personaldata"
	"jetfleet/internal/testenv"
	"jetfleet/subjects"
)

// Every product on the site has an entry in the personal-data registry,
// with its data or an explicit reason it has none, so GDPR requests cannot
// leave a product out.
func TestEverySiteProductHasAPersonalDataEntry(t *testing.T) {
	_, js := testenv.JetStream(t)
	ctx := testenv.Context(t, 10*time.Second)
	if err := subjects.Provision(ctx, js, subjects.Options{}); err != nil {
		t.Fatal(err)
	}
	svc, err := events.Open(ctx, js, events.Config{BaseURL: "http://site"})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := personaldata.Registry(ctx, personaldata.Deps{JS: js, Events: svc})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range allProducts() {
		name := strings.TrimPrefix(p.Path, "/")
		if !slices.ContainsFunc(entries, func(e personaldata.Entry) bool { return e.Product == name }) {
			t.Errorf("site product %s (%s) has no entry in personaldata.Registry: declare its data, or None with why", p.Name, p.Path)
		}
	}
}
