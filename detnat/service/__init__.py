"""The rules of the store: publishing plans, timelines, lookups at an instant with a window."""
