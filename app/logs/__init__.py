"""The logs area: one store for events from agents, audit, tasks and shippers; rules; alerts."""
