"""The user's workspace: its config files, its git repository, and the run lock."""
