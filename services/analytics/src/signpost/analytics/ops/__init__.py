"""The ops view: consumer lag, throughput, dead letters, last event times and service health."""
