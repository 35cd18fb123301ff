"""HTTP routes: one router per resource, handlers kept thin."""
