"""E-mail: rendering (`render`), the SMTP and file transports (`transport`), the small inline
chart (`chart`) and the signed unsubscribe links (`tokens`).

Nothing here touches the database: `rehab.services.notifications` loads the rows, calls these,
and records the outcome.
"""
