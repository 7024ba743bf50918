// Package archtest checks the dependency rules of ../shared/ARCHITECTURE.md:
// cmd → web, workers → internal, analytics, subjects; subjects imports
// nothing of ours; workers and web never import each other. A main package
// (cmd/jetfleet, and the benchmark commands beside the roles they measure,
// workers/<role>/<role>bench) wires the parts like cmd does and is exempt.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

func TestDependenciesPointOneWay(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.Name}} {{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "jetfleet/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	rules := []struct {
		from, to, why string
	}{
		{"jetfleet/subjects", "jetfleet/", "subjects is the contract and imports nothing of ours"},
		{"jetfleet/workers", "jetfleet/web", "a worker never imports the edge"},
		{"jetfleet/web", "jetfleet/workers", "the edge never imports a worker"},
		{"jetfleet/internal", "jetfleet/web", "outside-world clients do not know the edge"},
		{"jetfleet/internal", "jetfleet/workers", "outside-world clients do not know the workers"},
		{"jetfleet/analytics", "jetfleet/web", "analytics does not know the edge"},
		{"jetfleet/analytics", "jetfleet/workers", "analytics does not know the workers"},
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		name, pkg, imports := fields[0], fields[1], fields[2:]
		if name == "main" {
			continue
		}
		for _, r := range rules {
			if !strings.HasPrefix(pkg, r.from) {
				continue
			}
			checked++
			for _, imp := range imports {
				if strings.HasPrefix(imp, r.to) {
					t.Errorf("%s imports %s: %s", pkg, imp, r.why)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package matched any rule; is the module path still jetfleet?")
	}
}
