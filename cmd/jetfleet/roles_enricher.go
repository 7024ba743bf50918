package main

// enricherRoles are the worker roles of the enricher product.
func enricherRoles() []role {
	return nil
}
