"""One crawler per platform and a dispatcher that picks one by URL."""
