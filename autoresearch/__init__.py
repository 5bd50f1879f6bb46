"""autoresearch."""
