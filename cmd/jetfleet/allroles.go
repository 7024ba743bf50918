package main

// allRoles lists every worker role this binary can run.
func allRoles() []role {
	return []role{}
}
