"""What the relay holds between reports and scrapes."""
