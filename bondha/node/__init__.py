"""The bonder's side of bondha: what runs on the node itself (announcing moved addresses)."""
