package main

// trackerRoles are the worker roles of the tracker product.
func trackerRoles() []role {
	return nil
}
