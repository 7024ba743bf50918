package main

import "slices"

// allRoles lists every worker role this binary can run. Each product lists
// its roles in its own roles_<product>.go.
func allRoles() []role {
	return slices.Concat(coreRoles(), counterRoles(), enricherRoles(), trackerRoles())
}

// coreRoles serve every product.
func coreRoles() []role {
	return nil
}
