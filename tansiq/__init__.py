"""Tansiq (تنسيق): coordination for a network of associations.

The shared package: message contracts and envelope, messaging building blocks
(outbox, inbox, retrying consumer), database and configuration helpers, the CLI.
"""
