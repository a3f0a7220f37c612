"""The pure core: manifests + observed state + now → plan. No I/O, no clock, no logging."""
