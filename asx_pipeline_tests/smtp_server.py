"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives: the mail tests' peer."""

import email
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message

from aiosmtpd.controller import Controller


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """An aiosmtpd handler that keeps every message it receives, and its envelope."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@contextmanager
def smtp_server_running(**controller_options: object) -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on a free port of 127.0.0.1 while the block runs: (its mailbox, its port).

    `controller_options` go to aiosmtpd's Controller: an `authenticator`, TLS contexts, ...
    """
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **controller_options)
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()
