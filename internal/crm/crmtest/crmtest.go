// Package crmtest holds what the CRM clients' tests share: the golden
// payloads captured from HubSpot and Salesforce (internal/crm/testdata)
// and the contacts they export. Each CRM's protocol-faithful stand-in
// stays in its own package (hubspottest, salesforcetest).
package crmtest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"jetfleet/internal/crm"
)

// Golden returns the captured payload name from internal/crm/testdata
// (see its README for each file's origin), failing t when it is missing.
func Golden(t testing.TB, name string) []byte {
	t.Helper()
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("crmtest: cannot locate its own source to find testdata")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Contacts are an export of two: one the CRMs accept, and one whose
// address every CRM refuses, so each answer carries a per-contact failure.
func Contacts() []crm.Contact {
	return []crm.Contact{{Email: "ada@example.com", FirstName: "Ada", LastName: "Lovelace"}, {Email: "not-an-address", LastName: "Nobody"}}
}
