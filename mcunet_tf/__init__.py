"""mcunet_tf package."""
