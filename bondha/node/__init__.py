"""The bonder's side: state directory, transitions, daemon, records (moving here)."""
