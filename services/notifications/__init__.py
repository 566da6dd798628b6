"""Notifications: decides who must know about an event and tells them on their channels, in their language."""
