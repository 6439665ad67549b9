"""Experience storage: rollout buffer with GAE (on-policy)."""
