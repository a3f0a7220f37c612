"""The control loop (`reconcile watch`): watcher, timers, locking, status."""
