"""The tests' S3 server: moto (an S3-compatible server from PyPI) on a loopback port, with
authentication on, and one IAM user whose keys are written to KEYS_FILE.

Usage: python3 s3_server.py PORT KEYS_FILE

moto checks every request's SigV4 signature once its first INITIAL_NO_AUTH_ACTION_COUNT
requests are served (those three create the user, its policy and its keys). One change to moto
is made here, not a fake: moto 5 verifies a signature against the URL after werkzeug decoded
its query string, so any request whose query holds an encoded character (restic lists keys
with prefix=repo%2Fkeys%2F) fails with SignatureDoesNotMatch although it was signed right.
The handler is given the query string as it arrived instead.
"""

import json
import os
import sys
import threading

os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"

import boto3  # noqa: E402
import moto.core.utils as moto_utils  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

_original_call = moto_utils.convert_to_flask_response.__call__


def _call_with_raw_query(self, args=None, **kwargs):
    callback = self.callback

    def with_raw_url(request, url, headers):
        raw = request.query_string.decode("latin-1")
        return callback(request, request.base_url + ("?" + raw if raw else ""), headers)

    self.callback = with_raw_url
    try:
        return _original_call(self, args, **kwargs)
    finally:
        self.callback = callback


moto_utils.convert_to_flask_response.__call__ = _call_with_raw_query


def main():
    port = int(sys.argv[1])
    keys_file = sys.argv[2]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    iam = boto3.client(
        "iam",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
    )
    iam.create_user(UserName="backup")
    iam.put_user_policy(
        UserName="backup",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="backup")["AccessKey"]
    tmp = keys_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{key['AccessKeyId']} {key['SecretAccessKey']}\n")
    os.rename(tmp, keys_file)
    threading.Event().wait()


if __name__ == "__main__":
    main()
