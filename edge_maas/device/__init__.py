"""The on-device daemon: follows its desired state, fetches and verifies, swaps, serves."""
