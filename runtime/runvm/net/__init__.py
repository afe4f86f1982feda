"""Container networking on the host: the netns Docker configures, taps behind the guest NICs, tc mirroring."""
