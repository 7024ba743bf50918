package main

// counterRoles are the worker roles of the counter product.
func counterRoles() []role {
	return nil
}
