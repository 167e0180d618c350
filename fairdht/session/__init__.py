"""Refereed game sessions: encrypted channels, the referee's match host, the player client."""
