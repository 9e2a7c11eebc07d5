"""follower package."""
