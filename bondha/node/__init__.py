"""The bonder's side of bondha: what runs on the node next to keepalived."""
