"""Outgoing e-mail: messages from templates/mail/, sent over SMTP by `send_mail` tasks, never in a request.

`message` builds the multipart text + HTML message (headers that cannot be injected),
`smtp` delivers it, `tasks` holds the task kinds, `notify` decides who gets what.
"""
