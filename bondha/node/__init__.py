"""The bonder's side of bondha: what one node keeps and decides locally."""
