"""Reconciliation: referrals that never got a routing decision have their submitted event published again."""
