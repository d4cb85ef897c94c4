"""Application logic, written against the small interfaces in `ports`."""
