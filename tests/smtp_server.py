"""A real SMTP server for the notification tests (aiosmtpd), on 127.0.0.1.

Usage: smtp_server.py PORT MAILDIR [USER PASSWORD]
Every message it accepts is written whole to MAILDIR/<n>.eml (then renamed, so a reader never
sees half a file). With USER and PASSWORD, AUTH PLAIN/LOGIN is required and checked; without
TLS here, since the test server has no certificate a client would trust.
"""

import asyncio
import os
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, maildir = int(sys.argv[1]), sys.argv[2]
credentials = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else None
os.makedirs(maildir, exist_ok=True)
count = 0


class Handler:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        path = os.path.join(maildir, f"{count}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(b"X-Envelope-From: " + envelope.mail_from.encode() + b"\r\n")
            f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(b"X-Authenticated: " + str(session.authenticated).encode() + b"\r\n")
            f.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and (auth_data.login.decode(), auth_data.password.decode()) == credentials
    )
    return AuthResult(success=ok, handled=False)


kwargs = {}
if credentials:
    kwargs = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
controller.start()
print("ready", flush=True)
try:
    asyncio.get_event_loop().run_forever()
except KeyboardInterrupt:
    pass
finally:
    controller.stop()
