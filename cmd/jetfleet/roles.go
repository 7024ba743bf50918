package main

import (
	"fmt"
	"slices"
	"strings"

	"jetfleet/workers/consume"
)

// roleNames resolves WORKER_ROLES ("all" or a comma-separated list) among
// known, refusing a known list in which two roles share a name.
func roleNames(spec string, known []consume.Role) ([]consume.Role, error) {
	if err := consume.CheckRoles(known); err != nil {
		return nil, err
	}
	if strings.TrimSpace(spec) == "all" {
		return known, nil
	}
	var names []string
	for _, r := range known {
		names = append(names, r.Name)
	}
	var out []consume.Role
	for _, n := range strings.Split(spec, ",") {
		n = strings.TrimSpace(n)
		i := slices.Index(names, n)
		if i < 0 {
			return nil, fmt.Errorf("WORKER_ROLES: unknown role %q (known: all, %s)", n, strings.Join(names, ", "))
		}
		out = append(out, known[i])
	}
	return out, nil
}
