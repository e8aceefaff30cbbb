"""The HTTP service, CLI entry point, generators and answering logic."""
