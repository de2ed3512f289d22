"""Provisioning: the fleet tool that writes per-MAC configs (server side), and later the client."""
