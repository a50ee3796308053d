"""Python inference API used by demo/ and by users."""
